//! The time as the application sees it, passed from the request edge down to the stores.
//!
//! Every expiry, rotation and throttling decision takes `now` from a [`Clock`], never from the
//! system directly, so tests move time forward instead of sleeping through it.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::session::record::Millis;

/// The system clock, optionally shifted by an offset that only moves forward.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None` for the plain system clock (production); shared, so every clone moves together.
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { offset: None }
    }

    /// The system clock plus an offset that [`Clock::advance`] moves forward: for tests, and
    /// only built on request.
    pub fn adjustable() -> Self {
        Clock {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Milliseconds since the Unix epoch (rounded down, as `chrono`'s `timestamp_millis`).
    pub fn now(&self) -> Millis {
        let system = millis_since_epoch(SystemTime::now());
        match &self.offset {
            None => system,
            Some(offset) => system.saturating_add(offset.load(Ordering::Relaxed)),
        }
    }

    /// Moves an adjustable clock forward by `by`. Returns false, and changes nothing, on the
    /// system clock.
    pub fn advance(&self, by: Duration) -> bool {
        let Some(offset) = &self.offset else {
            return false;
        };
        let ms = Millis::try_from(by.as_millis()).unwrap_or(Millis::MAX);
        offset.fetch_add(ms, Ordering::Relaxed);
        true
    }
}

/// `at` in milliseconds since the Unix epoch, rounded down. Straight from the `SystemTime`:
/// going through `chrono::Utc::now()` worked out the calendar date first, on every session check.
fn millis_since_epoch(at: SystemTime) -> Millis {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => Millis::try_from(after.as_millis()).unwrap_or(Millis::MAX),
        Err(before) => {
            let ms = before.duration().as_nanos().div_ceil(1_000_000);
            Millis::try_from(ms).map_or(Millis::MIN, |ms| -ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_counted_as_chrono_counts_them() {
        for nanos in [
            0i64,
            1,
            999_999,
            1_000_000,
            1_500_000,
            1_764_906_721_123_456_789,
            -1,
            -1_000_000,
            -1_500_000,
            -86_400_000_000_123,
        ] {
            let at = if nanos >= 0 {
                UNIX_EPOCH + Duration::from_nanos(nanos as u64)
            } else {
                UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
            };
            let chrono = chrono::DateTime::<chrono::Utc>::from(at).timestamp_millis();
            assert_eq!(millis_since_epoch(at), chrono, "{nanos} ns");
        }
    }

    #[test]
    fn only_an_adjustable_clock_moves_and_its_clones_move_with_it() {
        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(3600)));
        assert!((system.now() - chrono::Utc::now().timestamp_millis()).abs() < 1000);

        let clock = Clock::adjustable();
        let clone = clock.clone();
        let before = clone.now();
        assert!(clock.advance(Duration::from_secs(3600)));
        assert!(clone.now() - before >= 3_600_000);
    }
}
