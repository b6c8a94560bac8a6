//! What every command resolves from its arguments before it runs: the definitions file, times
//! and the lock timeout, each checked, with the usage error (exit 2) when they are wrong.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config;
use crate::exit::Failure;
use crate::time::Span;

/// The definitions file: `--config`, else `optimizations.yaml` in the current folder. Never the
/// bundled example unasked: a cron job in the wrong folder must fail, not train the example.
pub(super) fn config_path(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path);
    }
    let default = Path::new("optimizations.yaml");
    if default.exists() {
        return Ok(default.to_path_buf());
    }
    let example = if Path::new("optimizations.example.yaml").exists() {
        " (the bundled example: --config optimizations.example.yaml)"
    } else {
        ""
    };
    Err(Failure::usage(format!(
        "no definitions file: optimizations.yaml is not in the current folder\n  hint: pass --config PATH{example}"
    )))
}

/// The context factors of `optimization`, for the hint of a `--context` that names another.
pub(super) fn context_factors(optimization: &config::Optimization) -> String {
    if optimization.context_factors.is_empty() {
        "none (a mab model; `*` is its only context)".to_string()
    } else {
        optimization.context_factors.join(", ")
    }
}

/// The definitions file (`--config` or the default) loaded and checked; invalid → exit 3.
pub(super) fn load_config(given: Option<PathBuf>) -> Result<config::Config, Failure> {
    let path = config_path(given)?;
    Ok(config::load(&path)?)
}

/// `--lock-timeout` as a duration.
pub(super) fn lock_timeout(text: &str) -> Result<std::time::Duration, Failure> {
    Ok(Span::parse(text)
        .map_err(|e| {
            Failure::usage(format!(
                "--lock-timeout: {e}\n  hint: a whole number with its unit, e.g. 30s, 5m or 1h"
            ))
        })?
        .as_chrono()
        .to_std()
        .unwrap_or_default())
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Failure::usage(format!(
                "--as-of `{text}` is not an RFC 3339 time ({e})\n  hint: e.g. 2026-01-03T13:00:00Z"
            ))
        })
}

/// How far past the clock an `as_of` may lie without `--allow-future` (clocks of two machines
/// differ by seconds; a typo in the year by decades).
const FUTURE_MARGIN: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Refuses an `as_of` past the clock: every later run would be "earlier than the last run" until a
/// `--full` backfill (README, "Security and operations").
pub(super) fn check_not_future(
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    allowed: bool,
) -> Result<(), Failure> {
    if allowed || as_of <= now + FUTURE_MARGIN {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "--as-of {} is {} past the clock ({})\n  hint: a run's as_of is normally now or earlier; pass --allow-future if this time is meant",
        as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        how_far(as_of - now),
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )))
}

/// A time past the margin, in words: minutes under two hours, hours under two days, else days
/// (always more than one of the unit, so always plural).
fn how_far(ahead: chrono::TimeDelta) -> String {
    if ahead.num_minutes() < 120 {
        format!("{} minutes", ahead.num_minutes())
    } else if ahead.num_hours() < 48 {
        format!("{} hours", ahead.num_hours())
    } else {
        format!("{} days", ahead.num_days())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_as_of_is_refused_with_how_far_ahead_it_lies() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let message = |as_of: &str| {
            let as_of: DateTime<Utc> = as_of.parse().unwrap();
            check_not_future(as_of, now, false)
                .map(|()| String::new())
                .unwrap_or_else(|f| f.error.to_string())
        };
        assert_eq!(message("2026-01-01T01:00:00Z"), "", "within the margin");
        assert!(message("2026-01-01T01:01:00Z").contains(" is 61 minutes past the clock"));
        assert!(message("2026-01-01T05:00:00Z").contains(" is 5 hours past the clock"));
        assert!(message("2028-09-27T00:00:00Z").contains(" is 1000 days past the clock"));
        let later: DateTime<Utc> = "2062-01-01T00:00:00Z".parse().unwrap();
        assert!(check_not_future(later, now, true).is_ok(), "--allow-future");
    }
}
