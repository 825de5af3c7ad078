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
    /// Where passkeys are bound (`WEBAUTHN_RP_ID`, `PUBLIC_URL`); `None`: passkeys are off
    /// (the public address is an IP address, which WebAuthn cannot bind a credential to).
    pub passkeys: Option<PasskeySettings>,
}

/// The WebAuthn relying party: the domain passkeys are bound to and the origin browsers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySettings {
    /// The RP ID: `PUBLIC_URL`'s host, or a parent domain of it (`WEBAUTHN_RP_ID`). A passkey
    /// works only on this domain (and its subdomains); changing it orphans every passkey.
    pub rp_id: String,
    /// The origin ceremonies must come from: `PUBLIC_URL`'s, or `http://localhost` without one.
    pub origin: url::Url,
    /// Without `PUBLIC_URL` (development): any port of `http://localhost`.
    pub any_port: bool,
}

impl Default for MfaSettings {
    fn default() -> Self {
        MfaSettings {
            required: false,
            privileged_max_age: defaults::PRIVILEGED_MAX_AGE,
            totp_issuer: defaults::TOTP_ISSUER.into(),
            passkeys: None,
        }
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, public_url: Option<&url::Url>) -> MfaSettings {
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
    let passkeys = passkeys(p, public_url);
    MfaSettings {
        required,
        privileged_max_age,
        totp_issuer,
        passkeys,
    }
}

/// The relying party from `PUBLIC_URL` and `WEBAUTHN_RP_ID`.
fn passkeys<V: Vars + ?Sized>(
    p: &mut Parser<'_, V>,
    public_url: Option<&url::Url>,
) -> Option<PasskeySettings> {
    let (origin, any_port) = match public_url {
        Some(url) => (url::Url::parse(&url.origin().ascii_serialization()).ok()?, false),
        // Browsers treat http://localhost as a secure context; 127.0.0.1 is no domain.
        None => (url::Url::parse("http://localhost").ok()?, true),
    };
    let host = match origin.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        _ => {
            if p.get("WEBAUTHN_RP_ID").is_some() {
                p.problem(
                    "WEBAUTHN_RP_ID",
                    "PUBLIC_URL's host is an IP address: passkeys need a domain name",
                );
            } else {
                p.warnings.push(
                    "passkeys are off: PUBLIC_URL's host is an IP address, and a passkey is bound to a domain name".into(),
                );
            }
            return None;
        }
    };
    let rp_id = match p.get("WEBAUTHN_RP_ID") {
        None => host,
        Some(raw) => {
            let rp_id = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            if rp_id.is_empty() || !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
                p.problem(
                    "WEBAUTHN_RP_ID",
                    format!("`{raw}` must be PUBLIC_URL's host (`{host}`) or a parent domain of it"),
                );
                return None;
            }
            rp_id
        }
    };
    Some(PasskeySettings {
        rp_id,
        origin,
        any_port,
    })
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
        let passkeys = s.mfa.passkeys.unwrap();
        assert_eq!(
            (passkeys.rp_id.as_str(), passkeys.origin.as_str()),
            ("localhost", "http://localhost/")
        );
        assert!(passkeys.any_port);
    }

    #[test]
    fn each_issuer_rule_refuses_on_its_own_and_the_bounds_are_inclusive() {
        let long = "x".repeat(64);
        assert_eq!(
            Settings::from_vars(&[("TOTP_ISSUER", long.as_str())])
                .unwrap()
                .mfa
                .totp_issuer,
            long
        );
        for bad in ["x".repeat(65), "Acme:prod".into(), "Acme\u{7}".into()] {
            let err = Settings::from_vars(&[("TOTP_ISSUER", bad.as_str())])
                .map(|s| s.mfa.totp_issuer)
                .expect_err(&bad);
            assert_eq!(err.variables(), vec!["TOTP_ISSUER"], "{bad:?}");
        }
        // Blank is unset (every variable is read trimmed): the default.
        let blank = Settings::from_vars(&[("TOTP_ISSUER", "   ")]).unwrap();
        assert_eq!(blank.mfa.totp_issuer, "authauth");
        for ok in ["30s", "2h", "24h"] {
            let s = Settings::from_vars(&[("SESSION_PRIVILEGED_MAX_AGE", ok)]).unwrap();
            assert_eq!(
                s.mfa.privileged_max_age,
                humantime::parse_duration(ok).unwrap(),
                "{ok}"
            );
        }
        for bad in ["29s", "25h"] {
            let err = Settings::from_vars(&[("SESSION_PRIVILEGED_MAX_AGE", bad)]).unwrap_err();
            assert_eq!(err.variables(), vec!["SESSION_PRIVILEGED_MAX_AGE"], "{bad}");
        }
    }

    #[test]
    fn passkeys_bind_to_the_public_host_or_a_parent_of_it_and_never_to_an_address() {
        let s = Settings::from_vars(&[("PUBLIC_URL", "https://auth.example.com")]).unwrap();
        let passkeys = s.mfa.passkeys.unwrap();
        assert_eq!(passkeys.rp_id, "auth.example.com");
        assert!(!passkeys.any_port);
        let s = Settings::from_vars(&[
            ("PUBLIC_URL", "https://auth.example.com"),
            ("WEBAUTHN_RP_ID", "example.com"),
        ])
        .unwrap();
        assert_eq!(s.mfa.passkeys.unwrap().rp_id, "example.com");
        let err = Settings::from_vars(&[
            ("PUBLIC_URL", "https://auth.example.com"),
            ("WEBAUTHN_RP_ID", "evil.com"),
        ])
        .unwrap_err();
        assert_eq!(err.variables(), vec!["WEBAUTHN_RP_ID"]);
        let s = Settings::from_vars(&[("PUBLIC_URL", "http://127.0.0.1:3000")]).unwrap();
        assert!(s.mfa.passkeys.is_none());
        assert!(
            s.warnings.iter().any(|w| w.contains("passkeys are off")),
            "{:?}",
            s.warnings
        );
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
