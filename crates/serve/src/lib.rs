//! `pipectl serve`: the daemon that runs pipelines on their schedules.
//!
//! [`scheduler`] decides when runs start (cron in a time zone, overlap, catch-up, retries,
//! timeouts) against an injectable [`clock::Clock`]; [`runner`] executes runs with the
//! engine; [`daemon`] loads and reloads pipeline files, recovers after a crash, prunes history
//! and serves the HTTP API ([`api`]); [`client`] is what other `pipectl` commands use to reach
//! a daemon that holds the state store.
#![warn(missing_docs, unreachable_pub)]

mod api;
pub mod client;
pub mod clock;
pub mod cron;
pub mod daemon;
mod maintenance;
pub mod metrics;
pub mod policy;
pub mod runner;
pub mod scheduler;
pub mod streams;

#[cfg(test)]
mod scheduler_tests;
