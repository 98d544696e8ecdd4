//! Query results as an aligned table, CSV or JSON.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned table with a header, then the row count.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// Renders a result.
pub fn render(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<String, String> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match format {
        OutputFormat::Table => {
            let mut text = if batches.iter().all(|b| b.num_rows() == 0) {
                // Still show the columns of an empty result.
                datafusion::arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    schema.clone(),
                )])
            } else {
                datafusion::arrow::util::pretty::pretty_format_batches(batches)
            }
            .map_err(|e| e.to_string())?
            .to_string();
            text.push_str(&format!(
                "\n({rows} row{})\n",
                if rows == 1 { "" } else { "s" }
            ));
            Ok(text)
        }
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer
                        .write(&RecordBatch::new_empty(schema.clone()))
                        .map_err(|e| e.to_string())?;
                }
                for b in batches {
                    writer.write(b).map_err(|e| e.to_string())?;
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
        OutputFormat::Json => {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut out);
                for b in batches {
                    writer.write(b).map_err(|e| e.to_string())?;
                }
                writer.finish().map_err(|e| e.to_string())?;
            }
            let mut text = String::from_utf8(out).map_err(|e| e.to_string())?;
            if text.is_empty() {
                text.push_str("[]");
            }
            text.push('\n');
            Ok(text)
        }
    }
}
