//! pipectl's integration tests: one binary, one module per area.
//!
//! Tests run the real `pipectl` binary where the user would, and read back what it wrote.
//! Golden files live under `tests/snapshots/` and `tests/fixtures/`; refresh them with
//! `SNAPSHOTS=overwrite cargo nextest run` and review the diff.

mod cdc;
mod common;
mod compact;
mod crawl_glue;
mod database;
mod delta;
mod delta_read;
mod firehose_parquet;
mod invalid_specs;
mod lake;
mod mysql_cdc;
mod plan;
mod prefixes;
mod quickstart;
mod run;
mod s3;
mod schema;
mod serve;
mod streaming;
mod streaming_delta;
