//! Planning a database read: the columns and how they land, the table plan with its
//! statements (bookmark WHERE clause, highest key, NULL count), selection rules, `tables:`
//! settings, transformation rules and split ranges. Pure: no connection, no await.
//!
//! Bookmarks: every table is read in one consistent snapshot (PostgreSQL `REPEATABLE READ`,
//! InnoDB `WITH CONSISTENT SNAPSHOT`). In that snapshot the source first asks for the highest
//! key tuple that the WHERE clause selects, then reads the rows. The new position is that tuple in
//! the database's own text form (exact: decimals, microseconds and time zones survive), handed to
//! the executor, which stores it only in the same state transaction that commits the run.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use pipectl_spec::types::{
    BookmarkSpec, DatabaseSource, InfinityPolicy, NullKeyPolicy, SplitSpec, TableSettings,
    TableType, UnmappedTypes,
};
use pipectl_state::Bookmark;

use super::dialect::Dialect;
use crate::context::Backfill;
use crate::error::{Error, Result};
use crate::table::{TableId, like_match};

/// One column as it is read: its name, the type the database declares, the Arrow type it lands
/// as, and the expression that selects it (a cast to text for types read as text).
#[derive(Debug, Clone)]
pub struct DbColumn {
    /// Column name as it lands (after transformation rules).
    pub name: String,
    /// Column name in the database.
    pub source: String,
    /// Declared type, as the database prints it (`numeric(8,2)`, `int unsigned`).
    pub declared: String,
    /// How the dialect decodes it.
    pub kind: ColumnKind,
    /// The select-list expression.
    pub select: String,
}

impl DbColumn {
    /// A column read under its database name.
    pub fn new(name: String, declared: String, kind: ColumnKind, select: String) -> Self {
        DbColumn {
            source: name.clone(),
            name,
            declared,
            kind,
            select,
        }
    }

    /// How a column of a type with no faithful mapping is read: as text (`as_text`, its select
    /// expression) with `unmapped_types: text`, or not at all, with an error saying what to do.
    pub fn unmapped(
        policy: UnmappedTypes,
        table: &TableId,
        name: &str,
        declared: &str,
        as_text: String,
    ) -> Result<(ColumnKind, String)> {
        match policy {
            UnmappedTypes::Text => Ok((ColumnKind::Text, as_text)),
            UnmappedTypes::Fail => Err(Error::user(format!(
                "table {table}, column `{name}`: type `{declared}` cannot be mapped; set `unmapped_types: text` on the source to land it as text, or cast it in a `queries:` entry"
            ))),
        }
    }
}

/// A table or view a catalog lists.
#[derive(Debug, Clone)]
pub struct Relation {
    /// The catalog's id of it (PostgreSQL's oid), or 0.
    pub id: i64,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Whether it is a view.
    pub view: bool,
}

/// How a column's values are decoded; each dialect reads its wire format into these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Signed integers of 1, 2, 4 or 8 bytes.
    Int(u8),
    /// Unsigned integers of 1, 2, 4 or 8 bytes (MySQL `UNSIGNED`).
    UInt(u8),
    /// `real` / `float`.
    Float32,
    /// `double precision` / `double`.
    Float64,
    /// Booleans.
    Bool,
    /// Exact decimal with precision and scale.
    Decimal(u8, i8),
    /// UTF-8 text (also enums, JSON, and anything cast to text).
    Text,
    /// PostgreSQL `jsonb` (binary form: a version byte, then the text).
    Jsonb,
    /// PostgreSQL `uuid` (16 bytes, landed as canonical text).
    Uuid,
    /// Bytes.
    Binary,
    /// MySQL `BIT(n)`, landed as text of `0`/`1` digits, like PostgreSQL's `bit`.
    Bits(u16),
    /// Dates.
    Date,
    /// Time of day, microseconds.
    Time,
    /// Timestamp without time zone.
    Timestamp,
    /// Timestamp in UTC.
    TimestampUtc,
}

impl ColumnKind {
    /// The Arrow type values land as.
    pub fn arrow_type(self) -> DataType {
        use arrow::datatypes::TimeUnit::Microsecond;
        match self {
            ColumnKind::Int(1) => DataType::Int8,
            ColumnKind::Int(2) => DataType::Int16,
            ColumnKind::Int(4) => DataType::Int32,
            ColumnKind::Int(_) => DataType::Int64,
            ColumnKind::UInt(1) => DataType::UInt8,
            ColumnKind::UInt(2) => DataType::UInt16,
            ColumnKind::UInt(4) => DataType::UInt32,
            ColumnKind::UInt(_) => DataType::UInt64,
            ColumnKind::Float32 => DataType::Float32,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Decimal(p, s) => DataType::Decimal128(p, s),
            ColumnKind::Text | ColumnKind::Jsonb | ColumnKind::Uuid | ColumnKind::Bits(_) => {
                DataType::Utf8
            }
            ColumnKind::Binary => DataType::Binary,
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Time => DataType::Time64(Microsecond),
            ColumnKind::Timestamp => DataType::Timestamp(Microsecond, None),
            ColumnKind::TimestampUtc => DataType::Timestamp(Microsecond, Some("UTC".into())),
        }
    }
}

/// An incremental read: the stored position (if any) and the clause that reads past it.
#[derive(Debug, Clone)]
pub struct BookmarkPlan {
    /// The state store's stream name: `<source step>.<schema>.<table>`.
    pub stream: String,
    /// The spec's bookmark settings.
    pub spec: BookmarkSpec,
    /// Declared type of each key column, used to cast the bound text back to the column's type.
    pub key_types: Vec<String>,
    /// The stored position, if a run committed one.
    pub previous: Option<Bookmark>,
    /// A backfill instead: rows whose first key is in `[from, to)`; the bookmark is neither
    /// used nor moved.
    pub backfill: Option<Backfill>,
}

/// One table (or query) a source will read.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table's identity downstream.
    pub table: TableId,
    /// The table's name in the database, which selection rules, `tables:` settings, bookmarks
    /// and `--table` refer to (`table` differs after transformation rules).
    pub source: TableId,
    /// The columns, in order.
    pub columns: Vec<DbColumn>,
    /// What to read from: a quoted `schema.table`, or `(query) as q`.
    pub from: String,
    /// A query read exactly as written instead of a select over `from` (SQLite `queries:`,
    /// which take neither bookmarks nor ranges).
    pub verbatim: Option<String>,
    /// Set for incremental tables.
    pub bookmark: Option<BookmarkPlan>,
    /// Set for tables read in ranges over several connections.
    pub split: Option<SplitSpec>,
    /// The range of the split column this plan reads (a condition on integer literals pipectl
    /// computed), once a split table has been cut into ranges.
    pub range: Option<String>,
    /// The Arrow schema rows are read into.
    pub schema: SchemaRef,
    /// What PostgreSQL's infinite dates and timestamps land as.
    pub infinity: InfinityPolicy,
}

/// A statement with its bound parameters (all bound as text and cast in SQL to the key's type,
/// so values keep their full precision and never become part of the SQL text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// SQL with placeholders.
    pub sql: String,
    /// Values of the placeholders, in order.
    pub params: Vec<String>,
}

impl TablePlan {
    /// Builds a plan, checking names and bookmark keys against the columns.
    pub fn new(
        table: TableId,
        columns: Vec<DbColumn>,
        from: String,
        bookmark: Option<(String, BookmarkSpec, Option<Bookmark>)>,
    ) -> Result<Self> {
        let mut fields = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::user(format!(
                    "table {table}: column name `{}` appears twice; give the columns distinct names (use `as`)",
                    c.name
                )));
            }
            fields.push(Field::new(&c.name, c.kind.arrow_type(), true));
        }
        let bookmark = match bookmark {
            None => None,
            Some((stream, spec, previous)) => {
                let mut key_types = Vec::new();
                for key in &spec.keys {
                    let column = columns.iter().find(|c| &c.source == key).ok_or_else(|| {
                        Error::user(format!(
                            "table {table}: bookmark key `{key}` is not a column; columns: {}",
                            pipectl_spec::diag::comma_list(columns.iter().map(|c| c.name.as_str()))
                        ))
                    })?;
                    key_types.push(column.declared.clone());
                }
                if let Some(prev) = &previous
                    && prev.keys != spec.keys
                {
                    return Err(Error::user(format!(
                        "table {table}: the stored bookmark is on ({}) but the spec names ({}); run `pipectl state reset` for stream `{stream}` to start over",
                        prev.keys.join(", "),
                        spec.keys.join(", ")
                    )));
                }
                Some(BookmarkPlan {
                    stream,
                    spec,
                    key_types,
                    previous,
                    backfill: None,
                })
            }
        };
        Ok(TablePlan {
            source: table.clone(),
            table,
            columns,
            from,
            verbatim: None,
            bookmark,
            split: None,
            range: None,
            schema: Arc::new(Schema::new(fields)),
            infinity: InfinityPolicy::default(),
        })
    }

    /// The WHERE clause (with a leading space, or empty) and its parameters.
    fn filter<D: Dialect>(&self) -> (String, Vec<String>) {
        let Some(b) = &self.bookmark else {
            return match &self.range {
                Some(range) => (format!(" where {range}"), Vec::new()),
                None => (String::new(), Vec::new()),
            };
        };
        let keys: Vec<String> = b.spec.keys.iter().map(|k| D::quote(k)).collect();
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if b.spec.null_keys == NullKeyPolicy::Skip {
            conditions.extend(keys.iter().map(|k| format!("{k} is not null")));
        }
        if let Some(range) = &b.backfill {
            for (value, op) in [(&range.from, ">="), (&range.to, "<")] {
                params.push(value.clone());
                let bound = D::cast_param(&D::placeholder(params.len()), &b.key_types[0]);
                conditions.push(format!("{} {op} {bound}", keys[0]));
            }
        } else if let Some(prev) = &b.previous {
            let mut bound = Vec::new();
            for (value, declared) in prev.values.iter().zip(&b.key_types) {
                params.push(bookmark_text(value));
                bound.push(D::cast_param(&D::placeholder(params.len()), declared));
            }
            conditions.push(format!("({}) > ({})", keys.join(", "), bound.join(", ")));
        }
        if let Some(settle) = b.spec.settle_secs {
            params.push(settle.to_string());
            conditions.push(D::settled(&keys[0], &D::placeholder(params.len())));
        }
        if conditions.is_empty() {
            (String::new(), params)
        } else {
            (format!(" where {}", conditions.join(" and ")), params)
        }
    }

    /// The statement that reads the rows.
    pub fn read_statement<D: Dialect>(&self) -> Statement {
        if let Some(sql) = &self.verbatim {
            return Statement {
                sql: sql.clone(),
                params: Vec::new(),
            };
        }
        let select: Vec<&str> = self.columns.iter().map(|c| c.select.as_str()).collect();
        let (filter, params) = self.filter::<D>();
        Statement {
            sql: format!("select {} from {}{filter}", select.join(", "), self.from),
            params,
        }
    }

    /// The statement that finds the highest key tuple the read selects (bookmarked tables only).
    pub fn max_statement<D: Dialect>(&self) -> Option<Statement> {
        let b = self.bookmark.as_ref().filter(|b| b.backfill.is_none())?;
        let (mut filter, params) = self.filter::<D>();
        let keys: Vec<String> = b.spec.keys.iter().map(|k| D::quote(k)).collect();
        if b.spec.null_keys == NullKeyPolicy::Fail || filter.is_empty() {
            // Without the `is not null` conditions, NULLs sort first in MySQL and last in
            // PostgreSQL descending order: exclude them from the maximum explicitly.
            let nonnull = keys
                .iter()
                .map(|k| format!("{k} is not null"))
                .collect::<Vec<_>>()
                .join(" and ");
            filter = if filter.is_empty() {
                format!(" where {nonnull}")
            } else {
                format!("{filter} and {nonnull}")
            };
        }
        // Aliased, because ORDER BY prefers an output column of the same name: sorting the text
        // form would put id 9 after id 10.
        let texts: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} as pipectl_key_{i}", D::key_as_text(k)))
            .collect();
        let order: Vec<String> = keys.iter().map(|k| format!("{k} desc")).collect();
        Some(Statement {
            sql: format!(
                "select {} from {}{filter} order by {} limit 1",
                texts.join(", "),
                self.from,
                order.join(", ")
            ),
            params,
        })
    }

    /// The statement counting rows with a NULL key (for `null_keys: fail`).
    pub fn null_count_statement<D: Dialect>(&self) -> Option<String> {
        let b = self.bookmark.as_ref()?;
        (b.spec.null_keys == NullKeyPolicy::Fail).then(|| {
            let any_null: Vec<String> = b
                .spec
                .keys
                .iter()
                .map(|k| format!("{} is null", D::quote(k)))
                .collect();
            format!(
                "select count(*) from {} where {}",
                self.from,
                any_null.join(" or ")
            )
        })
    }
}

/// The text form of a stored bookmark value (stored as strings; numbers are accepted from
/// hand-set values).
fn bookmark_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `tables:` settings that apply to `schema.table` (first match in key order).
pub fn settings_for<'a>(spec: &'a DatabaseSource, table: &TableId) -> Option<&'a TableSettings> {
    spec.tables
        .iter()
        .find(|(pattern, _)| table.matches(pattern))
        .map(|(_, s)| s)
}

/// A source's include/exclude rules applied to the tables and views a database lists, keeping
/// count of what each include rule matched so that a rule matching nothing can be reported.
pub struct Selection<'a> {
    spec: &'a DatabaseSource,
    /// Per include rule: objects of its table type it matched, and objects of the other type
    /// whose names it matched (a view named by a rule for tables).
    hits: Vec<(usize, usize)>,
}

/// What a source lists before reading: the tables it reads and the include rules that matched
/// nothing (one message each).
#[derive(Debug)]
pub struct Listing<P> {
    /// One plan per table (or range of a table) to read.
    pub plans: Vec<P>,
    /// Include rules that matched no table, each with what to change.
    pub unmatched_rules: Vec<String>,
}

impl<'a> Selection<'a> {
    /// The rules of `spec`, before any object is looked at.
    pub fn new(spec: &'a DatabaseSource) -> Self {
        Selection {
            spec,
            hits: vec![(0, 0); spec.include.len()],
        }
    }

    /// Whether the database's tables are listed at all: with include rules, or without
    /// queries (a source of queries only reads its queries).
    pub fn lists_tables(&self) -> bool {
        !self.spec.include.is_empty() || self.spec.queries.is_empty()
    }

    /// Whether `schema.table` (a view when `view`) is read: an include rule selects it (no
    /// rules: every table, but no view) and no exclude rule does.
    pub fn select(&mut self, schema: &str, table: &str, view: bool) -> bool {
        let mut included = self.spec.include.is_empty() && !view;
        for (rule, hits) in self.spec.include.iter().zip(&mut self.hits) {
            if like_match(&rule.schema, schema) && like_match(&rule.table, table) {
                if rule.table_type.unwrap_or(TableType::Table).selects(view) {
                    hits.0 += 1;
                    included = true;
                } else {
                    hits.1 += 1;
                }
            }
        }
        let excluded = self.spec.exclude.iter().any(|r| {
            r.table_type.unwrap_or(TableType::All).selects(view)
                && like_match(&r.schema, schema)
                && like_match(&r.table, table)
        });
        included && !excluded
    }

    /// One message per include rule that matched no object of its type, saying what did.
    pub fn unmatched(&self) -> Vec<String> {
        self.spec
            .include
            .iter()
            .zip(&self.hits)
            .enumerate()
            .filter(|(_, (_, hits))| hits.0 == 0)
            .map(|(i, (rule, hits))| {
                let wanted = match rule.table_type.unwrap_or(TableType::Table) {
                    TableType::Table => "table",
                    TableType::View => "view",
                    TableType::All => "table or view",
                };
                let mut message = format!(
                    "include rule {} (schema `{}`, table `{}`) matches no {wanted}",
                    i + 1,
                    rule.schema,
                    rule.table
                );
                if hits.1 > 0 {
                    let (other, setting) = match wanted {
                        "table" => ("view", "view"),
                        _ => ("table", "table"),
                    };
                    message.push_str(&format!(
                        "; it names {} {other}{}: add `table_type: {setting}` (or `all`) to the rule",
                        hits.1,
                        if hits.1 == 1 { "" } else { "s" }
                    ));
                }
                message
            })
            .collect()
    }

    /// The listing of `plans`, with the rules that matched nothing.
    pub fn listing<P>(&self, plans: Vec<P>) -> Listing<P> {
        Listing {
            plans,
            unmatched_rules: self.unmatched(),
        }
    }
}

/// Applies the transformation rules, attaches the stored bookmark and builds the plan of one
/// table. Settings, rules and bookmark streams refer to the table's database name, so adding a
/// rename keeps the bookmark.
pub fn plan_table<D: Dialect>(
    source: &str,
    spec: &DatabaseSource,
    table: TableId,
    mut columns: Vec<DbColumn>,
    from: String,
    stored: &dyn Fn(&str) -> Option<Bookmark>,
) -> Result<TablePlan> {
    let bookmark = settings_for(spec, &table)
        .and_then(|s| s.bookmark.clone())
        .map(|b| {
            let stream = format!("{source}.{}.{}", table.schema, table.name);
            let previous = stored(&stream);
            (stream, b, previous)
        });
    let mut landed = table.clone();
    for rule in spec
        .transformations
        .iter()
        .filter(|r| table.matches(&r.tables))
    {
        let missing = |column: &str| {
            Error::user(format!(
                "table {table}: a transformation rule names column `{column}`, which the table does not have"
            ))
        };
        for column in &rule.remove_columns {
            if !columns.iter().any(|c| &c.source == column) {
                return Err(missing(column));
            }
            columns.retain(|c| &c.source != column);
        }
        for (column, to) in &rule.rename_columns {
            let c = columns
                .iter_mut()
                .find(|c| &c.source == column)
                .ok_or_else(|| missing(column))?;
            c.name = to.clone();
        }
        if let Some(to) = &rule.rename_table {
            landed.name = to.clone();
        }
        if let Some(prefix) = &rule.add_prefix {
            landed.name = format!("{prefix}{}", landed.name);
        }
        if rule.lowercase {
            landed.name = landed.name.to_lowercase();
            columns
                .iter_mut()
                .for_each(|c| c.name = c.name.to_lowercase());
        }
    }
    for c in columns.iter_mut().filter(|c| c.name != c.source) {
        let alias = format!(" as {}", D::quote(&c.source));
        let expr = c
            .select
            .strip_suffix(&alias)
            .unwrap_or(&c.select)
            .to_owned();
        c.select = format!("{expr} as {}", D::quote(&c.name));
    }
    let split = settings_for(spec, &table).and_then(|s| s.split.clone());
    if let Some(split) = &split {
        let column = columns
            .iter()
            .find(|c| c.source == split.column)
            .ok_or_else(|| {
                Error::user(format!(
                    "table {table}: split column `{}` is not a column it reads",
                    split.column
                ))
            })?;
        if !matches!(column.kind, ColumnKind::Int(_) | ColumnKind::UInt(_)) {
            return Err(Error::user(format!(
                "table {table}: split column `{}` is `{}`, not an integer; split on an integer column such as the primary key",
                split.column, column.declared
            )));
        }
    }
    let mut plan = TablePlan::new(landed, columns, from, bookmark)?;
    plan.source = table;
    plan.split = split;
    plan.infinity = spec.infinity;
    Ok(plan)
}

/// Cuts `[min, max]` of a split column into `parts` ranges of equal width, as SQL conditions
/// on `quoted`. The first range also takes NULLs and the last has no upper bound, so together
/// they cover every row.
pub fn split_ranges(quoted: &str, min: i64, max: i64, parts: usize) -> Vec<String> {
    let span = i128::from(max) - i128::from(min) + 1;
    let parts = (parts as i128).clamp(1, span.max(1));
    if parts <= 1 {
        return Vec::new();
    }
    let width = (span + parts - 1) / parts;
    (0..parts)
        .map(|i| {
            let low = i128::from(min) + i * width;
            let high = low + width;
            match (i == 0, i == parts - 1) {
                (true, _) => format!("({quoted} < {high} or {quoted} is null)"),
                (_, true) => format!("{quoted} >= {low}"),
                _ => format!("{quoted} >= {low} and {quoted} < {high}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::Postgres;
    use chrono::Utc;

    fn plan(previous: Option<Vec<&str>>, settle: Option<u64>) -> TablePlan {
        let col = |name: &str, declared: &str, kind| DbColumn {
            name: name.into(),
            source: name.into(),
            declared: declared.into(),
            kind,
            select: Postgres::quote(name),
        };
        let spec = BookmarkSpec {
            keys: vec!["updated at".into(), "id".into()],
            settle_secs: settle,
            null_keys: NullKeyPolicy::Skip,
        };
        let previous = previous.map(|values| Bookmark {
            pipeline: "p".into(),
            stream: "s".into(),
            keys: spec.keys.clone(),
            values: values.into_iter().map(|v| serde_json::json!(v)).collect(),
            key_types: Vec::new(),
            run_id: "r".into(),
            updated_at: Utc::now(),
        });
        TablePlan::new(
            TableId {
                source: "db".into(),
                schema: "public".into(),
                name: "t".into(),
            },
            vec![
                col("id", "bigint", ColumnKind::Int(8)),
                col(
                    "updated at",
                    "timestamp with time zone",
                    ColumnKind::TimestampUtc,
                ),
            ],
            "\"public\".\"t\"".into(),
            Some(("s".into(), spec, previous)),
        )
        .expect("valid plan")
    }

    #[test]
    fn compound_keys_compare_as_a_bound_tuple() {
        let p = plan(Some(vec!["2026-11-25 10:00:00.123456+00", "42"]), Some(30));
        let s = p.read_statement::<Postgres>();
        assert_eq!(
            s.sql,
            "select \"id\", \"updated at\" from \"public\".\"t\" where \"updated at\" is not null and \"id\" is not null and (\"updated at\", \"id\") > ($1::timestamp with time zone, $2::bigint) and \"updated at\" <= now() - make_interval(secs => $3::bigint)"
        );
        assert_eq!(s.params, ["2026-11-25 10:00:00.123456+00", "42", "30"]);
        let m = p.max_statement::<Postgres>().expect("bookmarked");
        assert!(
            m.sql
                .ends_with("order by \"updated at\" desc, \"id\" desc limit 1"),
            "{}",
            m.sql
        );
        assert_eq!(m.params, s.params);
    }

    #[test]
    fn first_run_reads_everything_with_a_key() {
        let p = plan(None, None);
        let s = p.read_statement::<Postgres>();
        assert!(s.params.is_empty());
        assert!(
            s.sql
                .ends_with("where \"updated at\" is not null and \"id\" is not null")
        );
    }

    #[test]
    fn split_ranges_cover_every_value_once() {
        let ranges = split_ranges("\"id\"", 1, 10, 3);
        assert_eq!(
            ranges,
            [
                "(\"id\" < 5 or \"id\" is null)",
                "\"id\" >= 5 and \"id\" < 9",
                "\"id\" >= 9",
            ]
        );
        // Fewer values than parts: one range per value at most; a single value is not split.
        assert_eq!(split_ranges("c", 7, 8, 4).len(), 2);
        assert!(split_ranges("c", 5, 5, 4).is_empty());
        // The extremes of i64 do not overflow.
        assert_eq!(split_ranges("c", i64::MIN, i64::MAX, 64).len(), 64);
    }
}
