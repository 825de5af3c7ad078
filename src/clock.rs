//! The time as the application sees it, passed from the request edge down to the stores.
//!
//! Every expiry, rotation and throttling decision takes `now` from a [`Clock`], never from the
//! system directly, so tests move time forward instead of sleeping through it.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
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

    /// Milliseconds since the Unix epoch.
    pub fn now(&self) -> Millis {
        let system = chrono::Utc::now().timestamp_millis();
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

#[cfg(test)]
mod tests {
    use super::*;

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
