//! Second factors and step-up: whether every account must have one (`MFA_REQUIRED`), how
//! recent a proof of identity a sensitive operation needs (`SESSION_PRIVILEGED_MAX_AGE`), and the
//! name authenticator apps show (`TOTP_ISSUER`).

use std::time::Duration;

use super::{
    parser::{Parser, Vars},
    server::flag,
};

/// The documented defaults.
pub mod defaults {
    use std::time::Duration;

    /// How long after a sign-in or re-authentication a session may do sensitive things.
    pub const PRIVILEGED_MAX_AGE: Duration = Duration::from_secs(10 * 60);
    /// What authenticator apps call the account's entry (with its e-mail address).
    pub const TOTP_ISSUER: &str = "authauth";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSettings {
    /// `MFA_REQUIRED`: an account without a second factor must enrol one at its next sign-in
    /// before the session can do anything else.
    pub required: bool,
    /// `SESSION_PRIVILEGED_MAX_AGE`: sensitive operations (password change, adding or removing
    /// a factor, new recovery codes, ending other sessions) need a proof of identity in the
    /// session at most this old; else 403 `reauthentication_required`.
    pub privileged_max_age: Duration,
    /// `TOTP_ISSUER`: the issuer of the `otpauth://` URI, which authenticator apps display.
    pub totp_issuer: String,
}

impl Default for MfaSettings {
    fn default() -> Self {
        MfaSettings {
            required: false,
            privileged_max_age: defaults::PRIVILEGED_MAX_AGE,
            totp_issuer: defaults::TOTP_ISSUER.into(),
        }
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> MfaSettings {
    let required = flag(p, "MFA_REQUIRED", false);
    let privileged_max_age = p.duration("SESSION_PRIVILEGED_MAX_AGE", defaults::PRIVILEGED_MAX_AGE);
    if privileged_max_age < Duration::from_secs(30) || privileged_max_age > Duration::from_secs(24 * 3600) {
        p.problem(
            "SESSION_PRIVILEGED_MAX_AGE",
            "must be from 30s to 24h (a proof of identity older than a day proves little)",
        );
    }
    let totp_issuer = match p.get("TOTP_ISSUER") {
        None => defaults::TOTP_ISSUER.to_string(),
        Some(issuer) => {
            // The otpauth URI's label is `issuer:account`: a colon would split it elsewhere.
            if issuer.trim().is_empty()
                || issuer.len() > 64
                || issuer.contains(':')
                || issuer.chars().any(char::is_control)
            {
                p.problem(
                    "TOTP_ISSUER",
                    "must be 1 to 64 characters, without `:` or control characters",
                );
            }
            issuer.trim().to_string()
        }
    };
    MfaSettings {
        required,
        privileged_max_age,
        totp_issuer,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Settings;

    #[test]
    fn defaults_are_documented_values() {
        let s = Settings::from_vars(&[("APP_ENV", "development")]).unwrap();
        assert!(!s.mfa.required);
        assert_eq!(s.mfa.privileged_max_age, Duration::from_secs(600));
        assert_eq!(s.mfa.totp_issuer, "authauth");
    }

    #[test]
    fn a_colon_in_the_issuer_and_a_window_out_of_bounds_are_refused() {
        let err = Settings::from_vars(&[
            ("TOTP_ISSUER", "Acme: prod"),
            ("SESSION_PRIVILEGED_MAX_AGE", "5s"),
        ])
        .unwrap_err();
        assert_eq!(err.variables(), vec!["SESSION_PRIVILEGED_MAX_AGE", "TOTP_ISSUER"]);
        let ok =
            Settings::from_vars(&[("MFA_REQUIRED", "true"), ("SESSION_PRIVILEGED_MAX_AGE", "2m")]).unwrap();
        assert!(ok.mfa.required);
        assert_eq!(ok.mfa.privileged_max_age, Duration::from_secs(120));
    }
}
