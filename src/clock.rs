//! Wall-clock helpers. The only place the system clock is read; everything
//! else takes `now_ms` as an argument so policy and accounting stay pure.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The UTC day number (days since the Unix epoch) of a timestamp.
pub fn day_of(ms: u64) -> u32 {
    (ms / DAY_MS) as u32
}

/// Whole seconds from `now_ms` until the next UTC midnight (at least 1).
pub fn secs_until_next_day(now_ms: u64) -> u64 {
    let next = (now_ms / DAY_MS + 1) * DAY_MS;
    (next - now_ms).div_ceil(1000).max(1)
}

/// RFC 3339 rendering (UTC, second precision) of a Unix-ms timestamp.
pub fn rfc3339(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 timestamp or a plain Unix-ms integer.
pub fn parse_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_boundaries() {
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(secs_until_next_day(DAY_MS - 1500), 2);
        assert_eq!(secs_until_next_day(DAY_MS), 86_400);
    }

    #[test]
    fn rfc3339_round_trip() {
        let ms = 1_700_000_000_000;
        assert_eq!(parse_time(&rfc3339(ms)), Some(ms));
        assert_eq!(parse_time("12345"), Some(12345));
        assert_eq!(parse_time("yesterday"), None);
    }
}
