//! `pipectl state`: inspect and move job bookmarks (show with history, set, reset, rewind).

use anyhow::Result;
use chrono::Utc;
use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::UTF8_BORDERS_ONLY;
use pipectl_engine::source::key_type::KeyType;
use pipectl_state::{Bookmark, StateStore};

use crate::UsageError;

/// What `pipectl state` does.
#[derive(Subcommand)]
pub(crate) enum StateAction {
    /// One stream's bookmark with the history of its values, one line per run that moved it.
    Show {
        /// Pipeline name.
        pipeline: String,
        /// Stream: `<source step>.<schema>.<table>`, as listed by `pipectl state`.
        stream: String,
    },
    /// Set a stream's bookmark by hand; the next run reads rows after these values.
    Set {
        /// Pipeline name.
        pipeline: String,
        /// Stream: `<source step>.<schema>.<table>`.
        stream: String,
        /// Key columns, in order. Default: the keys of the stored bookmark.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// One value per key, in the database's text form (`2026-11-25 10:00:00+00`, `42`).
        #[arg(long = "value", required = true)]
        values: Vec<String>,
    },
    /// Delete a stream's bookmark: its next run reads everything again. History is kept.
    Reset {
        /// Pipeline name.
        pipeline: String,
        /// Stream: `<source step>.<schema>.<table>`.
        stream: String,
    },
    /// Put a stream's bookmark back where it was before a run moved it (to re-read that run's rows).
    Rewind {
        /// Pipeline name.
        pipeline: String,
        /// Stream: `<source step>.<schema>.<table>`.
        stream: String,
        /// The run to undo: the bookmark returns to its value before this run (or is reset if the
        /// run was the first to set it).
        #[arg(long)]
        before: String,
    },
}

fn table() -> Table {
    let mut t = Table::new();
    *t.style_mut() = UTF8_BORDERS_ONLY;
    t
}

fn values(b: &Bookmark) -> String {
    b.keys
        .iter()
        .zip(&b.values)
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bookmarks of one pipeline (or all), as a table or JSON.
pub(crate) fn list(store: &dyn StateStore, pipeline: Option<&str>, json: bool) -> Result<String> {
    let bookmarks = store.bookmarks(pipeline)?;
    if json {
        return Ok(serde_json::to_string_pretty(&bookmarks)? + "\n");
    }
    if bookmarks.is_empty() {
        return Ok("no bookmarks yet\n".to_owned());
    }
    let mut t = table();
    t.set_header(["pipeline", "stream", "position", "set by run", "at (UTC)"]);
    for b in &bookmarks {
        t.add_row([
            b.pipeline.clone(),
            b.stream.clone(),
            values(b),
            b.run_id.clone(),
            b.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    Ok(format!("{t}\n"))
}

/// Carries out one action; returns what to print.
pub(crate) fn act(store: &dyn StateStore, action: StateAction, json: bool) -> Result<String> {
    match action {
        StateAction::Show { pipeline, stream } => {
            let current = store.bookmark(&pipeline, &stream)?;
            let history = store.bookmark_history(&pipeline, &stream)?;
            if current.is_none() && history.is_empty() {
                return Err(no_bookmark(&pipeline, &stream).into());
            }
            if json {
                return Ok(serde_json::to_string_pretty(&serde_json::json!({
                    "current": current,
                    "history": history,
                }))? + "\n");
            }
            let mut out = match &current {
                Some(b) => format!("{pipeline} {stream}: {} (run {})\n", values(b), b.run_id),
                None => format!("{pipeline} {stream}: reset; the next run reads everything\n"),
            };
            let mut t = table();
            t.set_header(["#", "position", "set by run", "at (UTC)"]);
            for (i, b) in history.iter().enumerate() {
                t.add_row([
                    (i + 1).to_string(),
                    values(b),
                    b.run_id.clone(),
                    b.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                ]);
            }
            out.push_str(&format!("history, oldest first:\n{t}\n"));
            Ok(out)
        }
        StateAction::Set {
            pipeline,
            stream,
            keys,
            values: new_values,
        } => {
            // The last position a run stored gives the keys and their column types.
            let stored = store.bookmark(&pipeline, &stream)?.or_else(|| {
                store
                    .bookmark_history(&pipeline, &stream)
                    .ok()
                    .and_then(|h| h.last().cloned())
            });
            let keys = if keys.is_empty() {
                stored.as_ref().map(|b| b.keys.clone()).ok_or_else(|| {
                    UsageError(format!(
                        "stream `{stream}` of pipeline `{pipeline}` has no bookmark yet; name its keys with --key"
                    ))
                })?
            } else {
                keys
            };
            if keys.len() != new_values.len() {
                return Err(UsageError(format!(
                    "{} key(s) ({}) but {} value(s); give one --value per key",
                    keys.len(),
                    keys.join(", "),
                    new_values.len()
                ))
                .into());
            }
            let key_types = key_types(stored.as_ref(), &keys);
            for ((key, value), declared) in keys.iter().zip(&new_values).zip(&key_types) {
                KeyType::of(declared).check(value).map_err(|e| {
                    UsageError(format!(
                        "key `{key}` of {stream} is `{declared}`: {e}; nothing was changed"
                    ))
                })?;
            }
            let bookmark = Bookmark {
                pipeline,
                stream,
                keys,
                values: new_values
                    .into_iter()
                    .map(serde_json::Value::String)
                    .collect(),
                key_types,
                run_id: "manual".to_owned(),
                updated_at: Utc::now(),
            };
            store.set_bookmark(&bookmark)?;
            Ok(format!(
                "{} {}: set to {}\n",
                bookmark.pipeline,
                bookmark.stream,
                values(&bookmark)
            ))
        }
        StateAction::Reset { pipeline, stream } => {
            if store.delete_bookmark(&pipeline, &stream)? {
                Ok(format!(
                    "{pipeline} {stream}: reset; the next run reads everything\n"
                ))
            } else {
                Err(no_bookmark(&pipeline, &stream).into())
            }
        }
        StateAction::Rewind {
            pipeline,
            stream,
            before,
        } => {
            let history = store.bookmark_history(&pipeline, &stream)?;
            let matches: Vec<usize> = history
                .iter()
                .enumerate()
                .filter(|(_, b)| b.run_id == before || b.run_id.starts_with(&before))
                .map(|(i, _)| i)
                .collect();
            let Some(&at) = matches.first() else {
                return Err(UsageError(format!(
                    "run `{before}` did not move the bookmark of {stream}; see `pipectl state show {pipeline} {stream}`"
                ))
                .into());
            };
            match at.checked_sub(1).map(|i| &history[i]) {
                Some(previous) => {
                    let mut b = previous.clone();
                    b.run_id = format!("rewind-before-{}", history[at].run_id);
                    b.updated_at = Utc::now();
                    store.set_bookmark(&b)?;
                    Ok(format!(
                        "{pipeline} {stream}: rewound to {} (before run {})\n",
                        values(&b),
                        history[at].run_id
                    ))
                }
                None => {
                    store.delete_bookmark(&pipeline, &stream)?;
                    Ok(format!(
                        "{pipeline} {stream}: run {} set the first position; reset, the next run reads everything\n",
                        history[at].run_id
                    ))
                }
            }
        }
    }
}

/// The declared types of `keys`, from the position a run stored (by key name), or none when
/// a key's type is not known: such values are set unchecked.
fn key_types(stored: Option<&Bookmark>, keys: &[String]) -> Vec<String> {
    let Some(stored) = stored else {
        return Vec::new();
    };
    let types: Option<Vec<String>> = keys
        .iter()
        .map(|k| {
            let i = stored.keys.iter().position(|s| s == k)?;
            stored.key_types.get(i).cloned()
        })
        .collect();
    types.unwrap_or_default()
}

fn no_bookmark(pipeline: &str, stream: &str) -> UsageError {
    UsageError(format!(
        "pipeline `{pipeline}` has no bookmark for stream `{stream}`; list them with `pipectl state {pipeline}`"
    ))
}
