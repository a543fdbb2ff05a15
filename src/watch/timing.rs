//! The watch loop's clocks: the jittered interval, the backoff while checks fail, and when a
//! recheck signal is acted on. Pure functions, tested here.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest time between two checks that the recheck signal forces: a loop of signals costs
/// one check per secret every `RECHECK_GAP`, not back-to-back checks.
pub(super) const RECHECK_GAP: Duration = Duration::from_secs(10);

/// When a recheck signal that arrives at `now` is acted on: at once, unless a forced check began
/// less than [`RECHECK_GAP`] ago (then when the gap ends), or checks are failing (then at the
/// end of the backoff, `wake`, which it does not cut short). Never later than `wake`.
pub(super) fn recheck_at(
    now: Instant,
    last_forced: Option<Instant>,
    failures: u32,
    wake: Instant,
) -> Instant {
    if failures > 0 {
        return wake;
    }
    let gap_ends = last_forced
        .and_then(|last| last.checked_add(RECHECK_GAP))
        .unwrap_or(now);
    gap_ends.max(now).min(wake)
}

/// `interval` ± 10%.
pub(super) fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Exponential backoff from 1 s (or the interval, when shorter), with full jitter, capped at the
/// interval.
pub(super) fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(1).min(interval);
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(failures.min(20)))
        .min(interval);
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rechecks_come_at_most_every_gap_and_never_cut_a_backoff() {
        let now = Instant::now();
        let wake = now + Duration::from_secs(300);
        let s = Duration::from_secs;
        // The first, or one after the gap: at once.
        assert_eq!(recheck_at(now, None, 0, wake), now);
        assert_eq!(recheck_at(now, Some(now - s(11)), 0, wake), now);
        // Within the gap: when it ends, unless the poll comes first.
        assert_eq!(recheck_at(now, Some(now - s(4)), 0, wake), now + s(6));
        let soon = now + s(2);
        assert_eq!(recheck_at(now, Some(now - s(4)), 0, soon), soon);
        // Checks failing: the backoff runs its course.
        assert_eq!(recheck_at(now, None, 3, wake), wake);
        assert_eq!(recheck_at(now, Some(now - s(60)), 1, wake), wake);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(300);
        for _ in 0..1000 {
            let d = jittered(interval);
            assert!(d >= Duration::from_secs(270) && d <= Duration::from_secs(330));
        }
    }

    #[test]
    fn backoff_grows_and_is_capped_by_the_interval() {
        let interval = Duration::from_secs(60);
        assert!(backoff(1, interval) <= Duration::from_secs(2));
        for failures in 1..40 {
            assert!(backoff(failures, interval) <= interval);
        }
        assert!(backoff(10, interval) >= Duration::from_secs(30));
        assert!(backoff(3, Duration::from_millis(200)) <= Duration::from_millis(200));
    }
}
