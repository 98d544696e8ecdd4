//! Live progress while a run goes on: bars on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipectl_engine::executor::StepProgress;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::render::{human_bytes, human_count};

/// A running progress display; [`Display::stop`] ends it.
pub(crate) struct Display {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Display {
    /// Starts showing progress of `steps` on stderr (nothing when `quiet`).
    pub(crate) fn start(steps: &[StepProgress], run_id: &str, quiet: bool) -> Display {
        if quiet {
            return Display {
                stop: None,
                task: None,
            };
        }
        let (tx, mut rx) = oneshot::channel();
        let steps = steps.to_vec();
        let terminal = std::io::stderr().is_terminal();
        eprintln!("run {run_id}");
        let task = tokio::spawn(async move {
            let multi = MultiProgress::with_draw_target(if terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            });
            let style = ProgressStyle::with_template("{spinner} {prefix:<24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars: Vec<ProgressBar> = steps
                .iter()
                .map(|s| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("{} {}", s.kind.noun(), s.name));
                    bar
                })
                .collect();
            let mut reported = vec![false; steps.len()];
            let mut ticks = 0u64;
            let tick = if terminal {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            loop {
                let stopping = tokio::select! {
                    _ = &mut rx => true,
                    _ = tokio::time::sleep(tick) => false,
                };
                ticks += 1;
                for (i, s) in steps.iter().enumerate() {
                    let rows = s.metrics.rows.load(Ordering::Relaxed);
                    let bytes = s.metrics.bytes.load(Ordering::Relaxed);
                    let secs = s.metrics.elapsed().as_secs_f64().max(1e-3);
                    let line = format!(
                        "{} rows  {}  {} rows/s",
                        human_count(rows),
                        human_bytes(bytes),
                        human_count((rows as f64 / secs) as u64)
                    );
                    if terminal {
                        bars[i].set_message(line);
                        bars[i].tick();
                        if s.metrics.is_finished() && !bars[i].is_finished() {
                            bars[i].finish();
                        }
                    } else if s.metrics.is_finished() && !reported[i] {
                        reported[i] = true;
                        eprintln!("{} {} finished: {line}", s.kind.noun(), s.name);
                    } else if ticks.is_multiple_of(10) && !s.metrics.is_finished() && rows > 0 {
                        eprintln!("{} {}: {line}", s.kind.noun(), s.name);
                    }
                }
                if stopping {
                    for bar in &bars {
                        bar.finish_and_clear();
                    }
                    break;
                }
            }
        });
        Display {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the display and waits for it to clear its lines.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
