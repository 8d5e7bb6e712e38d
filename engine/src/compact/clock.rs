//! The injected clock and the wall-clock alignment of schedules
//! (REPLICA_LAYOUT.md §6 step 1).
//!
//! Every schedule runs at multiples of its interval counted from
//! 0001-01-01T00:00:00 UTC, the zero time of Go's `time` package that
//! Litestream truncates against. That instant lies exactly 719 162 days before
//! the Unix epoch, so an interval that divides a day (30 s, 5 min, 1 h, 24 h)
//! lands on the same UTC boundaries either way; others (7 min) do not.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// Seconds from 0001-01-01T00:00:00 UTC to the Unix epoch: 719 162 days of
/// the proleptic Gregorian calendar.
pub const YEAR_ONE_TO_UNIX_SECS: i64 = 62_135_596_800;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Where the schedules get the time from, so tests can drive it.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real clock: [`SystemTime::now`] and [`tokio::time::sleep`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// `now` rounded down to a multiple of `interval` since 0001-01-01 UTC: the
/// start of the current period. A zero interval returns `now` unchanged.
pub fn prev_boundary(now: SystemTime, interval: Duration) -> SystemTime {
    let step = interval.as_nanos() as i128;
    if step == 0 {
        return now;
    }
    let since_year_one = unix_nanos(now) + i128::from(YEAR_ONE_TO_UNIX_SECS) * NANOS_PER_SEC;
    let floor = since_year_one - since_year_one.rem_euclid(step);
    from_unix_nanos(floor - i128::from(YEAR_ONE_TO_UNIX_SECS) * NANOS_PER_SEC).unwrap_or(now)
}

/// The next multiple of `interval` after `now` (since 0001-01-01 UTC):
/// `floor(now / interval) * interval + interval`. A zero interval returns
/// `now` unchanged.
pub fn next_boundary(now: SystemTime, interval: Duration) -> SystemTime {
    prev_boundary(now, interval)
        .checked_add(interval)
        .unwrap_or(now)
}

/// How long to wait from `now` until [`next_boundary`].
pub fn until_next_boundary(now: SystemTime, interval: Duration) -> Duration {
    next_boundary(now, interval)
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn from_unix_nanos(nanos: i128) -> Option<SystemTime> {
    let secs = u64::try_from(nanos.div_euclid(NANOS_PER_SEC).unsigned_abs()).ok()?;
    let sub = Duration::from_nanos(nanos.rem_euclid(NANOS_PER_SEC) as u64);
    if nanos >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))?
            .checked_add(sub)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs))?
            .checked_add(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_ms: i64) -> SystemTime {
        backends::time_from_millis(unix_ms)
    }

    fn ms(t: SystemTime) -> i64 {
        (unix_nanos(t) / 1_000_000) as i64
    }

    /// 2023-11-14T22:13:20.250Z.
    const T: i64 = 1_700_000_000_250;

    #[test]
    fn year_one_offset_is_a_whole_number_of_days() {
        // 1970 years of 365 days plus 477 leap days (every 4th year, minus
        // centuries, plus every 400th: 492 - 19 + 4) = 719 162 days.
        let leap_days = 1969 / 4 - 1969 / 100 + 1969 / 400;
        assert_eq!(leap_days, 477);
        let days = 1969 * 365 + leap_days;
        assert_eq!(days, 719_162);
        assert_eq!(YEAR_ONE_TO_UNIX_SECS, days * 86_400);
    }

    #[test]
    fn boundaries_for_intervals_that_divide_a_day_are_utc_aligned() {
        // (interval, previous boundary, next boundary), Unix ms.
        let table: [(Duration, i64, i64); 4] = [
            // 22:13:00 and 22:13:30.
            (
                Duration::from_secs(30),
                1_699_999_980_000,
                1_700_000_010_000,
            ),
            // 22:10:00 and 22:15:00.
            (
                Duration::from_secs(300),
                1_699_999_800_000,
                1_700_000_100_000,
            ),
            // 22:00:00 and 23:00:00.
            (
                Duration::from_secs(3600),
                1_699_999_200_000,
                1_700_002_800_000,
            ),
            // Midnight UTC on the 14th and the 15th.
            (
                Duration::from_secs(86_400),
                1_699_920_000_000,
                1_700_006_400_000,
            ),
        ];
        for (interval, prev, next) in table {
            assert_eq!(ms(prev_boundary(at(T), interval)), prev, "{interval:?}");
            assert_eq!(ms(next_boundary(at(T), interval)), next, "{interval:?}");
            // The same boundaries hold counted from the Unix epoch.
            let step = interval.as_millis() as i64;
            assert_eq!(prev, T - T.rem_euclid(step), "{interval:?}");
        }
    }

    #[test]
    fn exactly_on_a_boundary_the_next_run_is_one_interval_later() {
        let b = 1_700_000_010_000;
        let i = Duration::from_secs(30);
        assert_eq!(ms(prev_boundary(at(b), i)), b);
        assert_eq!(ms(next_boundary(at(b), i)), b + 30_000);
        assert_eq!(until_next_boundary(at(b), i), i);
        assert_eq!(until_next_boundary(at(b - 1), i), Duration::from_millis(1));
    }

    #[test]
    fn intervals_that_do_not_divide_a_day_count_from_year_one() {
        // 7 min = 420 s. Year one lies 62 135 596 800 s before the Unix
        // epoch, not a multiple of 420 s: the Unix epoch sits 60 s into a
        // period.
        let step = 420_000i64;
        let offset = (YEAR_ONE_TO_UNIX_SECS * 1000).rem_euclid(step);
        assert_eq!(offset, 60_000);
        let prev = ms(prev_boundary(at(T), Duration::from_secs(420)));
        assert_eq!((prev + YEAR_ONE_TO_UNIX_SECS * 1000).rem_euclid(step), 0);
        assert!(prev <= T && T - prev < step);
        // Counting from the Unix epoch would give another instant.
        assert_ne!(prev, T - T.rem_euclid(step));
        assert_eq!(prev, 1_699_999_920_000);
    }

    #[test]
    fn times_before_the_unix_epoch_round_down() {
        let i = Duration::from_secs(30);
        assert_eq!(ms(prev_boundary(at(-1), i)), -30_000);
        assert_eq!(ms(next_boundary(at(-1), i)), 0);
        assert_eq!(ms(prev_boundary(at(-30_000), i)), -30_000);
    }

    #[test]
    fn zero_interval_is_the_identity() {
        assert_eq!(prev_boundary(at(T), Duration::ZERO), at(T));
        assert_eq!(next_boundary(at(T), Duration::ZERO), at(T));
    }
}
