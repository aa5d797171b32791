//! Go-style durations (`500ms`, `10s`, `1m30s`) as flags and configuration files spell them.

use std::time::Duration;

/// Parses a sequence of whole numbers with units `ms`, `s`, `m`, `h`; a bare `0` is zero.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("{text:?} is not a duration (a whole number followed by ms, s, m or h, e.g. 10s)")
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|e: std::num::ParseIntError| format!("{}: {e}", invalid()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let part = u32::try_from(number)
            .ok()
            .and_then(|n| unit.checked_mul(n))
            .ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// [`parse`], refusing zero: for periods, where zero would spin.
pub(crate) fn parse_period(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        Duration::ZERO => Err(format!("{text:?}: must be longer than zero")),
        period => Ok(period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_go_way() {
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "m", "5 m", "5d", "-1s", "1.5s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_period_cannot_be_zero() {
        assert!(parse_period("0s").is_err());
        assert!(parse_period("0").is_err());
        assert_eq!(parse_period("5s"), Ok(Duration::from_secs(5)));
    }
}
