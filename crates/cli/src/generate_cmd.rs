//! `pipectl generate`: the Kinesis Data Generator as a command, publishing records rendered
//! from a template at a fixed rate to NATS, MQTT or a Direct PUT endpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use pipectl_spec::lang::template::Template;
use pipectl_stream::generate::{GenerateOptions, Target};
use tokio_util::sync::CancellationToken;

use crate::{UsageError, print_out, runtime};

/// Arguments of `pipectl generate`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["nats", "mqtt", "http"])))]
pub(crate) struct GenerateArgs {
    /// Record template, e.g. '{"film_id": {{random.number({"min":1,"max":1000})}}}'.
    #[arg(
        long,
        conflicts_with = "template_file",
        required_unless_present = "template_file"
    )]
    template: Option<String>,
    /// File holding the record template.
    #[arg(long)]
    template_file: Option<PathBuf>,
    /// Records per second. Default: as fast as the target takes them.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Seed for reproducible values.
    #[arg(long)]
    seed: Option<u64>,
    /// Publish to this NATS server (with --subject).
    #[arg(long, requires = "subject")]
    nats: Option<String>,
    /// NATS subject.
    #[arg(long)]
    subject: Option<String>,
    /// Publish to NATS without waiting for JetStream to store each record.
    #[arg(long)]
    no_jetstream: bool,
    /// Publish to this MQTT broker (with --topic), QoS 1.
    #[arg(long, requires = "topic")]
    mqtt: Option<String>,
    /// MQTT topic.
    #[arg(long)]
    topic: Option<String>,
    /// PUT to this Direct PUT endpoint of an `http` source, e.g. http://127.0.0.1:8443.
    #[arg(long)]
    http: Option<String>,
    /// Environment variable holding the endpoint's bearer token.
    #[arg(long)]
    token_env: Option<String>,
    /// Records per PutRecordBatch request (at most 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

/// Runs `pipectl generate`.
pub(crate) fn run(args: GenerateArgs) -> Result<ExitCode> {
    let text = match (&args.template, &args.template_file) {
        (Some(t), _) => t.clone(),
        // A file's final newline is not part of the record.
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the template {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        (None, None) => return Err(UsageError("give --template or --template-file".into()).into()),
    };
    let template = Template::parse(&text).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("template {}:{}: {}", e.line, e.column, e.message))
            .collect();
        UsageError(lines.join("\n"))
    })?;
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(UsageError("--rate must be greater than 0".into()).into());
    }
    let target = if let Some(url) = args.nats {
        Target::Nats {
            url,
            subject: args.subject.unwrap_or_default(),
            jetstream: !args.no_jetstream,
        }
    } else if let Some(url) = args.mqtt {
        Target::Mqtt {
            url,
            topic: args.topic.unwrap_or_default(),
        }
    } else if let Some(url) = args.http {
        let token = match &args.token_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                UsageError(format!(
                    "environment variable `{var}` (--token-env) is not set"
                ))
            })?),
            None => None,
        };
        Target::Http {
            url,
            token,
            batch: args.batch,
        }
    } else {
        return Err(UsageError("give --nats, --mqtt or --http".into()).into());
    };
    let options = GenerateOptions {
        template,
        rate: args.rate,
        count: args.count,
        duration: args.duration_secs.map(Duration::from_secs_f64),
        seed: args.seed,
        target,
    };
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let sent = runtime()?.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            crate::serve::stop_signal().await;
            on_signal.cancel();
        });
        pipectl_stream::generate::generate(options, cancel).await
    });
    let sent = sent.map_err(|e| anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    print_out(&format!(
        "sent {sent} records in {secs:.1} s ({:.0} records/s)\n",
        sent as f64 / secs.max(1e-9)
    ))?;
    Ok(ExitCode::SUCCESS)
}
