//! What flows between steps: record batches tagged with the table they belong to.

use std::fmt;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

/// Identifies one table flowing through the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// The source step that produced it.
    pub source: String,
    /// Schema (database namespace) name; `main` for SQLite, the step name for generators.
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl TableId {
    /// True when `pattern` (`%`/`_` wildcards, `schema.table` or just `table`) selects this table.
    pub fn matches(&self, pattern: &str) -> bool {
        match pattern.split_once('.') {
            Some((schema, table)) => {
                like_match(schema, &self.schema) && like_match(table, &self.name)
            }
            None => like_match(pattern, &self.name),
        }
    }
}

/// One message on a channel between steps.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows of a table. Every batch of one table has the same schema.
    Batch(Arc<TableId>, RecordBatch),
    /// No more rows will come for this table: sinks may close its files.
    EndOfTable(Arc<TableId>),
}

/// SQL `LIKE` matching, ASCII case-insensitive: `%` any run of characters, `_` exactly one.
pub fn like_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative wildcard matching with backtracking to the last `%`: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like_match("%", "film"));
        assert!(like_match("%sakila%", "my_sakila_db"));
        assert!(like_match("f_lm", "FILM"));
        assert!(!like_match("f_lm", "fiilm"));
        assert!(like_match("film%", "film_actor"));
        assert!(!like_match("film", "film_actor"));
        assert!(like_match("", ""));
        assert!(!like_match("", "x"));
    }

    #[test]
    fn table_patterns() {
        let t = TableId {
            source: "db".into(),
            schema: "main".into(),
            name: "film".into(),
        };
        assert!(t.matches("film"));
        assert!(t.matches("main.f%"));
        assert!(!t.matches("other.film"));
    }
}
