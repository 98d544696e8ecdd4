//! Skipping a test whose service is missing, or failing it where services are required.
//!
//! Shared, through `#[path]`, by the integration tests (`tests/common`) and the pipectl-delta
//! crate's own tests, which cannot depend on the tests package.

/// Marks the running test as skipped because `reason` (a missing service): prints
/// `SKIP <test>: <reason>` on stderr and, when `PIPECTL_TEST_SKIP_LOG` names a file (as
/// `scripts/test.sh` does), appends the same line there, so the runner's summary lists every
/// skipped test: nextest counts a test that returns early as passed and hides its output.
/// Call it only after [`services_required`] said skipping is allowed.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Ok(log) = std::env::var("PIPECTL_TEST_SKIP_LOG") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("cannot append to PIPECTL_TEST_SKIP_LOG {log}: {e}");
        }
    }
}

/// True when tests must fail rather than skip when a service is missing (CI).
pub fn services_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("PIPECTL_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
}
