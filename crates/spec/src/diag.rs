//! Diagnostics: what is wrong, where (file, line, column, path in the spec) and what to do.

use std::fmt;

use serde::Serialize;

use crate::yaml::Pos;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec cannot run.
    Error,
    /// The spec runs, but probably not as meant.
    Warning,
}

/// One problem found in a spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given on the command line.
    pub file: String,
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based, in characters.
    pub column: usize,
    /// Where in the spec, e.g. `sinks.landing.format.delimiter` (empty for the whole file).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The source line, for display.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A new error at `pos`.
    pub fn error(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: String::new(),
            line: pos.line,
            column: pos.column,
            path: path.into(),
            message: message.into(),
            help: None,
            source_line: None,
        }
    }

    /// A new warning at `pos`.
    pub fn warning(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, path, message)
        }
    }

    /// Adds advice on what to do.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds advice if there is any.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Fills in the file name and the source line for display.
    pub fn in_file(mut self, file: &str, source: &str) -> Self {
        self.file = file.to_owned();
        self.source_line = source
            .lines()
            .nth(self.line.saturating_sub(1))
            // Control characters (NUL, escape sequences) would garble a terminal; one
            // replacement character each keeps the caret under the right column.
            .map(|l| {
                l.chars()
                    .take(200)
                    .map(|c| {
                        if c.is_control() && c != '\t' {
                            '\u{FFFD}'
                        } else {
                            c
                        }
                    })
                    .collect()
            });
        self
    }

    /// True for errors (as opposed to warnings).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// Renders like a compiler diagnostic:
    ///
    /// ```text
    /// error: sinks.landing.format: unknown key `delimeter`
    ///   --> pipelines/quickstart.yaml:14:7
    ///    |
    /// 14 |       delimeter: ";"
    ///    |       ^
    ///    = help: did you mean `delimiter`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.path.is_empty() {
            writeln!(f, "{level}: {}", self.message)?;
        } else {
            writeln!(f, "{level}: {}: {}", self.path, self.message)?;
        }
        // Laid out as rustc does: the gutter is as wide as the line number.
        let number = self.line.to_string();
        let arrow_pad = " ".repeat(number.len());
        let pad = " ".repeat(number.len() + 1);
        write!(
            f,
            "{arrow_pad}--> {}:{}:{}",
            self.file, self.line, self.column
        )?;
        if let Some(line) = &self.source_line {
            let caret_pad: String = line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad}|\n{number} | {line}\n{pad}| {caret_pad}^")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{pad}= help: {help}")?;
        }
        Ok(())
    }
}

/// `items` one after another with `, ` between them, as messages list names and values.
pub fn comma_list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
