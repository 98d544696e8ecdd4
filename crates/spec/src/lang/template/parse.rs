//! Parsing a template: finding its placeholders, reading each one's helper name and JSON
//! arguments, and recovering after a broken placeholder so every problem is reported.

use super::helpers::{Args, HELPERS, compile, unknown_helper};
use super::{Helper, Problem, Segment, json};

enum TagFailure {
    /// The placeholder's structure is broken, so where it ends is a guess.
    Syntax(Problem),
    /// The placeholder is well-formed up to `end`, but its helper or arguments are not valid.
    Helper(Problem, usize),
}

impl From<json::Error> for TagFailure {
    fn from(error: json::Error) -> Self {
        let problem = Problem {
            pos: error.pos,
            message: error.message,
            help: error.help,
        };
        TagFailure::Syntax(problem)
    }
}

pub(super) struct TemplateParser<'a> {
    pub(super) src: &'a str,
    pub(super) segments: Vec<Segment>,
    pub(super) problems: Vec<Problem>,
}

impl TemplateParser<'_> {
    pub(super) fn run(&mut self) {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut literal_start = 0;
        let mut search_from = 0;
        while let Some(found) = find(src, "{{", search_from) {
            let mut open = found;
            while bytes.get(open + 2) == Some(&b'{') {
                open += 1;
            }
            self.push_literal(&src[literal_start..open]);
            let resume = match self.tag(open) {
                Ok((helper, end)) => {
                    self.segments.push(Segment::Helper(helper));
                    end
                }
                Err(TagFailure::Helper(problem, end)) => {
                    self.problems.push(problem);
                    end
                }
                Err(TagFailure::Syntax(problem)) => self.recover(open, problem),
            };
            literal_start = resume;
            search_from = resume;
        }
        self.push_literal(&src[literal_start..]);
    }

    fn push_literal(&mut self, text: &str) {
        if !text.is_empty() {
            self.segments.push(Segment::Literal(text.into()));
        }
    }

    /// Records a syntax problem and picks where parsing resumes.
    ///
    /// When no `}}` follows, or another `{{` comes first, the real mistake is almost always a
    /// missing `}}`, so that is reported at the opening braces instead of the symptom.
    fn recover(&mut self, open: usize, problem: Problem) -> usize {
        let next_close = find(self.src, "}}", open + 2);
        let next_open = find(self.src, "{{", open + 2);
        let unclosed = match (next_close, next_open) {
            (None, _) => true,
            (Some(close), Some(reopen)) => reopen < close,
            (Some(_), None) => false,
        };
        if unclosed {
            self.problems.push(
                Problem::new(open, "`{{` is never closed with `}}`").with_help(
                    "close the placeholder, e.g. `{{random.number}}`; there is no escape for `{{`",
                ),
            );
            return next_open.unwrap_or(self.src.len());
        }
        // Skip to the end of the broken placeholder, but never past the start of the next one.
        let from = problem.pos.max(open + 2);
        let close = find(self.src, "}}", from).map_or(self.src.len(), |close| close + 2);
        let resume = find(self.src, "{{", from).map_or(close, |reopen| reopen.min(close));
        self.problems.push(problem);
        resume
    }

    /// Parses the placeholder opening at `open` and returns the helper and the offset after `}}`.
    fn tag(&self, open: usize) -> Result<(Helper, usize), TagFailure> {
        let src = self.src;
        let bytes = src.as_bytes();
        let name_start = skip_ws(bytes, open + 2);
        let mut pos = name_start;
        while bytes
            .get(pos)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            pos += 1;
        }
        let name = &src[name_start..pos];
        if name.is_empty() {
            return Err(TagFailure::Syntax(
                Problem::new(name_start, "expected a helper name after `{{`").with_help(
                    "placeholders look like `{{random.number}}` or `{{date.now(\"YYYY-MM-DD\")}}`",
                ),
            ));
        }
        pos = skip_ws(bytes, pos);
        let mut args = Vec::new();
        let mut args_end = pos;
        if bytes.get(pos) == Some(&b'(') {
            pos = skip_ws(bytes, pos + 1);
            if bytes.get(pos) != Some(&b')') {
                loop {
                    let value = json::parse(src, pos)?;
                    pos = skip_ws(bytes, value.end);
                    args.push(value);
                    match bytes.get(pos) {
                        Some(b',') => pos += 1,
                        Some(b')') => break,
                        _ => {
                            return Err(TagFailure::Syntax(
                                Problem::new(pos, "expected `,` or `)` after an argument")
                                    .with_help("arguments are JSON values separated by commas"),
                            ));
                        }
                    }
                }
            }
            args_end = pos;
            pos = skip_ws(bytes, pos + 1);
            if !src[pos..].starts_with("}}") {
                return Err(TagFailure::Syntax(Problem::new(
                    pos,
                    format!("expected `}}}}` to close `{{{{{name}(...)`"),
                )));
            }
        } else if !src[pos..].starts_with("}}") {
            return Err(TagFailure::Syntax(Problem::new(
                pos,
                format!("expected `(` or `}}}}` after `{name}`"),
            )));
        }
        let end = pos + 2;
        let Some(info) = HELPERS.iter().find(|info| info.name == name) else {
            return Err(TagFailure::Helper(unknown_helper(name, name_start), end));
        };
        let args = Args {
            info,
            values: &args,
            missing_pos: args_end,
            src,
        };
        let kind = compile(&args).map_err(|problem| TagFailure::Helper(problem, end))?;
        Ok((
            Helper {
                name: info.name,
                kind,
            },
            end,
        ))
    }
}

fn find(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .find(needle)
        .map(|offset| from + offset)
}

pub(super) fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}
