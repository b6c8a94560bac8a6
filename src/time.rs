//! Time: lengths of time as written in the YAML file (`30m`, `1h`, `5d`), and instants, which
//! levered carries as microseconds since the Unix epoch (UTC) and renders as RFC 3339 seconds.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// A non-negative length of time, in whole microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Span(i64);

const MICROS_PER_SECOND: i64 = 1_000_000;

impl Span {
    pub const ZERO: Span = Span(0);

    pub const fn from_seconds(seconds: i64) -> Span {
        Span(seconds * MICROS_PER_SECOND)
    }

    /// `micros` must not be negative.
    pub const fn from_micros(micros: i64) -> Span {
        Span(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn as_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::microseconds(self.0)
    }

    /// Parses `<integer><unit>` with unit `s`, `m`, `h`, `d` or `w`.
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let text = text.trim();
        let error = |kind: SpanErrorKind| SpanError {
            text: text.to_string(),
            kind,
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| error(SpanErrorKind::NoUnit))?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| error(SpanErrorKind::NotWhole))?;
        let seconds_per_unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(error(SpanErrorKind::UnknownUnit(unit.to_string()))),
        };
        number
            .checked_mul(seconds_per_unit)
            .and_then(|s| s.checked_mul(MICROS_PER_SECOND))
            .map(Span)
            .ok_or_else(|| error(SpanErrorKind::TooLong))
    }
}

/// A length of time that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` {kind}")]
pub struct SpanError {
    text: String,
    kind: SpanErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SpanErrorKind {
    #[error("has no unit")]
    NoUnit,
    #[error("does not start with a whole number")]
    NotWhole,
    #[error("has an unknown unit `{0}`")]
    UnknownUnit(String),
    #[error("is too long")]
    TooLong,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0 / MICROS_PER_SECOND;
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if seconds != 0 && seconds % size == 0 {
                return write!(f, "{}{unit}", seconds / size);
            }
        }
        write!(f, "{seconds}s")
    }
}

/// An instant: microseconds since the Unix epoch (UTC). Stored and sent to engines as that integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    /// 0001-01-01T00:00:00Z, the beginning of time of a full scan.
    pub const BEGINNING: Instant = Instant(-62_135_596_800_000_000);

    pub const fn from_micros(micros: i64) -> Instant {
        Instant(micros)
    }

    pub fn from_utc(t: DateTime<Utc>) -> Instant {
        Instant(t.timestamp_micros())
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// This instant rounded down to a multiple of `step` since the epoch (a batch start).
    pub fn floor_to(self, step: Span) -> Instant {
        Instant(self.0.div_euclid(step.0) * step.0)
    }

    /// The signed number of microseconds from `earlier` to this instant.
    pub fn micros_since(self, earlier: Instant) -> i64 {
        self.0 - earlier.0
    }

    /// The same instant as a chrono time; `None` outside chrono's range.
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }

    /// RFC 3339 in whole seconds, `2026-01-08T00:00:00Z`; empty outside chrono's range.
    pub fn rfc3339(self) -> String {
        self.to_utc()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    }
}

impl std::ops::Add<Span> for Instant {
    type Output = Instant;
    fn add(self, span: Span) -> Instant {
        Instant(self.0 + span.0)
    }
}

impl std::ops::Sub<Span> for Instant {
    type Output = Instant;
    fn sub(self, span: Span) -> Instant {
        Instant(self.0 - span.0)
    }
}

impl std::ops::Add for Span {
    type Output = Span;
    fn add(self, other: Span) -> Span {
        Span(self.0 + other.0)
    }
}

impl std::ops::Mul<i64> for Span {
    type Output = Span;
    fn mul(self, times: i64) -> Span {
        Span(self.0 * times)
    }
}

/// Written as RFC 3339 (whole seconds), as every JSON output writes instants.
impl serde::Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::{Instant, Span};

    #[test]
    fn instants_round_down_to_batches_and_render_as_rfc3339() {
        let hour = Span::from_seconds(3_600);
        let t = Instant::from_micros(1_767_229_200_000_000 + 90_000_000);
        assert_eq!(t.floor_to(hour).rfc3339(), "2026-01-01T01:00:00Z");
        // Before the epoch, rounding still goes down, not toward zero.
        assert_eq!(
            Instant::from_micros(-1).floor_to(hour),
            Instant::from_micros(-3_600_000_000)
        );
        assert_eq!(Instant::BEGINNING.rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!((t + hour).micros_since(t), 3_600_000_000);
        assert_eq!(t - hour * 2 + hour * 2, t);
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(Span::parse("30m").unwrap(), Span::from_seconds(1_800));
        assert_eq!(Span::parse("1h").unwrap(), Span::from_seconds(3_600));
        assert_eq!(Span::parse("5d").unwrap(), Span::from_seconds(432_000));
        assert_eq!(Span::parse("0h").unwrap(), Span::ZERO);
        assert_eq!(Span::parse("2w").unwrap().to_string(), "2w");
        assert_eq!(Span::parse("90m").unwrap().to_string(), "90m");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "h", "1", "1.5h", "-1h", "1y", "1 h x"] {
            assert!(Span::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
