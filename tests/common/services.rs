//! The services tests need: where the local S3 server is, and skipping a test whose service
//! is missing (or failing it where services are required).
//!
//! Shared, through `#[path]`, by the integration tests (`tests/common`) and the pipectl-delta
//! crate's own tests, which cannot depend on the tests package.

/// Marks the running test as skipped because `reason` (a missing service): prints
/// `SKIP <test>: <reason>` on stderr and, when `PIPECTL_TEST_SKIP_LOG` names a file (as
/// `scripts/test.sh` does), appends the same line there, so the runner's summary lists every
/// skipped test: nextest counts a test that returns early as passed and hides its output.
/// Call it only after [`services_required`] said skipping is allowed.
pub(crate) fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Ok(log) = std::env::var("PIPECTL_TEST_SKIP_LOG")
        && let Err(e) = append_line(&log, &line)
    {
        eprintln!("cannot append to PIPECTL_TEST_SKIP_LOG {log}: {e}");
    }
}

/// Appends `line` to the file `path`, creating it if needed.
fn append_line(path: &str, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

/// True when tests must fail rather than skip when a service is missing (CI).
pub(crate) fn services_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("PIPECTL_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// The address of a service a test needs, from the environment variable `var`. When it is
/// unset: a failure saying `to_start` where services are required, else `None` after marking
/// the test skipped, saying `started_by`.
pub(crate) fn service_address(var: &str, to_start: &str, started_by: &str) -> Option<String> {
    let address = std::env::var(var).ok();
    if address.is_none() {
        assert!(!services_required(), "{var} is not set: {to_start}");
        skip(&format!("{var} not set ({started_by})"));
    }
    address
}

/// The local S3 server's endpoint and bucket (`scripts/s3-server.sh`, started by
/// `scripts/test.sh`), or `None` after marking the test skipped; fails instead in CI.
pub(crate) fn s3_server() -> Option<(String, String)> {
    let endpoint = service_address(
        "PIPECTL_TEST_S3_ENDPOINT",
        "start the S3 server with scripts/s3-server.sh",
        "scripts/test.sh starts a local S3 server",
    )?;
    let bucket =
        std::env::var("PIPECTL_TEST_S3_BUCKET").unwrap_or_else(|_| "pipectl-test".to_owned());
    Some((endpoint, bucket))
}

/// A client of `bucket` on the local S3 server at `endpoint` (see [`s3_server`]), with the
/// keys from the environment.
pub(crate) fn s3_store(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .build()
        .unwrap()
}
