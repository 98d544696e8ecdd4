//! Text output for people: summaries, run lists, plans.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};
use pipectl_engine::plan::Plan;
use pipectl_spec::LoadedSpec;
use pipectl_state::{RunRecord, StepRecord};

/// `1234567` -> `1,234,567`.
pub(crate) fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` -> `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// A step's row in a run's table: name, kind, status, rows, bytes, time, then `last`.
fn step_row(s: &StepRecord, last: String) -> [String; 7] {
    [
        s.name.clone(),
        s.kind.clone(),
        s.status.to_string(),
        human_count(s.rows),
        human_bytes(s.bytes),
        duration(s.duration_ms),
        last,
    ]
}

fn table() -> Table {
    let mut t = Table::new();
    *t.style_mut() = UTF8_BORDERS_ONLY;
    t
}

/// The end-of-run summary: one row per step, then where the output went.
pub(crate) fn run_summary(run: &RunRecord, spec: &LoadedSpec) -> String {
    let mut t = table();
    t.set_header(["step", "kind", "status", "rows", "bytes", "time", "rows/s"]);
    for s in &run.steps {
        let rate = (s.rows * 1000)
            .checked_div(s.duration_ms)
            .map_or_else(|| "-".to_owned(), human_count);
        t.add_row(step_row(s, rate));
    }
    for col in 3..7 {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!("{t}\n");
    out.push_str(&run_outcome(run));
    if !run.publish.is_empty() && run.error.is_none() {
        out.push_str(&format!(
            "published {} file{}:\n",
            run.publish.len(),
            if run.publish.len() == 1 { "" } else { "s" }
        ));
        for p in run.publish.iter().take(20) {
            let url = spec
                .pipeline
                .connections
                .get(&p.connection)
                .map(|c| c.url.trim_end_matches('/'))
                .unwrap_or("");
            out.push_str(&format!("  {url}/{}\n", p.final_key));
        }
        if run.publish.len() > 20 {
            out.push_str(&format!(
                "  ... and {} more (pipectl runs show {})\n",
                run.publish.len() - 20,
                run.id
            ));
        }
    }
    out
}

/// The last line of a run's summary (`run ID of PIPELINE: succeeded in 1.20 s`) and its
/// error, if any: all that `-q` prints.
pub(crate) fn run_outcome(run: &RunRecord) -> String {
    let elapsed = run
        .ended_at
        .map(|e| (e - run.started_at).num_milliseconds().max(0) as u64)
        .unwrap_or(0);
    let mut out = format!(
        "run {} of {}: {} in {}\n",
        run.id,
        run.pipeline,
        run.status,
        duration(elapsed)
    );
    if let Some(error) = &run.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out
}

/// `pipectl runs`.
pub(crate) fn run_list(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_owned();
    }
    let mut t = table();
    t.set_header([
        "run",
        "pipeline",
        "status",
        "started (UTC)",
        "time",
        "rows",
        "error",
    ]);
    for r in runs {
        let elapsed = r
            .ended_at
            .map(|e| duration((e - r.started_at).num_milliseconds().max(0) as u64))
            .unwrap_or_else(|| "-".to_owned());
        let rows: u64 = r
            .steps
            .iter()
            .filter(|s| s.kind == "sink")
            .map(|s| s.rows)
            .sum();
        let error: String = r
            .error
            .clone()
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        t.add_row([
            r.id.clone(),
            r.pipeline.clone(),
            r.status.to_string(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            elapsed,
            human_count(rows),
            error,
        ]);
    }
    format!("{t}\n")
}

/// `pipectl runs show ID`.
pub(crate) fn run_details(r: &RunRecord) -> String {
    let mut out = format!(
        "run:       {}\npipeline:  {}\nstatus:    {}\ntrigger:   {}\nspec hash: {}\nstarted:   {}\nended:     {}\n",
        r.id,
        r.pipeline,
        r.status,
        r.trigger,
        r.spec_hash,
        r.started_at.to_rfc3339(),
        r.ended_at
            .map(|e| e.to_rfc3339())
            .unwrap_or_else(|| "-".to_owned()),
    );
    if let Some(e) = &r.error {
        out.push_str(&format!("error:     {e}\n"));
    }
    let mut t = table();
    t.set_header(["step", "kind", "status", "rows", "bytes", "time", "error"]);
    for s in &r.steps {
        t.add_row(step_row(s, s.error.clone().unwrap_or_default()));
    }
    out.push_str(&format!("{t}\n"));
    for s in &r.steps {
        if let Some(lag) = &s.replication_lag {
            out.push_str(&format!(
                "replication lag of `{}` at the start: {} of WAL, oldest waiting change {:.1} s old\n",
                s.name,
                human_bytes(lag.bytes),
                lag.seconds
            ));
        }
    }
    if !r.publish.is_empty() {
        out.push_str("files:\n");
        for p in &r.publish {
            out.push_str(&format!("  {} ({})\n", p.final_key, p.connection));
        }
    }
    out
}

/// `pipectl plan --at`: the keys each firehose sink would write at `at`.
pub(crate) fn key_previews(
    previews: &[pipectl_stream::firehose::keys::KeyPreview],
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    if previews.is_empty() {
        return "\nno firehose sinks: no object keys to show\n".to_owned();
    }
    let mut out = format!(
        "\nobject keys at {} (objects of sequence 1 to 1, relative to the connection):\n",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for p in previews {
        out.push_str(&format!(
            "  sink {} (connection {}):\n",
            p.sink, p.connection
        ));
        let width = p
            .error_keys
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("data".len());
        match (&p.object_key, &p.record_error) {
            (Some(key), _) => out.push_str(&format!("    {:width$}  {key}\n", "data")),
            (None, Some(reason)) => out.push_str(&format!(
                "    {:width$}  the sample record goes to the error output ({reason})\n",
                "data"
            )),
            (None, None) => {}
        }
        for (kind, key) in &p.error_keys {
            out.push_str(&format!("    {kind:width$}  {key}\n"));
        }
        if !p.partition_values.is_empty() {
            let values: Vec<String> = p
                .partition_values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "    partition values of the sample record: {}\n",
                values.join(", ")
            ));
        }
    }
    out
}

/// `pipectl plan` as text.
pub(crate) fn plan(plan: &Plan) -> String {
    let mut out = format!(
        "pipeline {} ({}, spec {})\n",
        plan.pipeline, plan.file, plan.spec_hash
    );
    if let Some(s) = &plan.schedule {
        out.push_str(&format!(
            "schedule: {} ({}); next: {}\n",
            s.cron,
            s.timezone,
            s.next.join(", ")
        ));
    }
    if !plan.connections.is_empty() {
        out.push_str("connections:\n");
        for (name, url) in &plan.connections {
            out.push_str(&format!("  {name}: {url}\n"));
        }
    }
    out.push_str("steps, in order:\n");
    for (i, step) in plan.steps.iter().enumerate() {
        let inputs = if step.inputs.is_empty() {
            String::new()
        } else {
            format!(" <- {}", step.inputs.join(", "))
        };
        out.push_str(&format!(
            "{}. {} {} ({}){inputs}\n",
            i + 1,
            step.kind.noun(),
            step.name,
            step.step_type
        ));
        if let serde_json::Value::Object(settings) = &step.settings {
            for (k, v) in settings {
                if k == "type" || k == "inputs" {
                    continue;
                }
                let text = match v {
                    serde_json::Value::String(s) if s.contains('\n') => {
                        format!("|\n      {}", s.trim_end().replace('\n', "\n      "))
                    }
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!("     {k}: {text}\n"));
            }
        }
        for r in &step.reads {
            out.push_str(&format!("     reads {}: {}\n", r.table, r.query));
            for (i, p) in r.params.iter().enumerate() {
                out.push_str(&format!("       ${} = {p:?}\n", i + 1));
            }
            if !r.columns.is_empty() {
                out.push_str(&format!("       columns: {}\n", r.columns.join(", ")));
            }
        }
        for w in &step.writes {
            out.push_str(&format!("     writes {} -> {}\n", w.table, w.key));
        }
        for n in &step.notes {
            out.push_str(&format!("     note: {n}\n"));
        }
        for w in &step.warnings {
            out.push_str(&format!("     warning: {w}\n"));
        }
    }
    out
}
