//! `${env:NAME}` interpolation: how secrets enter a spec without being written into it.

/// One `${env:NAME}` reference found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    /// Character offset of the `$` in the string.
    pub offset: usize,
    /// The variable name.
    pub name: String,
}

/// A malformed reference: where and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRefError {
    /// Character offset of the problem in the string.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Finds every `${env:NAME}` in `text`. `NAME` is letters, digits and `_`, not starting with a digit.
pub fn env_refs(text: &str) -> Result<Vec<EnvRef>, EnvRefError> {
    let chars: Vec<char> = text.chars().collect();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let close = chars[i..].iter().position(|c| *c == '}').map(|p| p + i);
            let Some(close) = close else {
                return Err(EnvRefError {
                    offset: i,
                    message: "`${` is not closed by `}`".to_owned(),
                });
            };
            let inner: String = chars[i + 2..close].iter().collect();
            let Some(name) = inner.strip_prefix("env:") else {
                return Err(EnvRefError {
                    offset: i,
                    message: format!(
                        "`${{{inner}}}` is not an environment reference; write `${{env:NAME}}`"
                    ),
                });
            };
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvRefError {
                    offset: i + 6,
                    message: format!(
                        "`{name}` is not a valid environment variable name (letters, digits and `_`)"
                    ),
                });
            }
            refs.push(EnvRef {
                offset: i,
                name: name.to_owned(),
            });
            i = close + 1;
        } else {
            i += 1;
        }
    }
    Ok(refs)
}

/// Replaces every `${env:NAME}` with the value `lookup` gives; the error names a variable that is unset.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let refs = env_refs(text).map_err(|e| e.message)?;
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    for r in refs {
        out.extend(&chars[i..r.offset]);
        let value = lookup(&r.name).ok_or_else(|| r.name.clone())?;
        out.push_str(&value);
        // `${env:` + name + `}`
        i = r.offset + 7 + r.name.chars().count();
    }
    out.extend(&chars[i.min(chars.len())..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_replaces_references() {
        let text = "postgres://app:${env:PG_PASSWORD}@db/${env:DB}";
        let refs = env_refs(text).unwrap();
        assert_eq!(
            refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["PG_PASSWORD", "DB"]
        );
        let out = interpolate(text, |n| Some(format!("<{n}>"))).unwrap();
        assert_eq!(out, "postgres://app:<PG_PASSWORD>@db/<DB>");
        assert_eq!(interpolate(text, |_| None).unwrap_err(), "PG_PASSWORD");
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(env_refs("${env:1X}").is_err());
        assert!(env_refs("${PASSWORD}").is_err());
        assert!(env_refs("abc ${env:X").is_err());
        assert_eq!(env_refs("no refs $ here").unwrap(), vec![]);
    }
}
