//! The include/exclude globs of crawlers and the `files` source: `*` any run within a folder,
//! `**` any run of folders, `?` one character other than `/`; every other character is literal.
//!
//! Globs compile to automata (`globset`), so matching takes time linear in the key whatever the
//! pattern: a backtracking matcher took exponential time on patterns like `*a*a*a*b`.

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

/// A compiled include/exclude pair.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    /// `None`: no include globs, every key is included.
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl KeyFilter {
    /// Compiles the globs; keys are included when they match an include glob (or there are
    /// none) and match no exclude glob.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, globset::Error> {
        let include = if include.is_empty() {
            None
        } else {
            Some(glob_set(include)?)
        };
        Ok(Self {
            include,
            exclude: glob_set(exclude)?,
        })
    }

    /// Whether `key` (relative to the listed folder) passes the filter.
    pub fn admits(&self, key: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(key)) && !self.exclude.is_match(key)
    }
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(build(pattern)?);
    }
    set.build()
}

fn build(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(&literal_brackets(pattern))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Escapes what globset would read as classes, alternatives or escapes: pipectl's globs have
/// only `*`, `**` and `?`, so `[`, `{` and `\` in a key name match themselves.
fn literal_brackets(pattern: &str) -> String {
    let mut escaped = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if matches!(c, '[' | ']' | '{' | '}' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether `text` matches the one glob `pattern` (see the module doc). A pattern that cannot
/// compile matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    build(pattern)
        .map(|g| GlobMatcher::is_match(&g.compile_matcher(), text))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_questions_and_literals() {
        assert!(glob_match("a?c.csv", "abc.csv"));
        assert!(!glob_match("a?c.csv", "a/c.csv"));
        assert!(glob_match("x/**/y/*.json", "x/y/a.json"));
        assert!(glob_match("x/**/y/*.json", "x/1/2/y/a.json"));
        assert!(!glob_match("x/**/y/*.json", "x/1/2/y/z/a.json"));
        assert!(glob_match("[a]{b}\\c.csv", "[a]{b}\\c.csv"));
        assert!(!glob_match("[ab].csv", "a.csv"));
        assert!(glob_match("**", "a/b/c"));
    }

    #[test]
    fn a_filter_includes_then_excludes() {
        let all = KeyFilter::new(&[], &[]).unwrap();
        assert!(all.admits("any/key.csv"));
        let filter = KeyFilter::new(&["**/*.csv".to_owned()], &["tmp/**".to_owned()]).unwrap();
        assert!(filter.admits("a/b.csv"));
        assert!(!filter.admits("a/b.json"));
        assert!(!filter.admits("tmp/b.csv"));
    }

    /// A backtracking matcher takes exponential time here; the automaton answers at once.
    #[test]
    fn many_stars_on_a_long_key_answer_quickly() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pattern = "*a*a*a*a*a*a*a*a*a*a*b";
            let key = "a".repeat(200);
            tx.send(glob_match(pattern, &key)).ok();
        });
        let matched = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the glob match did not finish in 5 s");
        assert!(!matched);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.csv", "a.csv"));
        assert!(!glob_match("*.csv", "x/a.csv"));
        assert!(glob_match("**/*.csv", "x/y/a.csv"));
        assert!(glob_match("**/*.csv", "a.csv"));
        assert!(glob_match("film/**", "film/a/b.parquet"));
        assert!(!glob_match("film/**", "films/a"));
    }
}
