//! The cost of argon2id (`PASSWORD_HASH_MEMORY_KIB`, `PASSWORD_HASH_ITERATIONS`).
//!
//! The default is OWASP's first recommendation, m = 19 MiB, t = 2, p = 1. OWASP lists trades of
//! memory for passes that defend equally well (47 MiB × 1 … 7 MiB × 5); an operator may pick
//! another one, or a costlier one, to suit the machine. Production refuses anything cheaper than
//! the cheapest of them; development accepts it with a warning (the tests run on a cheap cost,
//! except those that are about the cost).

use super::parser::{Parser, Vars};

pub mod defaults {
    /// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB.
    pub const MEMORY_KIB: u32 = 19 * 1024;
    /// … with t = 2.
    pub const ITERATIONS: u32 = 2;
}

/// OWASP's cheapest equivalent settings: at least 7 MiB, and memory × passes at least
/// 35,840 KiB (7 MiB × 5, 9 MiB × 4, 12 MiB × 3, 19 MiB × 2, 46 MiB × 1 all reach it).
const FLOOR_MEMORY_KIB: u32 = 7 * 1024;
const FLOOR_PRODUCT: u64 = 7 * 1024 * 5;
/// What one hashing thread may hold: 1 GiB.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;

/// Validated argon2id parameters (parallelism 1: the hashing threads are the parallelism).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashCost {
    params: argon2::Params,
}

impl HashCost {
    /// Memory in KiB (argon2's `m`).
    pub fn memory_kib(&self) -> u32 {
        self.params.m_cost()
    }

    /// Passes over the memory (argon2's `t`).
    pub fn iterations(&self) -> u32 {
        self.params.t_cost()
    }

    pub fn params(&self) -> &argon2::Params {
        &self.params
    }

    /// Whether this cost meets OWASP's floor (what production requires).
    pub fn meets_owasp_floor(&self) -> bool {
        self.memory_kib() >= FLOOR_MEMORY_KIB
            && u64::from(self.memory_kib()) * u64::from(self.iterations()) >= FLOOR_PRODUCT
    }

    /// `m` KiB and `t` passes, when argon2 and authauth's bounds accept them.
    pub fn new(memory_kib: u32, iterations: u32) -> Option<HashCost> {
        if !(8..=MAX_MEMORY_KIB).contains(&memory_kib) || !(1..=MAX_ITERATIONS).contains(&iterations) {
            return None;
        }
        argon2::Params::new(memory_kib, iterations, 1, None)
            .ok()
            .map(|params| HashCost { params })
    }
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            params: argon2::Params::new(defaults::MEMORY_KIB, defaults::ITERATIONS, 1, None)
                .unwrap_or_default(),
        }
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> HashCost {
    let number =
        |p: &mut Parser<'_, V>, name: &'static str, default: u32, max: u32, min: u32| match p.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    p.problem(name, format!("`{raw}` is not a whole number from {min} to {max}"));
                    default
                }
            },
        };
    let memory = number(
        p,
        "PASSWORD_HASH_MEMORY_KIB",
        defaults::MEMORY_KIB,
        MAX_MEMORY_KIB,
        8,
    );
    let iterations = number(
        p,
        "PASSWORD_HASH_ITERATIONS",
        defaults::ITERATIONS,
        MAX_ITERATIONS,
        1,
    );
    let Some(cost) = HashCost::new(memory, iterations) else {
        return HashCost::default();
    };
    if !cost.meets_owasp_floor() {
        let message = format!(
            "argon2id with {memory} KiB × {iterations} is below OWASP's floor (at least 7168 KiB, \
             and memory × passes at least 35840: e.g. 19456 × 2, 12288 × 3, 7168 × 5)"
        );
        if production {
            p.problem("PASSWORD_HASH_MEMORY_KIB", message);
        } else {
            p.warnings.push(format!("{message}; production refuses it"));
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppEnv, Settings};

    fn cost<const N: usize>(vars: &[(&str, &str); N]) -> Result<Settings, String> {
        Settings::from_vars(vars).map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_is_owasps_19_mib_and_two_passes() {
        let c = HashCost::default();
        assert_eq!(
            (c.memory_kib(), c.iterations(), c.params().p_cost()),
            (19456, 2, 1)
        );
        assert!(c.meets_owasp_floor());
        assert_eq!(cost(&[]).unwrap().password_hash_cost, c);
    }

    #[test]
    fn every_owasp_equivalent_meets_the_floor_and_anything_cheaper_does_not() {
        for (m, t) in [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)] {
            assert!(HashCost::new(m, t).unwrap().meets_owasp_floor(), "{m} × {t}");
        }
        for (m, t) in [
            (35839, 1),
            (17919, 2),
            (7167, 6),
            (7168, 4),
            (1024, 64),
            (19456, 1),
        ] {
            assert!(!HashCost::new(m, t).unwrap().meets_owasp_floor(), "{m} × {t}");
        }
    }

    #[test]
    fn production_refuses_a_cost_below_the_floor_and_development_warns() {
        let cheap = [
            ("PASSWORD_HASH_MEMORY_KIB", "1024"),
            ("PASSWORD_HASH_ITERATIONS", "1"),
        ];
        let dev = Settings::from_vars(&cheap).unwrap();
        assert_eq!(
            (
                dev.password_hash_cost.memory_kib(),
                dev.password_hash_cost.iterations()
            ),
            (1024, 1)
        );
        assert!(
            dev.warnings
                .iter()
                .any(|w| w.contains("below OWASP's floor") && w.contains("production refuses")),
            "{:?}",
            dev.warnings
        );
        let err = Settings::from_vars_as(&cheap, AppEnv::Production)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PASSWORD_HASH_MEMORY_KIB") && err.contains("OWASP"),
            "{err}"
        );
        // An equivalent trade is fine in production.
        let traded = [
            ("PASSWORD_HASH_MEMORY_KIB", "12288"),
            ("PASSWORD_HASH_ITERATIONS", "3"),
        ];
        match Settings::from_vars_as(&traded, AppEnv::Production) {
            Ok(s) => assert_eq!(s.password_hash_cost.memory_kib(), 12288),
            Err(e) => assert!(!e.to_string().contains("PASSWORD_HASH"), "{e}"),
        }
    }

    #[test]
    fn out_of_range_or_unreadable_values_are_refused_by_name() {
        for (name, value) in [
            ("PASSWORD_HASH_MEMORY_KIB", "7"),
            ("PASSWORD_HASH_MEMORY_KIB", "1048577"),
            ("PASSWORD_HASH_MEMORY_KIB", "19MiB"),
            ("PASSWORD_HASH_ITERATIONS", "0"),
            ("PASSWORD_HASH_ITERATIONS", "65"),
            ("PASSWORD_HASH_ITERATIONS", "-1"),
        ] {
            let err = cost(&[(name, value)]).unwrap_err();
            assert!(err.contains(name) && err.contains(value), "{name}={value}: {err}");
        }
        // The bounds themselves are accepted.
        for (m, t) in [("8", "1"), ("1048576", "64")] {
            let s = cost(&[("PASSWORD_HASH_MEMORY_KIB", m), ("PASSWORD_HASH_ITERATIONS", t)]).unwrap();
            assert_eq!(s.password_hash_cost.memory_kib().to_string(), m);
            assert_eq!(s.password_hash_cost.iterations().to_string(), t);
        }
    }
}
