//! Cron schedules as the CronJob controller reads them (robfig/cron's standard parser): five
//! fields with ranges, steps, lists and month/day names, the `@hourly`-style descriptors and
//! `@every <duration>`, plus the pure next-schedule and most-recent-missed-schedule functions.

use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// Errors parsing a schedule or a time zone.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse int from {0}")]
    Int(String),
    #[error("too many hyphens: {0}")]
    Hyphens(String),
    #[error("too many slashes: {0}")]
    Slashes(String),
    #[error("beginning of range ({0}) below minimum ({1}): {2}")]
    BelowMin(u32, u32, String),
    #[error("end of range ({0}) above maximum ({1}): {2}")]
    AboveMax(u32, u32, String),
    #[error("beginning of range ({0}) beyond end of range ({1}): {2}")]
    Reversed(u32, u32, String),
    #[error("step of range should be a positive number: {0}")]
    Step(String),
    #[error("empty spec string")]
    Empty,
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TimeZoneInSchedule,
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
    #[error("time difference between two schedules is less than 1 second")]
    TooFrequent,
}

/// A parsed schedule. Bit `n` of a field set means value `n` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// `*` or `?` in day-of-month / day-of-week: the day fields are ANDed, else ORed.
        dom_star: bool,
        dow_star: bool,
    },
    /// `@every <duration>` (whole seconds, at least one).
    Every(Duration),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step as usize)
        .fold(0, |acc, i| acc | 1 << i)
}

fn value(s: &str, b: &Bounds) -> Result<u32, CronError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        // month names are 1-based, day names 0-based
        return Ok(i as u32 + b.min);
    }
    s.parse::<u32>().map_err(|_| CronError::Int(s.to_string()))
}

/// One comma-separated term: `*`, `?`, `n`, `a-b`, each with an optional `/step`.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let (range, step) = match expr.split('/').collect::<Vec<_>>()[..] {
        [r] => (r, None),
        [r, s] => (r, Some(s)),
        _ => return Err(CronError::Slashes(expr.to_string())),
    };
    let mut star = false;
    let (start, mut end, single) = if range == "*" || range == "?" {
        star = true;
        (b.min, b.max, false)
    } else {
        match range.split('-').collect::<Vec<_>>()[..] {
            [v] => {
                let v = value(v, b)?;
                (v, v, true)
            }
            [a, z] => (value(a, b)?, value(z, b)?, false),
            _ => return Err(CronError::Hyphens(expr.to_string())),
        }
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let n = s
                .parse::<u32>()
                .map_err(|_| CronError::Int(s.to_string()))?;
            // "n/step" means "n-max/step"
            if single {
                end = b.max;
            }
            if n > 1 {
                star = false;
            }
            n
        }
    };
    if start < b.min {
        return Err(CronError::BelowMin(start, b.min, expr.into()));
    }
    if end > b.max {
        return Err(CronError::AboveMax(end, b.max, expr.into()));
    }
    if start > end {
        return Err(CronError::Reversed(start, end, expr.into()));
    }
    if step == 0 {
        return Err(CronError::Step(expr.into()));
    }
    Ok((bits(start, end, step), star))
}

fn field(f: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let mut out = 0;
    let mut star = false;
    for term in f.split(',') {
        let (bits, s) = range(term, b)?;
        out |= bits;
        star |= s;
    }
    Ok((out, star))
}

fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += num * unit;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Parse a schedule as upstream's `cron.ParseStandard` (a `TZ=`/`CRON_TZ=` prefix is refused:
/// CronJob validation forbids it, the time zone goes in `spec.timeZone`).
pub fn parse(spec: &str) -> Result<Schedule, CronError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(CronError::Empty);
    }
    if spec.contains("TZ") {
        return Err(CronError::TimeZoneInSchedule);
    }
    if let Some(d) = spec.strip_prefix('@') {
        let fields = match d {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => {
                if let Some(dur) = d.strip_prefix("every ") {
                    let dur = parse_go_duration(dur.trim())
                        .ok_or_else(|| CronError::Descriptor(spec.to_string()))?;
                    // robfig rounds to whole seconds, at least one
                    let secs = dur.as_secs().max(1);
                    return Ok(Schedule::Every(Duration::from_secs(secs)));
                }
                return Err(CronError::Descriptor(spec.to_string()));
            }
        };
        return parse(fields);
    }
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(CronError::FieldCount(parts.len(), spec.to_string()));
    }
    let (minute, _) = field(parts[0], &MINUTE)?;
    let (hour, _) = field(parts[1], &HOUR)?;
    let (dom, dom_star) = field(parts[2], &DOM)?;
    let (month, _) = field(parts[3], &MONTH)?;
    let (dow, dow_star) = field(parts[4], &DOW)?;
    Ok(Schedule::Fields {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    })
}

/// Resolve `spec.timeZone` (None: UTC, the controller manager's zone here).
pub fn time_zone(tz: Option<&str>) -> Result<Tz, CronError> {
    match tz {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| CronError::UnknownTimeZone(name.to_string())),
    }
}

fn has(set: u64, v: u32) -> bool {
    set & (1 << v) != 0
}

impl Schedule {
    /// The first activation strictly after `t`, or None when there is none within five years
    /// (an impossible date such as February 30th).
    pub fn next<Z: TimeZone>(&self, t: &DateTime<Z>) -> Option<DateTime<Z>> {
        let (minute, hour, dom, month, dow, dom_star, dow_star) = match *self {
            Schedule::Every(d) => {
                let base = t.clone() - ChronoDuration::nanoseconds(t.nanosecond() as i64);
                return Some(base + ChronoDuration::seconds(d.as_secs() as i64));
            }
            Schedule::Fields {
                minute,
                hour,
                dom,
                month,
                dow,
                dom_star,
                dow_star,
            } => (minute, hour, dom, month, dow, dom_star, dow_star),
        };
        let tz = t.timezone();
        let local = t.naive_local();
        let mut c: NaiveDateTime = local
            .with_second(0)?
            .with_nanosecond(0)?
            .checked_add_signed(ChronoDuration::minutes(1))?;
        let limit = local.year() + 5;
        let day_ok = |c: &NaiveDateTime| {
            let d = has(dom, c.day());
            let w = has(dow, c.weekday().num_days_from_sunday());
            if dom_star || dow_star {
                d && w
            } else {
                d || w
            }
        };
        while c.year() <= limit {
            if !has(month, c.month()) {
                let (y, m) = if c.month() == 12 {
                    (c.year() + 1, 1)
                } else {
                    (c.year(), c.month() + 1)
                };
                c = chrono::NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !day_ok(&c) {
                c = (c.date() + ChronoDuration::days(1)).and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !has(hour, c.hour()) {
                c = c.with_minute(0)? + ChronoDuration::hours(1);
                continue;
            }
            if !has(minute, c.minute()) {
                c += ChronoDuration::minutes(1);
                continue;
            }
            // a local time inside a DST gap does not exist: move on
            match tz.from_local_datetime(&c).earliest() {
                Some(at) if at > *t => return Some(at),
                _ => {
                    c += ChronoDuration::minutes(1);
                    continue;
                }
            }
        }
        None
    }
}

/// How many schedules were missed since the earliest time the controller considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: upstream warns "too many missed start times".
    Many(i64),
}

/// Upstream's mostRecentScheduleTime: the latest activation in (earliest, now], with an
/// estimate of how many were missed. `earliest` is the last schedule time (or creation time),
/// moved up to `now - startingDeadlineSeconds` when that is later.
pub fn most_recent<Z: TimeZone>(
    s: &Schedule,
    earliest: &DateTime<Z>,
    now: &DateTime<Z>,
) -> Result<(Option<DateTime<Z>>, Missed), CronError> {
    let Some(t1) = s.next(earliest) else {
        return Ok((None, Missed::None));
    };
    if *now < t1 {
        return Ok((None, Missed::None));
    }
    let Some(t2) = s.next(&t1) else {
        return Ok((Some(t1), Missed::None));
    };
    if *now < t2 {
        return Ok((Some(t1), Missed::None));
    }
    let between = (t2.clone() - t1.clone()).num_seconds();
    if between < 1 {
        return Err(CronError::TooFrequent);
    }
    let elapsed = (now.clone() - t1.clone()).num_seconds();
    let missed = elapsed / between + 1;
    // start a little before the estimated last activation and walk forward to it
    let start = t1.clone() + ChronoDuration::seconds((missed - 2) * between);
    let mut recent = None;
    let mut t = s.next(&start);
    while let Some(x) = t {
        if x > *now {
            break;
        }
        t = s.next(&x);
        recent = Some(x);
    }
    let m = if missed > 100 {
        Missed::Many(missed)
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((recent, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_activation_table() {
        let cases = [
            (
                "*/15 * * * *",
                "2024-01-01T10:07:30Z",
                "2024-01-01T10:15:00Z",
            ),
            ("0 * * * *", "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
            ("@hourly", "2024-01-01T10:59:59Z", "2024-01-01T11:00:00Z"),
            ("@daily", "2024-01-01T10:00:00Z", "2024-01-02T00:00:00Z"),
            ("@weekly", "2024-01-01T10:00:00Z", "2024-01-07T00:00:00Z"), // a Sunday
            ("@monthly", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"),
            ("@yearly", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"),
            (
                "30 6-16/4 * * 1-5",
                "2024-01-05T15:00:00Z",
                "2024-01-08T06:30:00Z",
            ),
            (
                "0 9 * jan,JUL mon",
                "2024-01-31T10:00:00Z",
                "2024-07-01T09:00:00Z",
            ),
            ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            // day-of-month and day-of-week both restricted: either matches
            (
                "0 0 13 * fri",
                "2024-01-01T00:00:00Z",
                "2024-01-05T00:00:00Z",
            ),
            // day-of-week as star: day-of-month alone
            ("0 0 13 * *", "2024-01-01T00:00:00Z", "2024-01-13T00:00:00Z"),
            (
                "5/20 * * * *",
                "2024-01-01T00:26:00Z",
                "2024-01-01T00:45:00Z",
            ),
            (
                "59 23 31 12 ?",
                "2024-06-01T00:00:00Z",
                "2024-12-31T23:59:00Z",
            ),
            (
                "@every 90s",
                "2024-01-01T00:00:00.5Z",
                "2024-01-01T00:01:30Z",
            ),
        ];
        for (spec, from, want) in cases {
            let s = parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.next(&utc(from)), Some(utc(want)), "{spec} after {from}");
        }
    }

    #[test]
    fn impossible_dates_never_fire() {
        assert_eq!(
            parse("59 23 31 2 *")
                .unwrap()
                .next(&utc("2024-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("* * * *", "expected exactly 5 fields"),
            ("60 * * * *", "above maximum"),
            ("* * 0 * *", "below minimum"),
            ("5-1 * * * *", "beyond end"),
            ("*/0 * * * *", "positive"),
            ("a * * * *", "failed to parse int"),
            ("1-2-3 * * * *", "too many hyphens"),
            ("@fortnightly", "unrecognized descriptor"),
            ("TZ=UTC 0 * * * *", "cannot use TZ"),
            ("CRON_TZ=Europe/Paris 0 * * * *", "cannot use TZ"),
            ("* * * * 7", "above maximum"),
        ];
        for (spec, want) in cases {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn time_zones_shift_activations() {
        let tz = time_zone(Some("America/New_York")).unwrap();
        let s = parse("0 9 * * *").unwrap();
        let from = utc("2024-01-10T12:00:00Z").with_timezone(&tz);
        // 09:00 in New York in winter is 14:00 UTC
        assert_eq!(
            s.next(&from).unwrap().with_timezone(&Utc),
            utc("2024-01-10T14:00:00Z")
        );
        // summer time: 13:00 UTC
        let from = utc("2024-07-10T12:00:00Z").with_timezone(&tz);
        assert_eq!(
            s.next(&from).unwrap().with_timezone(&Utc),
            utc("2024-07-10T13:00:00Z")
        );
        // 02:30 does not exist on the spring-forward day: the next one is the day after
        let s = parse("30 2 * * *").unwrap();
        let from = utc("2024-03-10T05:00:00Z").with_timezone(&tz);
        assert_eq!(
            s.next(&from).unwrap().with_timezone(&Utc),
            utc("2024-03-11T06:30:00Z")
        );
        assert!(time_zone(Some("Mars/Olympus")).is_err());
        assert_eq!(time_zone(None).unwrap(), Tz::UTC);
    }

    #[test]
    fn most_recent_schedule_table() {
        let s = parse("*/5 * * * *").unwrap();
        let cases = [
            // (earliest, now, want recent, want missed)
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:04:00Z",
                None,
                Missed::None,
            ),
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:06:00Z",
                Some("2024-01-01T00:05:00Z"),
                Missed::None,
            ),
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:21:00Z",
                Some("2024-01-01T00:20:00Z"),
                Missed::Few,
            ),
            (
                "2024-01-01T00:00:00Z",
                "2024-01-03T00:01:00Z",
                Some("2024-01-03T00:00:00Z"),
                Missed::Many(576),
            ),
        ];
        for (earliest, now, want, missed) in cases {
            let (got, m) = most_recent(&s, &utc(earliest), &utc(now)).unwrap();
            assert_eq!(got, want.map(utc), "{earliest} {now}");
            assert_eq!(m, missed, "{earliest} {now}");
        }
    }
}
