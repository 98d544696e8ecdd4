//! `pipectl run` of a streaming pipeline (one with a `firehose` sink): runs until Ctrl-C or
//! SIGTERM, which flush every buffer, publish, acknowledge and exit 0.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use pipectl_spec::LoadedSpec;
use pipectl_state::StateStore;
use tokio_util::sync::CancellationToken;

use crate::{OutputFormat, base_dir, env_lookup, progress, runtime};

/// Runs a streaming pipeline until it is stopped or its source ends.
pub(crate) fn run(
    file: &Path,
    spec: &LoadedSpec,
    state: Arc<dyn StateStore>,
    state_dir: &Path,
    format: OutputFormat,
    quiet: bool,
) -> Result<ExitCode> {
    let cancel = CancellationToken::new();
    let prepared = pipectl_stream::prepare(
        spec,
        &base_dir(file),
        state,
        state_dir,
        cancel.clone(),
        "manual",
        env_lookup,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let runtime = runtime()?;
    let record = runtime.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            crate::serve::stop_signal().await;
            eprintln!("\nstopping: flushing buffers, publishing and acknowledging (press Ctrl-C again to force)");
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
        let display = progress::Display::start(&prepared.steps, &prepared.run_id, quiet);
        let result = prepared.execute().await;
        display.stop().await;
        result
    });
    let record = record.map_err(|e| anyhow!("{e}"))?;
    crate::report_run(&record, spec, format, quiet, None)
}
