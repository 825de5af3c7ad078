//! Results computed from a session's stored state, kept while that state stays the same.
//!
//! Between two writes to a session (a sign-in, a touch, a rotation, a re-authentication) every
//! request reads the same stored bytes, decodes them to the same record and, on
//! `GET /auth/me`, writes the same body. Those two steps were the largest part of an
//! authenticated request's own work after HTTP ([performance.md](../../docs/performance.md)).
//! A [`Derived`] keeps the last result per session (by token hash) next to the input it was
//! computed from, and hands it out again only for an input *equal* to that one.
//!
//! It decides nothing: the store is still read on every request, so revocation, expiry and
//! rotation are seen exactly as before; a cached result is only ever the result the function
//! would have computed from the same input. Bounded (an approximate LRU of [`CAPACITY`]
//! sessions per cache); a session outside it costs what it cost before plus one lookup.

use std::sync::Arc;

use quick_cache::sync::Cache;

use super::token::TokenHash;

/// Sessions remembered per cache: the sessions in use at this moment on one server. Each entry
/// holds the input (a stored record, ~0.5–1 KiB) and the result (a decoded record or a body,
/// about as much), so a full cache is a few MiB.
pub const CAPACITY: usize = 2048;

/// A result per session, computed by a pure function of `I` and reused while `I` is unchanged.
pub struct Derived<I, V> {
    entries: Cache<[u8; 32], Arc<(I, V)>>,
}

impl<I, V> Derived<I, V>
where
    I: PartialEq + Clone,
    V: Clone,
{
    pub fn new(capacity: usize) -> Self {
        Derived {
            entries: Cache::new(capacity),
        }
    }

    /// `make(input)`, reusing the result kept for this session when it was made from an equal
    /// input. A failure is returned and not kept.
    pub fn get_or_try<E>(
        &self,
        session: &TokenHash,
        input: &I,
        make: impl FnOnce(&I) -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(kept) = self.entries.get(&session.0) {
            if kept.0 == *input {
                return Ok(kept.1.clone());
            }
        }
        let value = make(input)?;
        self.entries
            .insert(session.0, Arc::new((input.clone(), value.clone())));
        Ok(value)
    }
}

impl<I, V> Default for Derived<I, V>
where
    I: PartialEq + Clone,
    V: Clone,
{
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn hash(n: u8) -> TokenHash {
        TokenHash([n; 32])
    }

    /// `get_or_try` for session `n` with a `make` that upper-cases its input and counts its
    /// calls.
    fn upper(cache: &Derived<String, String>, calls: &Cell<u32>, n: u8, input: &str) -> Result<String, ()> {
        cache.get_or_try(&hash(n), &input.to_string(), |s: &String| {
            calls.set(calls.get() + 1);
            Ok(s.to_uppercase())
        })
    }

    #[test]
    fn an_unchanged_input_reuses_the_result() {
        let (cache, calls) = (Derived::new(16), Cell::new(0));
        for _ in 0..3 {
            assert_eq!(upper(&cache, &calls, 1, "a"), Ok("A".into()));
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn a_changed_input_is_computed_again_never_answered_from_the_old_one() {
        let (cache, calls) = (Derived::new(16), Cell::new(0));
        assert_eq!(upper(&cache, &calls, 1, "a"), Ok("A".into()));
        // Same session, new state (a touch, a rotation): the new state's result.
        assert_eq!(upper(&cache, &calls, 1, "b"), Ok("B".into()));
        assert_eq!(upper(&cache, &calls, 1, "b"), Ok("B".into()));
        // And back: computed again, not remembered from two states ago.
        assert_eq!(upper(&cache, &calls, 1, "a"), Ok("A".into()));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn sessions_are_kept_apart() {
        let (cache, calls) = (Derived::new(16), Cell::new(0));
        assert_eq!(upper(&cache, &calls, 1, "a"), Ok("A".into()));
        assert_eq!(upper(&cache, &calls, 2, "b"), Ok("B".into()));
        assert_eq!(upper(&cache, &calls, 1, "a"), Ok("A".into()));
        assert_eq!(upper(&cache, &calls, 2, "b"), Ok("B".into()));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_failure_is_returned_and_not_kept() {
        let cache: Derived<String, String> = Derived::new(16);
        let calls = Cell::new(0);
        let failing = |_: &String| -> Result<String, &str> {
            calls.set(calls.get() + 1);
            Err("corrupt")
        };
        assert_eq!(
            cache.get_or_try(&hash(1), &"a".to_string(), failing),
            Err("corrupt")
        );
        assert_eq!(
            cache.get_or_try(&hash(1), &"a".to_string(), failing),
            Err("corrupt")
        );
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let (cache, calls) = (Derived::new(64), Cell::new(0));
        for n in 0..=255u8 {
            upper(&cache, &calls, n, &n.to_string()).unwrap();
        }
        assert!(cache.entries.len() <= 64, "{} entries kept", cache.entries.len());
    }
}
