//! Mail: how authauth sends e-mail (`SMTP_URL`, `MAIL_FROM`, or an outbox folder in
//! development), and the account features that send it — e-mail verification, password reset,
//! new-device alerts — with their links' lifetimes and addresses.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    parser::{Parser, Vars},
    redact_url,
    server::flag,
    urls::is_loopback,
};

/// Where e-mail goes.
#[derive(Clone)]
pub enum MailTransport {
    /// An SMTP server, in lettre's URL form (it may carry credentials: kept secret).
    Smtp(SecretString),
    /// `.eml` files written to this folder, their links logged: the development default, so a
    /// person can finish every flow with nothing configured.
    Outbox(PathBuf),
    /// No mail (production without `SMTP_URL`): the features that need it are off.
    Off,
}

impl fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailTransport::Smtp(url) => write!(f, "Smtp({})", redact_url(url.expose_secret())),
            MailTransport::Outbox(dir) => write!(f, "Outbox({})", dir.display()),
            MailTransport::Off => f.write_str("Off"),
        }
    }
}

/// The mail settings and the account features built on them.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// `MAIL_FROM`: the sender every message carries.
    pub from: String,
    /// `REQUIRE_VERIFIED_EMAIL`: local accounts sign in only once their address is verified.
    pub require_verified_email: bool,
    /// `NEW_DEVICE_ALERTS`: mail the owner when a browser that never signed in to the account
    /// does. On by default when `SMTP_URL` is set.
    pub new_device_alerts: bool,
    /// How long a verification link works (`EMAIL_VERIFICATION_TTL`, 24 hours).
    pub verification_ttl: Duration,
    /// How long a password reset link works (`PASSWORD_RESET_TTL`, 1 hour).
    pub reset_ttl: Duration,
    /// How long the "this wasn't me" link of a new-device alert works (`SIGN_IN_REPORT_TTL`, 7 days).
    pub report_ttl: Duration,
    /// Where each link points, when not at the hosted pages (`EMAIL_VERIFY_URL`,
    /// `PASSWORD_RESET_URL`, `SIGN_IN_REPORT_URL`); `?token=…` is appended.
    pub verify_url: Option<Url>,
    pub reset_url: Option<Url>,
    pub report_url: Option<Url>,
}

impl MailSettings {
    /// Whether anything sends mail.
    pub fn enabled(&self) -> bool {
        !matches!(self.transport, MailTransport::Off)
    }
}

/// The development sender.
const DEV_FROM: &str = "authauth <authauth@localhost>";
/// The development outbox, relative to the working directory.
pub const DEV_OUTBOX: &str = "authauth-outbox";

fn smtp_url<V: Vars + ?Sized>(p: &mut Parser<'_, V>, raw: String, production: bool) -> Option<SecretString> {
    let url = p.url("SMTP_URL", &raw, &["smtp", "smtps"])?;
    if url.host_str().is_none_or(str::is_empty) {
        p.problem("SMTP_URL", "names no host");
        return None;
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.to_string());
    match tls.as_deref() {
        None | Some("required") | Some("opportunistic") => {}
        Some(other) => {
            p.problem(
                "SMTP_URL",
                format!("`tls={other}` is not one of `required` (STARTTLS) or `opportunistic`"),
            );
            return None;
        }
    }
    if url.scheme() == "smtps" && tls.is_some() {
        p.problem(
            "SMTP_URL",
            "`smtps://` is TLS from the first byte; `?tls=` belongs to `smtp://` (STARTTLS)",
        );
        return None;
    }
    let encrypted = url.scheme() == "smtps" || tls.as_deref() == Some("required");
    if production && !encrypted && !is_loopback(&url) {
        p.problem(
            "SMTP_URL",
            format!(
                "`{}` sends mail (reset links included) unencrypted to another host in production: use \
                 `smtps://host:465` or `smtp://host:587?tls=required` (plain SMTP is accepted to a loopback relay only)",
                redact_url(&raw)
            ),
        );
        return None;
    }
    if lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&raw).is_err() {
        p.problem(
            "SMTP_URL",
            format!("`{}` is not a usable SMTP URL", redact_url(&raw)),
        );
        return None;
    }
    Some(SecretString::from(raw))
}

fn link<V: Vars + ?Sized>(p: &mut Parser<'_, V>, key: &str, production: bool) -> Option<Url> {
    let raw = p.get(key).filter(|v| !v.is_empty())?;
    let url = p.url(key, &raw, &["http", "https"])?;
    if url.query().is_some() || url.fragment().is_some() {
        p.problem(
            key,
            "must not carry a query or a fragment: `?token=…` is appended to it",
        );
        return None;
    }
    if production && url.scheme() == "http" && !is_loopback(&url) {
        p.problem(
            key,
            "is plain http in production: the link carries a secret token; use https",
        );
        return None;
    }
    Some(url)
}

pub(super) fn parse<V: Vars + ?Sized>(
    p: &mut Parser<'_, V>,
    production: bool,
    ui_enabled: bool,
) -> MailSettings {
    let smtp = p.get("SMTP_URL").filter(|v| !v.is_empty());
    let outbox = p.get("MAIL_OUTBOX_DIR").filter(|v| !v.is_empty());
    let explicit_smtp = smtp.is_some();
    let transport = match (smtp, outbox) {
        (Some(raw), _) => smtp_url(p, raw, production).map_or(MailTransport::Off, MailTransport::Smtp),
        (None, Some(dir)) => MailTransport::Outbox(PathBuf::from(dir)),
        (None, None) if production => MailTransport::Off,
        (None, None) => MailTransport::Outbox(PathBuf::from(DEV_OUTBOX)),
    };
    let from = match p.get("MAIL_FROM").filter(|v| !v.is_empty()) {
        Some(raw) => match lettre::message::Mailbox::from_str(&raw) {
            Ok(_) => raw,
            Err(e) => {
                p.problem(
                    "MAIL_FROM",
                    format!("`{raw}` is not a mailbox ({e}); use `Name <address@example.com>` or `address@example.com`"),
                );
                DEV_FROM.to_string()
            }
        },
        None => {
            if production && explicit_smtp {
                p.problem(
                    "MAIL_FROM",
                    "required with SMTP_URL in production: the sender of every message, e.g. `Example <no-reply@example.com>`",
                );
            }
            DEV_FROM.to_string()
        }
    };
    let require_verified_email = flag(p, "REQUIRE_VERIFIED_EMAIL", false);
    let alerts_default = explicit_smtp;
    let new_device_alerts = flag(p, "NEW_DEVICE_ALERTS", alerts_default);
    if matches!(transport, MailTransport::Off) && !p.problems.iter().any(|x| x.variable == "SMTP_URL") {
        for (enabled, name) in [
            (require_verified_email, "REQUIRE_VERIFIED_EMAIL"),
            (new_device_alerts, "NEW_DEVICE_ALERTS"),
        ] {
            if enabled {
                p.problem(
                    name,
                    "sends e-mail, and no mail is configured: set SMTP_URL (and MAIL_FROM)",
                );
            }
        }
    }
    let verification_ttl = p.duration("EMAIL_VERIFICATION_TTL", Duration::from_secs(24 * 3600));
    let reset_ttl = p.duration("PASSWORD_RESET_TTL", Duration::from_secs(3600));
    let report_ttl = p.duration("SIGN_IN_REPORT_TTL", Duration::from_secs(7 * 24 * 3600));
    let verify_url = link(p, "EMAIL_VERIFY_URL", production);
    let reset_url = link(p, "PASSWORD_RESET_URL", production);
    let report_url = link(p, "SIGN_IN_REPORT_URL", production);
    let mail = MailSettings {
        transport,
        from,
        require_verified_email,
        new_device_alerts,
        verification_ttl,
        reset_ttl,
        report_ttl,
        verify_url,
        reset_url,
        report_url,
    };
    if mail.enabled() && !ui_enabled {
        for (set, name) in [
            (mail.verify_url.is_some(), "EMAIL_VERIFY_URL"),
            (mail.reset_url.is_some(), "PASSWORD_RESET_URL"),
            (mail.report_url.is_some(), "SIGN_IN_REPORT_URL"),
        ] {
            if !set {
                p.warnings.push(format!(
                    "UI_ENABLED is false and {name} is not set: the e-mailed links point at hosted pages this server does not serve; set {name} to your own page"
                ));
            }
        }
    }
    mail
}

#[cfg(test)]
mod tests {
    use super::MailTransport;
    use crate::config::Settings;

    fn prod(extra: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
        let secret = "s".repeat(64);
        let mut vars = vec![
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
            ("SESSION_SECRET", secret.as_str()),
            ("DATABASE_URL", "postgres://u:p@db/authauth"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ];
        vars.extend_from_slice(extra);
        let vars: std::collections::HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(&vars)
    }

    #[test]
    fn development_writes_mail_to_an_outbox_with_nothing_configured() {
        let s = Settings::from_vars(&[("APP_ENV", "development")]).unwrap();
        assert!(matches!(s.mail.transport, MailTransport::Outbox(ref d) if d.ends_with("authauth-outbox")));
        assert!(
            !s.mail.new_device_alerts,
            "alerts are on by default only with SMTP_URL"
        );
        assert!(!s.mail.require_verified_email);
        assert_eq!(s.mail.reset_ttl.as_secs(), 3600);
        assert_eq!(s.mail.verification_ttl.as_secs(), 24 * 3600);
    }

    #[test]
    fn production_refuses_plaintext_smtp_to_another_host() {
        let from = ("MAIL_FROM", "Example <no-reply@example.com>");
        let err = prod(&[("SMTP_URL", "smtp://mail.example.com:25"), from]).unwrap_err();
        assert!(err.to_string().contains("unencrypted"), "{err}");
        let err = prod(&[
            ("SMTP_URL", "smtp://mail.example.com:587?tls=opportunistic"),
            from,
        ])
        .unwrap_err();
        assert!(err.to_string().contains("unencrypted"), "{err}");
        for ok in [
            "smtps://user:pass@mail.example.com:465",
            "smtp://mail.example.com:587?tls=required",
            "smtp://127.0.0.1:1025",
        ] {
            let s = prod(&[("SMTP_URL", ok), from]).unwrap();
            assert!(matches!(s.mail.transport, MailTransport::Smtp(_)), "{ok}");
            assert!(s.mail.new_device_alerts, "on by default when SMTP_URL is set");
            assert!(
                !format!("{:?}", s.mail).contains("pass@"),
                "credentials are never printed"
            );
        }
    }

    #[test]
    fn production_without_smtp_turns_mail_off_and_refuses_features_that_need_it() {
        let s = prod(&[]).unwrap();
        assert!(matches!(s.mail.transport, MailTransport::Off));
        let err = prod(&[("REQUIRE_VERIFIED_EMAIL", "true")]).unwrap_err();
        assert_eq!(err.variables(), vec!["REQUIRE_VERIFIED_EMAIL"]);
        let err = prod(&[("NEW_DEVICE_ALERTS", "true")]).unwrap_err();
        assert_eq!(err.variables(), vec!["NEW_DEVICE_ALERTS"]);
        let err = prod(&[("SMTP_URL", "smtps://mail.example.com")]).unwrap_err();
        assert_eq!(err.variables(), vec!["MAIL_FROM"]);
    }

    #[test]
    fn malformed_mail_settings_are_reported() {
        for (k, v) in [
            ("SMTP_URL", "http://mail.example.com"),
            ("SMTP_URL", "smtp://mail.example.com?tls=maybe"),
            ("SMTP_URL", "smtps://mail.example.com?tls=required"),
            ("MAIL_FROM", "not a mailbox"),
            ("PASSWORD_RESET_URL", "https://app.example.com/reset?x=1"),
            ("PASSWORD_RESET_TTL", "soon"),
        ] {
            let err = Settings::from_vars(&[(k, v)]).unwrap_err();
            assert_eq!(err.variables(), vec![k], "{k}={v}");
        }
    }
}
