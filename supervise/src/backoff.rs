//! Restart delays: the first restart is immediate, then exponential from
//! `restart.initial`, doubled each time, with ±25% jitter (so programs that crashed
//! together do not restart together), capped at `restart.maximum`; an uptime of
//! `restart.reset after` resets it. It never gives up: there is no FATAL state, a crash
//! loop keeps trying at the cap (supervisord#1310, systemd#2416 are why).

use std::time::Duration;

use crate::config::Restart;

/// One program's restart delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    spec: Restart,
    /// Exits in a row, each after less than `reset after` of uptime.
    failures: u32,
}

impl Backoff {
    /// Backoff per `spec`, with no failure yet.
    pub fn new(spec: Restart) -> Backoff {
        Backoff { spec, failures: 0 }
    }

    /// The delay before the next start, after an exit following `uptime`.
    pub fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.spec.reset_after {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        delay(&self.spec, self.failures, fastrand::f64())
    }
}

/// The delay after `failures` exits in a row; `random` in [0, 1) picks the jitter.
fn delay(spec: &Restart, failures: u32, random: f64) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(40);
    let base = spec.initial.as_secs_f64() * f64::from(2u32).powi(doublings as i32);
    let jittered = base * (0.75 + 0.5 * random);
    Duration::from_secs_f64(jittered.min(spec.maximum.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Restart {
        Restart {
            initial: Duration::from_millis(100),
            maximum: Duration::from_secs(2),
            reset_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn delays_grow_even_with_the_worst_jitter_then_stay_at_the_cap() {
        let spec = spec();
        assert_eq!(delay(&spec, 1, 0.5), Duration::ZERO);
        for failures in 2..6 {
            let high = delay(&spec, failures, 0.999);
            let low_next = delay(&spec, failures + 1, 0.0);
            assert!(low_next > high, "{failures}: {low_next:?} <= {high:?}");
        }
        assert_eq!(delay(&spec, 30, 0.999), Duration::from_secs(2));
        assert_eq!(delay(&spec, u32::MAX, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn a_healthy_uptime_resets_and_it_never_gives_up() {
        let mut backoff = Backoff::new(spec());
        assert_eq!(backoff.after_exit(Duration::ZERO), Duration::ZERO);
        assert!(backoff.after_exit(Duration::ZERO) > Duration::ZERO);
        for _ in 0..1000 {
            assert!(backoff.after_exit(Duration::ZERO) <= Duration::from_secs(2));
        }
        assert_eq!(backoff.after_exit(Duration::from_secs(11)), Duration::ZERO);
    }
}
