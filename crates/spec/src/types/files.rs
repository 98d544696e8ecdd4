//! The `files` source: objects under a prefix, read once each (Glue S3 job bookmarks).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reads data files under a prefix of an object store (a landing zone). Each run reads only
/// files it has not read before: the bookmark remembers each file's key, size and modification
/// time, with a look-back window for listings that arrive late.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// Name of an entry in `connections` (a `file://`, `memory://` or `s3://` URL).
    pub connection: String,
    /// Key prefix to read, relative to the connection URL, e.g. `landing/sakila/`. Folders and
    /// files starting with `_` or `.` are skipped.
    pub prefix: String,
    /// File format. `auto` goes by the extension (`.csv`, `.tsv`, `.jsonl`, `.json`, `.parquet`,
    /// each optionally `.gz`) and else by the content.
    #[serde(default)]
    pub format: FilesFormat,
    /// CSV field delimiter (one character). Default: detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV files start with a header row. Default: detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// The unquoted CSV field that stands for NULL, as the writer's `null_value` (e.g. `NULL`,
    /// `\N`). Default: an empty field. A quoted field is always text: `""` is an empty string.
    #[serde(default)]
    pub null_value: String,
    /// Column types, by name, for the tables this source reads (`decimal(5,2)`, `int64`,
    /// `date`, ...), as the generator's `columns:` declare them: a declared column is read
    /// exactly as that type (a value that does not fit makes its file malformed); undeclared
    /// columns keep their inferred types, and a declaration naming no column of a table does
    /// not apply to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<crate::types::ColumnDecl>,
    /// Catalog database whose table of the same name gives each column's type, e.g. a
    /// database a crawler filled from Parquet files, where `decimal(5,2)` is exact. `columns:`
    /// declarations come first; columns the catalog table lacks keep their inferred types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types_from_catalog: Option<String>,
    /// Table name every file lands under (`{table}` in sink keys). Default: the folder directly
    /// under `prefix` (`landing/sakila/film/part-1.csv` is table `film`); files directly in the
    /// prefix go to a table named after its last folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Only read keys (relative to `prefix`) matching one of these globs (`*` within a folder,
    /// `**` across folders). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out keys matching one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Files modified up to this many seconds before the newest file read are checked against
    /// the list of files read, so a file listed late is still read once. Default 900.
    #[serde(default = "default_look_back_secs")]
    pub look_back_secs: u64,
    /// Send one record per malformed file (`table`, `file`, `error` naming the row, `run_id`) as
    /// a table of this name, e.g. `landing_errors`. Default: malformed files are only reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_table: Option<String>,
    /// Rows per Arrow record batch.
    #[serde(default = "default_files_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
}

fn default_look_back_secs() -> u64 {
    900
}

fn default_files_batch_rows() -> usize {
    8192
}

/// The format of the files a `files` source reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilesFormat {
    /// By extension, else by content.
    #[default]
    Auto,
    /// Delimited text.
    Csv,
    /// JSON lines.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}
