//! Durations as specs and flags write them: a number and a unit, `7d`, `12h`, `30m`, `45s`
//! (several may follow each other: `1d12h`).

use std::time::Duration;

/// Parses `7d`, `12h`, `30m`, `45s`, `1d12h`, or `0` (no time).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: write a number and a unit, e.g. `7d`, `12h`, `30m` or `45s`"
        )
    };
    let text_trimmed = text.trim();
    if text_trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text_trimmed.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text_trimmed.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("1d12h"), Ok(Duration::from_secs(86_400 + 12 * 3_600)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "7", "d", "7w", "-1d", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
