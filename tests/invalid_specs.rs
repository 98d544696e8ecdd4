//! `pipectl validate` on a corpus of broken specs: each file under `tests/fixtures/invalid/`
//! holds a realistic pipeline with one mistake (a few hold many, to prove that one pass reports
//! them all), and its rendered diagnostics are pinned in the `.expected` file beside it.
//!
//! Every fixture starts with a `# what this checks` comment, except `01-empty-file.yaml`, which
//! would no longer be empty. Refresh the goldens with `SNAPSHOTS=overwrite` and read the diff as
//! a user would: each message must say what is wrong, where, and what to do.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipectl_spec::{Diagnostic, load_bytes};

use crate::common::{golden, output, pipectl, repo};

const FIXTURES: &str = "tests/fixtures/invalid";

/// The fewest fixtures the corpus may shrink to before this test objects.
const MIN_FIXTURES: usize = 40;

/// The fixture files, sorted by name.
fn fixtures() -> Vec<PathBuf> {
    let dir = repo().join(FIXTURES);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks what every diagnostic must carry, whatever the input; returns the violations.
fn malformed_diagnostics(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.line < 1 || d.column < 1 || d.message.trim().is_empty())
        .map(|d| format!("{}:{}: {:?}", d.line, d.column, d.message))
        .collect()
}

fn render(diags: &[Diagnostic]) -> String {
    let blocks: Vec<String> = diags.iter().map(ToString::to_string).collect();
    blocks.join("\n\n") + "\n"
}

#[test]
fn each_invalid_spec_reports_its_errors() {
    let files = fixtures();
    assert!(
        files.len() >= MIN_FIXTURES,
        "only {} fixtures in {FIXTURES}; the corpus needs at least {MIN_FIXTURES}",
        files.len()
    );
    let mut failures: Vec<String> = Vec::new();
    for path in &files {
        let name = file_name(path);
        let rel_name = format!("{FIXTURES}/{name}");
        let bytes = std::fs::read(path).unwrap();
        if !bytes.is_empty() && !bytes.starts_with(b"# ") {
            failures.push(format!(
                "{name}: does not start with a `# what this checks` comment"
            ));
        }
        let diags = match load_bytes(&rel_name, &bytes) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without errors"));
                continue;
            }
            Err(diags) => diags,
        };
        if !diags.iter().any(Diagnostic::is_error) {
            failures.push(format!("{name}: failed with warnings only"));
        }
        for problem in malformed_diagnostics(&diags) {
            failures.push(format!("{name}: malformed diagnostic {problem}"));
        }
        for d in &diags {
            if d.file != rel_name {
                failures.push(format!(
                    "{name}: diagnostic names file `{}`, not `{rel_name}`",
                    d.file
                ));
            }
        }
        let expected = path.with_extension("expected");
        let rendered = render(&diags);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| golden(&expected, &rendered))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn validate_command_reports_every_invalid_file() {
    let repo = repo();
    let files = fixtures();

    let (out, stdout, stderr) = output(pipectl(&repo).args(["validate", FIXTURES]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for path in &files {
        let name = file_name(path);
        assert!(
            stderr.contains(&format!("{FIXTURES}/{name}")),
            "stderr does not mention {name}:\n{stderr}"
        );
    }
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{} files checked: 0 valid, ", files.len())),
        "last line should count the files: {last:?}"
    );

    let (out, stdout, stderr) =
        output(pipectl(&repo).args(["validate", FIXTURES, "--format", "json"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    assert_eq!(report["files"], files.len());
    assert_eq!(report["valid"], 0);
    assert!(report["errors"].as_u64().unwrap() > 0, "{report}");
    let diags = report["diagnostics"].as_array().unwrap();
    assert!(diags.len() >= files.len(), "{report}");
    for d in diags {
        assert!(d["file"].as_str().unwrap().starts_with(FIXTURES), "{d}");
        assert!(d["line"].as_u64().unwrap() >= 1, "{d}");
        assert!(d["column"].as_u64().unwrap() >= 1, "{d}");
        assert!(d["path"].is_string(), "{d}");
        assert!(!d["message"].as_str().unwrap().is_empty(), "{d}");
        assert!(
            matches!(d["severity"].as_str(), Some("error" | "warning")),
            "{d}"
        );
    }
    for path in &files {
        let name = format!("{FIXTURES}/{}", file_name(path));
        assert!(
            diags.iter().any(|d| d["file"] == name.as_str()),
            "no diagnostic for {name}"
        );
    }

    let (out, stdout, stderr) = output(pipectl(&repo).args(["validate", "examples", "pipelines"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("0 errors"), "{stdout}");

    let (out, _, stderr) = output(pipectl(&repo).args(["validate", "does-not-exist.yaml"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does-not-exist.yaml"), "{stderr}");
}

/// xorshift64*: a few lines of deterministic randomness, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Characters that mean something to YAML, templates, conditions or env references, plus a
/// few that are merely awkward (tab, NUL, CR, multi-byte).
const NASTY: &[&str] = &[
    ":",
    "-",
    "[",
    "]",
    "{",
    "}",
    "{{",
    "}}",
    ",",
    "#",
    "&",
    "*",
    "<<",
    "!",
    "|",
    ">",
    "'",
    "\"",
    "%",
    "@",
    "`",
    "?",
    "\t",
    "\n",
    "\r",
    "\0",
    " ",
    "${env:",
    "${",
    "é",
    "💥",
    "\u{FEFF}",
    "---",
    "...",
    "~",
    "null",
    "true",
    "yes",
    "0x1F",
    "1e400",
    "-1",
    "99999999999999999999",
];

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(300);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        if rng.below(3) == 0 {
            out.push(rng.next() as u8);
        } else {
            out.extend_from_slice(NASTY[rng.below(NASTY.len())].as_bytes());
            if rng.below(2) == 0 {
                out.extend_from_slice(b"key");
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, base: &str) -> Vec<u8> {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    for _ in 0..1 + rng.below(4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(4) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            _ => {
                let line = &mut lines[i];
                let chars: Vec<char> = line.chars().collect();
                let at = rng.below(chars.len() + 1);
                let insert = NASTY[rng.below(NASTY.len())];
                *line = chars[..at].iter().collect::<String>()
                    + insert
                    + &chars[at..].iter().collect::<String>();
            }
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text.into_bytes()
}

#[test]
fn random_and_mutated_input_never_panics() {
    let quickstart = std::fs::read_to_string(repo().join("examples/quickstart/pipeline.yaml"))
        .expect("quickstart spec");
    assert!(
        load_bytes("quickstart.yaml", quickstart.as_bytes()).is_ok(),
        "the unmutated quickstart must load"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut problems = Vec::new();
    // Mutants that got past YAML syntax into the schema and semantic checks: if almost none
    // do, the mutations are too crude to test those phases.
    let mut checked_deeply = 0;
    for case in 0..2_000 {
        let input = if case % 2 == 0 {
            random_bytes(&mut rng)
        } else {
            mutate(&mut rng, &quickstart)
        };
        let result = catch_unwind(|| load_bytes("fuzz.yaml", &input));
        match result {
            Err(_) => problems.push(format!(
                "case {case} panicked on {:?}",
                String::from_utf8_lossy(&input)
            )),
            Ok(Err(diags)) => {
                if case % 2 == 1 && diags.iter().any(|d| !d.path.is_empty()) {
                    checked_deeply += 1;
                }
                if diags.is_empty() {
                    problems.push(format!("case {case} failed without a diagnostic"));
                }
                for p in malformed_diagnostics(&diags) {
                    problems.push(format!(
                        "case {case}: malformed diagnostic {p} on {:?}",
                        String::from_utf8_lossy(&input)
                    ));
                }
            }
            Ok(Ok(_)) => checked_deeply += 1,
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("{checked_deeply} of 1000 mutants reached the schema or semantic checks");
    assert!(
        checked_deeply >= 100,
        "only {checked_deeply} of 1000 mutants parsed as YAML"
    );
}

#[test]
fn huge_specs_load_or_fail_cleanly() {
    // One 3 MB template: under the size limit, so it is parsed and checked in full.
    let field = r#""note": "{{lorem.word}} padding padding padding padding", "#;
    let mut template = String::from("{");
    while template.len() < 3 * 1024 * 1024 {
        template.push_str(field);
    }
    template.push_str(r#""id": {{random.number(100)}}}"#);
    let spec = format!(
        "version: 1\nname: huge\nconnections:\n  lake: {{ url: \"memory://\" }}\nsources:\n  \
         events:\n    type: generator\n    count: 10\n    template: '{template}'\nsinks:\n  \
         landing:\n    type: object_store\n    inputs: [events]\n    connection: lake\n    \
         key: events/\n    format: {{ type: jsonl }}\n"
    );
    let started = Instant::now();
    let result = catch_unwind(|| load_bytes("huge.yaml", spec.as_bytes()));
    let elapsed = started.elapsed();
    let result = result.expect("a 3 MB spec does not panic");
    // It is a valid spec, just a big one.
    if let Err(diags) = &result {
        panic!("a 3 MB spec failed: {diags:?}");
    }
    // Generous: debug builds on a shared 2-core machine; this catches quadratic blow-ups.
    assert!(
        elapsed < Duration::from_secs(60),
        "a 3 MB spec took {elapsed:?}"
    );

    // Over the 4 MB limit: refused before parsing, saying why.
    let too_big = format!("# {}\nversion: 1\n", "x".repeat(5 * 1024 * 1024));
    let diags = load_bytes("too-big.yaml", too_big.as_bytes()).expect_err("5 MB is refused");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.contains("bytes are refused"),
        "{}",
        diags[0].message
    );
    assert_eq!(diags[0].file, "too-big.yaml");
}
