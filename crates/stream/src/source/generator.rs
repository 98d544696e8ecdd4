//! The generator at a fixed rate, as a streaming source: the Kinesis Data Generator feeding a
//! firehose sink. It runs until `count` or `duration_secs` is reached, or until stopped.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use pipectl_engine::Result;
use pipectl_engine::source::generator::parse_template;
use pipectl_spec::lang::template::{RenderContext, Template};
use pipectl_spec::types::GeneratorSource as GeneratorSpec;

use super::{Running, StreamSource, hand_over};
use crate::record::{Batch, Record};

/// Records rendered per batch at most; smaller at low rates so records leave on time.
const MAX_BATCH: usize = 1000;

/// A generator as a stream.
pub struct GeneratorStream {
    template: Template,
    spec: GeneratorSpec,
}

impl GeneratorStream {
    /// Parses the template (already validated with the spec).
    pub fn new(name: &str, spec: &GeneratorSpec) -> Result<Self> {
        let template = parse_template(name, &spec.template)?;
        Ok(GeneratorStream {
            template,
            spec: spec.clone(),
        })
    }
}

impl StreamSource for GeneratorStream {
    fn run(self: Box<Self>, out: mpsc::Sender<Batch>, cancel: CancellationToken) -> Running {
        Box::pin(async move {
            let mut ctx = RenderContext::new(self.spec.seed);
            let start = Instant::now();
            let end = self
                .spec
                .duration_secs
                .map(|d| start + Duration::from_secs_f64(d));
            let total = self.spec.count.unwrap_or(u64::MAX);
            let batch_size = match self.spec.rate_per_sec {
                Some(rate) => ((rate / 10.0).ceil() as usize).clamp(1, MAX_BATCH),
                None => MAX_BATCH,
            };
            let mut sent: u64 = 0;
            let mut text = String::new();
            while sent < total && end.is_none_or(|e| Instant::now() < e) {
                if let Some(rate) = self.spec.rate_per_sec {
                    let due = start + Duration::from_secs_f64(sent as f64 / rate);
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(due) => {}
                    }
                } else if cancel.is_cancelled() {
                    return Ok(());
                }
                let n = (batch_size as u64).min(total - sent) as usize;
                // One buffer for the batch; each record's data is a slice of it.
                text.clear();
                let mut rendered = Vec::with_capacity(n);
                for _ in 0..n {
                    let now = chrono::Utc::now();
                    ctx.set_now(now);
                    let start = text.len();
                    self.template.render(&mut ctx, &mut text);
                    rendered.push((start..text.len(), now));
                }
                let buffer = Bytes::from(std::mem::take(&mut text));
                let records = rendered
                    .into_iter()
                    .map(|(range, arrival)| {
                        sent += 1;
                        Record {
                            seq: sent,
                            arrival,
                            data: buffer.slice(range),
                        }
                    })
                    .collect();
                let batch = Batch {
                    records,
                    ack: None,
                    flush: false,
                };
                hand_over(&out, batch, &cancel).await?;
            }
            Ok(())
        })
    }
}
