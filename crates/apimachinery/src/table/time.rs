//! Timestamps for Table printing: RFC 3339 parsing and formatting, and upstream's human-readable
//! durations (`duration.HumanDuration`, the AGE column).

use std::fmt;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
const ZERO_TIME_UNIX_SECS: i64 = -62_135_596_800;

/// An instant with nanosecond precision, counted from the Unix epoch. It spans Go's zero time
/// (0001-01-01), which upstream treats as "unset".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    nanos: i128,
}

/// A timestamp string that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {0:?}")]
pub struct TimestampError(pub String);

impl Timestamp {
    /// Go's zero `time.Time`, which upstream prints as `<unknown>`.
    pub const ZERO: Timestamp = Timestamp {
        nanos: ZERO_TIME_UNIX_SECS as i128 * NANOS_PER_SEC,
    };

    pub fn from_unix_seconds(secs: i64) -> Self {
        Timestamp {
            nanos: secs as i128 * NANOS_PER_SEC,
        }
    }

    pub fn from_unix_nanos(nanos: i128) -> Self {
        Timestamp { nanos }
    }

    pub fn unix_nanos(self) -> i128 {
        self.nanos
    }

    pub fn unix_seconds(self) -> i64 {
        self.nanos.div_euclid(NANOS_PER_SEC) as i64
    }

    /// True for Go's zero time (what an absent `metav1.Time` decodes to).
    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// Parses an RFC 3339 timestamp such as `2024-05-01T10:00:00Z`, `2024-05-01T10:00:00.123456Z`
    /// or `2024-05-01T12:00:00+02:00`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError(s.to_string());
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = s.get(range).ok_or_else(err)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            part.parse::<i64>().map_err(|_| err())
        };
        let year = num(0..4)?;
        let month = num(5..7)?;
        let day = num(8..10)?;
        let hour = num(11..13)?;
        let minute = num(14..16)?;
        let second = num(17..19)?;
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(err());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(err());
        }
        let mut i = 19;
        let mut frac_nanos: i128 = 0;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err());
            }
            let digits = &s[start..i];
            let mut scaled = String::from(&digits[..digits.len().min(9)]);
            while scaled.len() < 9 {
                scaled.push('0');
            }
            frac_nanos = scaled.parse::<i128>().map_err(|_| err())?;
        }
        let offset_secs: i64 = match b.get(i) {
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'+' {
                    off
                } else {
                    -off
                }
            }
            _ => return Err(err()),
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
        Ok(Timestamp {
            nanos: secs as i128 * NANOS_PER_SEC + frac_nanos,
        })
    }

    /// Formats as upstream `metav1.Time` marshals: RFC 3339 in UTC with whole seconds.
    pub fn format_rfc3339(self) -> String {
        let secs = self.unix_seconds();
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            y,
            m,
            d,
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }

    /// Nanoseconds from `earlier` to `self`, saturated to Go's `time.Duration` range.
    pub fn since(self, earlier: Timestamp) -> i64 {
        let d = self.nanos - earlier.nanos;
        d.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

impl From<std::time::SystemTime> for Timestamp {
    /// Converts a wall-clock reading taken by the caller (this module never reads the clock).
    fn from(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp::from_unix_nanos(d.as_nanos() as i128),
            Err(e) => Timestamp::from_unix_nanos(-(e.duration().as_nanos() as i128)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_rfc3339())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const NS_SECOND: i64 = 1_000_000_000;
const NS_MINUTE: i64 = 60 * NS_SECOND;
const NS_HOUR: i64 = 60 * NS_MINUTE;

/// Upstream `duration.HumanDuration`: a succinct duration with about two significant figures
/// (`5s`, `4m10s`, `15m`, `3h`, `5h2m`, `2d5h`, `400d`, `3y20d`). `d` is in nanoseconds.
pub fn human_duration(d: i64) -> String {
    let seconds = d / NS_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / NS_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / NS_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Upstream `translateTimestampSince`: `<unknown>` for an unset time, else the human duration
/// from `t` to `now`.
pub fn translate_since(t: Timestamp, now: Timestamp) -> String {
    if t.is_zero() {
        return "<unknown>".to_string();
    }
    human_duration(now.since(t))
}

/// Parses an optional JSON timestamp string; absent, null, empty or malformed values are the
/// zero time, as a Go client decoding into `metav1.Time` would see them (malformed ones cannot
/// be stored by the API server in the first place).
pub fn parse_opt(s: Option<&str>) -> Timestamp {
    match s {
        Some(s) if !s.is_empty() => Timestamp::parse_rfc3339(s).unwrap_or(Timestamp::ZERO),
        _ => Timestamp::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_SECOND;
    const M: i64 = NS_MINUTE;
    const H: i64 = NS_HOUR;
    const D: i64 = 24 * NS_HOUR;

    #[test]
    fn human_duration_table() {
        let cases: &[(i64, &str)] = &[
            (-3 * S, "<invalid>"),
            (-2 * S, "<invalid>"),
            (-S, "0s"),
            (-S / 2, "0s"),
            (0, "0s"),
            (5 * S, "5s"),
            (S + S / 2, "1s"),
            (59 * S, "59s"),
            (119 * S, "119s"),
            (2 * M, "2m"),
            (4 * M + 10 * S, "4m10s"),
            (9 * M + 59 * S, "9m59s"),
            (10 * M, "10m"),
            (10 * M + 30 * S, "10m"),
            (179 * M, "179m"),
            (3 * H, "3h"),
            (5 * H + 2 * M, "5h2m"),
            (7 * H + 59 * M, "7h59m"),
            (8 * H, "8h"),
            (47 * H + 59 * M, "47h"),
            (2 * D, "2d"),
            (2 * D + 5 * H, "2d5h"),
            (7 * D + 23 * H, "7d23h"),
            (8 * D, "8d"),
            (400 * D, "400d"),
            (729 * D, "729d"),
            (730 * D, "2y"),
            (3 * 365 * D + 20 * D, "3y20d"),
            (8 * 365 * D, "8y"),
            (20 * 365 * D + 100 * D, "20y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "duration {d}ns");
        }
    }

    #[test]
    fn parse_and_format_rfc3339() {
        let cases: &[(&str, i64, &str)] = &[
            ("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z"),
            (
                "2024-02-29T12:34:56Z",
                1_709_210_096,
                "2024-02-29T12:34:56Z",
            ),
            (
                "2024-02-29T14:34:56+02:00",
                1_709_210_096,
                "2024-02-29T12:34:56Z",
            ),
            (
                "2024-02-29T12:04:56-00:30",
                1_709_210_096,
                "2024-02-29T12:34:56Z",
            ),
            (
                "2024-02-29T12:34:56.999999Z",
                1_709_210_096,
                "2024-02-29T12:34:56Z",
            ),
            ("1969-12-31T23:59:59Z", -1, "1969-12-31T23:59:59Z"),
            (
                "0001-01-01T00:00:00Z",
                ZERO_TIME_UNIX_SECS,
                "0001-01-01T00:00:00Z",
            ),
        ];
        for (s, secs, formatted) in cases {
            let t = Timestamp::parse_rfc3339(s).unwrap();
            assert_eq!(t.unix_seconds(), *secs, "{s}");
            assert_eq!(t.format_rfc3339(), *formatted, "{s}");
        }
        let micro = Timestamp::parse_rfc3339("2024-01-01T00:00:00.250000Z").unwrap();
        assert_eq!(
            micro.unix_nanos() % NANOS_PER_SEC,
            250_000_000,
            "fractional seconds kept"
        );
        assert!(Timestamp::parse_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .is_zero());
    }

    #[test]
    fn parse_rejects_malformed() {
        for s in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00Zjunk",
            "abcd-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(s).is_err(), "{s:?} must not parse");
        }
    }

    #[test]
    fn from_system_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(Timestamp::from(t).unix_nanos(), 1_500_000_000);
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_secs(2);
        assert_eq!(Timestamp::from(before).unix_seconds(), -2);
    }

    #[test]
    fn translate_since_unknown_for_zero() {
        let now = Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(translate_since(Timestamp::ZERO, now), "<unknown>");
        assert_eq!(translate_since(parse_opt(None), now), "<unknown>");
        assert_eq!(
            translate_since(parse_opt(Some("garbage")), now),
            "<unknown>"
        );
        let t = Timestamp::parse_rfc3339("2023-12-31T23:55:50Z").unwrap();
        assert_eq!(translate_since(t, now), "4m10s");
        let future = Timestamp::parse_rfc3339("2024-01-01T00:00:05Z").unwrap();
        assert_eq!(translate_since(future, now), "<invalid>");
    }
}
