//! Cron schedules read in a time zone, with the daylight-saving rules of Vixie cron:
//! - a local time that occurs twice (clocks go back) fires once, at its first occurrence;
//! - a local time that does not exist (clocks go forward) fires at the instant the clocks jump,
//!   so a daily 02:30 job still runs on the day 02:00-03:00 is skipped.
//!
//! The cron crate is asked for local wall-clock times in a zone without DST (UTC used as
//! "naive local time"), and this module maps each wall-clock time to an instant itself.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Bounds the search for the next fire time; a cron expression that matches nothing for this
/// many candidates (only possible with DST gaps covering every match) has no next fire time.
const MAX_CANDIDATES: usize = 10_000;

/// A parsed cron expression plus the time zone it is read in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    schedule: cron::Schedule,
    tz: Tz,
}

impl CronSchedule {
    /// Parses `expr` (5 fields, or 6-7 with seconds first) in the IANA zone `timezone`.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, String> {
        let schedule = pipectl_spec::validate::parse_cron(expr)
            .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))?;
        let tz: Tz = timezone
            .parse()
            .map_err(|_| format!("unknown time zone `{timezone}`"))?;
        Ok(CronSchedule {
            expr: expr.to_owned(),
            schedule,
            tz,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = naive_as_utc(after.with_timezone(&self.tz).naive_local());
        self.schedule
            .after(&local)
            .take(MAX_CANDIDATES)
            .map(|wall| self.instant(wall.naive_utc()))
            .find(|t| *t > after)
    }

    /// Fire times in `(after, until]`, oldest first, at most the latest `max` of them.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        if max == 0 || until <= after {
            return fires;
        }
        // Walk backwards from just after `until` (the iterator excludes its start).
        let start = naive_as_utc(
            (until + chrono::Duration::seconds(1))
                .with_timezone(&self.tz)
                .naive_local(),
        );
        for wall in self.schedule.after(&start).rev().take(MAX_CANDIDATES) {
            let t = self.instant(wall.naive_utc());
            if t <= after {
                // Wall-clock order and instant order differ only around DST changes, by at
                // most the size of the change; stop once well past `after`.
                if wall.naive_utc()
                    < after.with_timezone(&self.tz).naive_local() - chrono::Duration::hours(3)
                {
                    break;
                }
                continue;
            }
            if t > until || fires.contains(&t) {
                continue;
            }
            fires.push(t);
            if fires.len() == max {
                break;
            }
        }
        fires.sort();
        fires
    }

    /// The instant a wall-clock time fires at (see the module docs for DST).
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // In a gap: the first valid minute after it is the instant the clocks jumped.
                let mut probe = wall;
                for _ in 0..(48 * 60) {
                    probe += chrono::Duration::minutes(1);
                    let candidate = match self.tz.from_local_datetime(&probe) {
                        LocalResult::Single(t) => t,
                        LocalResult::Ambiguous(t, _) => t,
                        LocalResult::None => continue,
                    };
                    // Round down to the jump itself, e.g. 03:00 rather than 03:00 + seconds.
                    let jumped = candidate.with_timezone(&Utc);
                    return jumped
                        - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&probe)));
                }
                naive_as_utc(wall)
            }
        }
    }
}

fn naive_as_utc(t: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The first `n` fire times of `expr` in time zone `tz` after `from`, in local time.
    fn fires(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        next_n(&CronSchedule::parse(expr, tz).unwrap(), from, n)
    }

    fn next_n(s: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t.with_timezone(&s.timezone()).to_rfc3339());
        }
        out
    }

    #[test]
    fn five_fields_fire_on_minutes_and_six_on_seconds() {
        assert_eq!(
            fires("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", 2),
            ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"]
        );
        assert_eq!(
            fires("*/2 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
            [
                "2026-01-01T00:00:02+00:00",
                "2026-01-01T00:00:04+00:00",
                "2026-01-01T00:00:06+00:00"
            ]
        );
    }

    #[test]
    fn daily_job_in_a_time_zone_fires_at_local_time() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // Winter: UTC+1.
        assert_eq!(
            s.next_after(utc("2026-01-10T12:00:00Z")).unwrap(),
            utc("2026-01-11T01:30:00Z")
        );
    }

    #[test]
    fn spring_forward_runs_a_skipped_time_once_at_the_jump() {
        // 2026-03-29: Berlin clocks go from 02:00 CET to 03:00 CEST; 02:30 does not exist.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
        // An every-15-minutes job skips the missing hour without firing four times at 03:00.
        assert_eq!(
            fires("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z", 3),
            [
                "2026-03-29T01:45:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:15:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once() {
        // 2026-10-25: Berlin clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Hourly jobs: 02:00 CEST, then nothing until 03:00 CET (the repeated hour is not rerun).
        assert_eq!(
            fires("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T04:00:00+01:00"
            ]
        );
    }

    #[test]
    fn fires_between_keeps_the_latest_and_respects_the_limit() {
        let s = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        let fires = s.fires_between(utc("2026-01-01T00:30:00Z"), utc("2026-01-01T05:00:00Z"), 10);
        assert_eq!(
            fires,
            [
                utc("2026-01-01T01:00:00Z"),
                utc("2026-01-01T02:00:00Z"),
                utc("2026-01-01T03:00:00Z"),
                utc("2026-01-01T04:00:00Z"),
                utc("2026-01-01T05:00:00Z")
            ]
        );
        let latest2 = s.fires_between(utc("2026-01-01T00:30:00Z"), utc("2026-01-01T05:10:00Z"), 2);
        assert_eq!(
            latest2,
            [utc("2026-01-01T04:00:00Z"), utc("2026-01-01T05:00:00Z")]
        );
        assert!(
            s.fires_between(utc("2026-01-01T05:00:00Z"), utc("2026-01-01T05:59:00Z"), 5)
                .is_empty()
        );
    }

    #[test]
    fn fires_between_across_fall_back_lists_each_instant_once() {
        let h = CronSchedule::parse("30 * * * *", "Europe/Berlin").unwrap();
        let fires = h.fires_between(utc("2026-10-24T23:00:00Z"), utc("2026-10-25T03:00:00Z"), 10);
        let local: Vec<String> = fires
            .iter()
            .map(|t| t.with_timezone(&h.timezone()).to_rfc3339())
            .collect();
        assert_eq!(
            local,
            [
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T03:30:00+01:00"
            ]
        );
    }
}
