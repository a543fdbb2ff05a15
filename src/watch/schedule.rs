//! Which AWS secrets a poll asks about, and how: the pure part of the watch loop's tick.
//!
//! A DescribeSecret per secret per poll is what keeps a rotation that Secrets Manager schedules
//! detected within one interval; it is also nearly all of what watching costs. But Secrets
//! Manager says when a scheduled rotation can happen: `NextRotationDate` is the latest time the
//! next one occurs, and the rotation window (`RotationRules.Duration`, else the rest of the UTC
//! day, so at most 24 h) ends there. So a secret is described at every poll only while it is
//! [`due`]: its schedule is unknown (not described yet), or rotation is enabled and the window
//! opens within one interval (a margin for jitter and clock skew), has opened, or was missed (a
//! failed rotation is retried with `NextRotationDate` in the past). Every other secret is
//! *quiet*: rotation is off, or its window is far away. Quiet secrets are checked by the sweep
//! ([`sweep_due`]), many at a time with ListSecrets, which finds what no schedule announces (a
//! PutSecretValue, a rotate-now, a changed schedule) within the sweep period plus ListSecrets'
//! lag. A recheck signal forces a DescribeSecret of every secret.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::provider::aws::RotationSchedule;

/// How a poll checks one AWS secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// DescribeSecret, now.
    Describe,
    /// With the other quiet secrets, through ListSecrets (this poll sweeps).
    Sweep,
    /// Not this poll: quiet, and no sweep is due.
    Skip,
}

/// How a poll at `now` checks a secret whose schedule was last seen as `schedule` (`None`: never
/// seen). `forced`: a recheck signal asked for every secret.
pub(super) fn how_to_check(
    schedule: Option<&RotationSchedule>,
    now: SystemTime,
    interval: Duration,
    sweeping: bool,
    forced: bool,
) -> Check {
    if forced || due(schedule, now, interval) {
        Check::Describe
    } else if sweeping {
        Check::Sweep
    } else {
        Check::Skip
    }
}

/// Whether a secret must be described at every poll (see the module doc).
pub(super) fn due(
    schedule: Option<&RotationSchedule>,
    now: SystemTime,
    interval: Duration,
) -> bool {
    let Some(schedule) = schedule else {
        return true;
    };
    if !schedule.enabled {
        return false;
    }
    let Some(next) = schedule.next else {
        // Enabled, and no date: assume it can happen any time.
        return true;
    };
    match next.checked_sub(schedule.window.saturating_add(interval)) {
        Some(opens) => now >= opens,
        None => true,
    }
}

/// Whether the poll at `now` sweeps, the last sweep (or the start) having been at `last`. Polls
/// are jittered: a sweep that falls due within half an interval runs at this poll rather than
/// the next, so sweeps come every `sweep` on average instead of `sweep` plus up to an interval.
pub(super) fn sweep_due(last: Instant, now: Instant, interval: Duration, sweep: Duration) -> bool {
    // Durations are bounded at config load; this never overflows whatever they are.
    match last.checked_add(sweep) {
        Some(due) => due.saturating_duration_since(now) <= interval / 2,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);
    const INTERVAL: Duration = Duration::from_secs(300);

    fn scheduled(next: Option<SystemTime>, window: Duration) -> RotationSchedule {
        RotationSchedule {
            enabled: true,
            next,
            window,
        }
    }

    #[test]
    fn an_unknown_schedule_is_due() {
        assert!(due(None, SystemTime::now(), INTERVAL));
    }

    #[test]
    fn rotation_off_is_quiet_whatever_the_date() {
        let now = SystemTime::now();
        for next in [None, Some(now), Some(now - DAY), Some(now + HOUR)] {
            let off = RotationSchedule {
                enabled: false,
                next,
                window: DAY,
            };
            assert!(!due(Some(&off), now, INTERVAL), "{next:?}");
        }
    }

    #[test]
    fn a_far_window_is_quiet_and_an_open_one_due() {
        let now = SystemTime::now();
        let in_30_days = scheduled(Some(now + 30 * DAY), DAY);
        assert!(!due(Some(&in_30_days), now, INTERVAL));
        // A 24 h window ending tomorrow at this time is open now.
        let tomorrow = scheduled(Some(now + DAY), DAY);
        assert!(due(Some(&tomorrow), now, INTERVAL));
        // A 3 h window ending in 3 h 4 min opens in 4 min: within an interval, so due.
        let soon = scheduled(Some(now + 3 * HOUR + 4 * MINUTE), 3 * HOUR);
        assert!(due(Some(&soon), now, INTERVAL));
        // ... and one ending in 3 h 6 min is not yet.
        let later = scheduled(Some(now + 3 * HOUR + 6 * MINUTE), 3 * HOUR);
        assert!(!due(Some(&later), now, INTERVAL));
    }

    #[test]
    fn a_missed_rotation_or_a_missing_date_is_due() {
        let now = SystemTime::now();
        assert!(due(Some(&scheduled(Some(now - DAY), DAY)), now, INTERVAL));
        assert!(due(
            Some(&scheduled(Some(now - 3650 * DAY), DAY)),
            now,
            INTERVAL
        ));
        assert!(due(Some(&scheduled(None, DAY)), now, INTERVAL));
        // Before the epoch: no overflow, just due.
        assert!(due(
            Some(&scheduled(Some(SystemTime::UNIX_EPOCH), DAY)),
            now,
            INTERVAL
        ));
    }

    #[test]
    fn a_date_years_away_is_quiet() {
        let now = SystemTime::now();
        let far = scheduled(Some(now + 365 * 200 * DAY), DAY);
        assert!(!due(Some(&far), now, INTERVAL));
        let end_of_time = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX.unsigned_abs());
        assert!(!due(
            Some(&scheduled(Some(end_of_time), DAY)),
            now,
            INTERVAL
        ));
    }

    #[test]
    fn a_forced_poll_describes_everything() {
        let now = SystemTime::now();
        let quiet = scheduled(Some(now + 30 * DAY), DAY);
        assert_eq!(
            how_to_check(Some(&quiet), now, INTERVAL, false, true),
            Check::Describe
        );
        assert_eq!(
            how_to_check(Some(&quiet), now, INTERVAL, true, false),
            Check::Sweep
        );
        assert_eq!(
            how_to_check(Some(&quiet), now, INTERVAL, false, false),
            Check::Skip
        );
        assert_eq!(
            how_to_check(None, now, INTERVAL, true, false),
            Check::Describe
        );
    }

    #[test]
    fn sweeps_come_every_sweep_period_on_average() {
        let start = Instant::now();
        assert!(!sweep_due(start, start + INTERVAL, INTERVAL, HOUR));
        assert!(!sweep_due(start, start + 57 * MINUTE, INTERVAL, HOUR));
        assert!(sweep_due(start, start + 58 * MINUTE, INTERVAL, HOUR));
        assert!(sweep_due(start, start + HOUR, INTERVAL, HOUR));
        // A sweep as long as the interval sweeps at every poll, jitter and all.
        assert!(sweep_due(
            start,
            start + INTERVAL.mul_f64(0.9),
            INTERVAL,
            INTERVAL
        ));
    }

    #[test]
    fn absurd_durations_do_not_overflow() {
        let start = Instant::now();
        assert!(!sweep_due(start, start, INTERVAL, Duration::MAX));
        assert!(sweep_due(start, start + HOUR, Duration::MAX, HOUR));
    }

    /// The cost the watch is built for: over a 30-day rotation period with a 24 h window and the
    /// default 5 min interval and 1 h sweep, one secret is described at about 1 poll in 30.
    #[test]
    fn a_monthly_rotation_is_due_a_thirtieth_of_the_time() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let schedule = scheduled(Some(start + 30 * DAY), DAY);
        let polls = (0..30 * 24 * 12)
            .filter(|i| due(Some(&schedule), start + INTERVAL * *i, INTERVAL))
            .count();
        assert_eq!(polls, 24 * 12 + 1, "the window and one interval before it");
    }
}
