//! `pipectl cdc`: operations on change data capture sources (dropping a pipeline's slot).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use pipectl_engine::connect::Connections;
use pipectl_engine::source::postgres_cdc::drop::{self, Dropped};
use pipectl_spec::types::{PostgresCdcSource, Source};
use pipectl_state::StateStore;

use crate::{UsageError, base_dir, env_lookup, load_or_report, print_out, runtime};

/// What `pipectl cdc` does.
#[derive(Subcommand)]
pub(crate) enum CdcAction {
    /// Drop the replication slot of a pipeline's `postgres_cdc` sources, and their
    /// publication when pipectl created it, and reset their position: the next run copies
    /// the tables again (`snapshot: initial`). Refused while a run streams from the slot.
    DropSlot {
        /// The pipeline file.
        file: PathBuf,
        /// Only this source step (default: every `postgres_cdc` source of the pipeline).
        #[arg(long)]
        source: Option<String>,
        /// Do it; without this flag the command only says what it would drop.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `pipectl cdc` action.
pub(crate) fn run(action: CdcAction, state_dir: &Path) -> Result<ExitCode> {
    let CdcAction::DropSlot { file, source, yes } = action;
    let Some(spec) = load_or_report(&file, false)? else {
        return Ok(ExitCode::from(1));
    };
    let pipeline = &spec.pipeline;
    let sources: Vec<(&String, &PostgresCdcSource)> = pipeline
        .sources
        .iter()
        .filter_map(|(name, s)| match s {
            Source::PostgresCdc(cdc) => Some((name, cdc)),
            _ => None,
        })
        .filter(|(name, _)| source.as_ref().is_none_or(|s| s == *name))
        .collect();
    if sources.is_empty() {
        return Err(UsageError(match &source {
            Some(s) => format!(
                "{}: pipeline {} has no postgres_cdc source `{s}`",
                file.display(),
                pipeline.name
            ),
            None => format!(
                "{}: pipeline {} has no postgres_cdc source",
                file.display(),
                pipeline.name
            ),
        })
        .into());
    }
    let display = file.display().to_string();
    let connections = Connections::resolve(pipeline, &base_dir(&file), env_lookup)
        .map_err(|e| anyhow!("{display}: {e}"))?;
    let rt = runtime()?;
    let mut text = String::new();
    for (name, cdc) in &sources {
        let url = connections
            .database_url(&cdc.connection, "postgres")
            .map_err(|e| anyhow!("{display}: source `{name}`: {e}"))?;
        let found = if yes {
            rt.block_on(drop::drop_slot(&url, cdc))
        } else {
            rt.block_on(drop::inspect_slot(&url, cdc))
        }
        .map_err(|e| anyhow!("source `{name}`: {e}"))?;
        text.push_str(&describe(name, cdc, &found, yes));
        if yes {
            reset_position(state_dir, &pipeline.name, name)?;
            text.push_str(&format!(
                "source `{name}`: position reset; the next run creates the slot again and copies the tables (`snapshot: initial` or `when_needed`; with `never` it streams from the new slot)\n"
            ));
        }
    }
    if !yes {
        text.push_str("nothing dropped: run again with --yes to drop\n");
    }
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn describe(name: &str, cdc: &PostgresCdcSource, found: &Dropped, done: bool) -> String {
    let drop = if done { "dropped" } else { "would drop" };
    let slot = if found.slot {
        format!("source `{name}`: replication slot {}: {drop}\n", cdc.slot)
    } else {
        format!(
            "source `{name}`: replication slot {}: does not exist\n",
            cdc.slot
        )
    };
    let publication = match found.publication {
        None => "does not exist".to_owned(),
        Some(true) => format!("{drop} (pipectl created it)"),
        Some(false) => {
            "kept (not created by pipectl; `DROP PUBLICATION` it yourself if no one needs it)"
                .to_owned()
        }
    };
    format!(
        "{slot}source `{name}`: publication {}: {publication}\n",
        cdc.publication
    )
}

/// Deletes the source's bookmark, in the daemon's store when `pipectl serve` holds it.
fn reset_position(state_dir: &Path, pipeline: &str, step: &str) -> Result<()> {
    match crate::open_state_or_daemon(state_dir)? {
        Ok(store) => {
            store.delete_bookmark(pipeline, step)?;
        }
        Err(addr) => {
            let args = ["state", "reset", pipeline, step]
                .map(str::to_owned)
                .to_vec();
            // No bookmark to reset is fine: the slot never got a committed position.
            if let Err(e) = crate::serve::forward(addr, args)
                && !e.to_string().contains("has no bookmark")
            {
                return Err(e);
            }
        }
    }
    Ok(())
}
