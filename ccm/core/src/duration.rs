//! Durations as Kubernetes and Go spell them (`500ms`, `1.1s`, `1m30s`): the one rule for the
//! binary's flags and configuration files and for duration fields of our CRDs.

use std::time::Duration;

use thiserror::Error;

/// The schema pattern of a duration field: what [`parse`] accepts, checked at admission
/// (a test generates strings from it and parses them).
pub const PATTERN: &str = "^(0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)$";

/// The longest duration: Go's and Kubernetes' (`int64` nanoseconds, about 292 years), so that
/// what the API server or a Go tool accepts and what we accept are the same set.
const MAX_NANOS: u128 = i64::MAX as u128;

/// More fractional digits than this cannot change a value kept in nanoseconds of a unit of at
/// most an hour (10^-18 h is far below a nanosecond), and keeps the arithmetic in `u128`.
const MAX_FRACTION_DIGITS: u32 = 18;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (numbers followed by ms, s, m or h, e.g. 10s, 1.5s or 1m30s)")]
    Malformed(String),
    #[error("{0:?} is longer than a duration can be (about 292 years)")]
    TooLong(String),
    #[error("{0:?}: must be longer than zero")]
    Zero(String),
}

/// Parses a sequence of numbers (whole or decimal: `1.5`) each followed by a unit `ms`, `s`, `m`
/// or `h`; a bare `0` is zero. No sign, no spaces, no other units: the subset of Go's
/// `time.ParseDuration` that a timer in this program can use.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let malformed = || DurationError::Malformed(text.to_owned());
    if text.is_empty() {
        return Err(malformed());
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", after),
        };
        // `1.s` and `.5s` are Go's, not Kubernetes' usual spelling: one shape, digits on
        // both sides of the point.
        let pointed = rest.as_bytes().get(whole.len()) == Some(&b'.');
        if whole.is_empty() || (pointed && fraction.is_empty()) {
            return Err(malformed());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(malformed()),
        };
        let part = part_nanos(whole, fraction, unit_nanos).ok_or_else(|| too_long(text))?;
        nanos = nanos.checked_add(part).ok_or_else(|| too_long(text))?;
        rest = after;
    }
    from_nanos(nanos).ok_or_else(|| too_long(text))
}

/// [`parse`], refusing zero: for periods, where zero would spin.
pub fn parse_period(text: &str) -> Result<Duration, DurationError> {
    match parse(text)? {
        Duration::ZERO => Err(DurationError::Zero(text.to_owned())),
        period => Ok(period),
    }
}

fn too_long(text: &str) -> DurationError {
    DurationError::TooLong(text.to_owned())
}

/// The leading ASCII digits of `text`, and the rest.
fn split_digits(text: &str) -> (&str, &str) {
    text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    )
}

/// `whole.fraction` units in nanoseconds (truncated below a nanosecond, as Go does); `None` when
/// it does not fit.
fn part_nanos(whole: &str, fraction: &str, unit_nanos: u128) -> Option<u128> {
    let whole: u128 = whole.parse().ok()?;
    let mut nanos = whole.checked_mul(unit_nanos)?;
    let digits = u32::try_from(fraction.len()).ok()?;
    if digits > 0 {
        let kept = digits.min(MAX_FRACTION_DIGITS);
        let fraction: u128 = fraction[..kept as usize].parse().ok()?;
        nanos = nanos.checked_add(fraction * unit_nanos / 10u128.pow(kept))?;
    }
    Some(nanos)
}

fn from_nanos(nanos: u128) -> Option<Duration> {
    if nanos > MAX_NANOS {
        return None;
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(seconds, sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_the_go_way() {
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        for bad in [
            "", "5", "m", "5 m", "5d", "-1s", "+1s", "1.s", ".5s", "1..5s", "s5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decimal_numbers_are_durations_as_in_kubernetes() {
        assert_eq!(parse("1.1s"), Ok(Duration::from_millis(1100)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("1.25m10s"), Ok(Duration::from_secs(85)));
        // Below a nanosecond is truncated, never an error.
        assert_eq!(
            parse("1.0000000000000000000001s"),
            Ok(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_duration_too_long_to_hold_is_refused_not_wrapped() {
        // Go's bound: 2562047h47m16.854775807s.
        assert!(parse("2562047h").is_ok());
        assert!(matches!(parse("2562048h"), Err(DurationError::TooLong(_))));
        assert!(matches!(
            parse("99999999999999s"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse("99999999999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn a_period_cannot_be_zero() {
        assert_eq!(parse_period("0s"), Err(DurationError::Zero("0s".into())));
        assert!(parse_period("0").is_err());
        assert_eq!(parse_period("5s"), Ok(Duration::from_secs(5)));
    }

    proptest! {
        /// Whatever the schema admits, the controller can read: the pattern is no wider than
        /// the parser (it may only be too long to hold).
        #[test]
        fn everything_the_schema_pattern_admits_parses(
            text in proptest::string::string_regex(&PATTERN[1..PATTERN.len() - 1]).unwrap()
        ) {
            prop_assert!(
                !matches!(parse(&text), Err(DurationError::Malformed(_))),
                "{:?}", text
            );
        }

        /// Decimal seconds, as Kubernetes writes sub-second durations, read back exactly.
        #[test]
        fn milliseconds_written_as_decimal_seconds_read_back(millis in 0u64..10_000_000) {
            let text = format!("{}.{:03}s", millis / 1000, millis % 1000);
            prop_assert_eq!(parse(&text), Ok(Duration::from_millis(millis)));
        }
    }
}
