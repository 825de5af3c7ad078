//! What each message says: a plain-text and a simple HTML body from one description, so the two
//! never disagree. The HTML is escaped by askama.
//!
//! No message carries text a stranger chose. The account's name is left out on purpose: whoever
//! signs up with someone else's address chooses the name too, and "Hello Click evil.example to
//! claim your prize" would be mailed to the address's owner in a message from this server. The
//! device line comes from `user_agent::describe_known`'s own words, never the raw `User-Agent`.

use askama::Template;

use super::Mail;

/// One letter, rendered twice (`templates/mail/letter.{txt,html}`).
struct Letter<'a> {
    subject: &'a str,
    before: Vec<String>,
    action: Option<(&'a str, &'a str)>,
    after: Vec<String>,
}

#[derive(Template)]
#[template(path = "mail/letter.txt")]
struct Text<'a> {
    before: &'a [String],
    action: Option<(&'a str, &'a str)>,
    after: &'a [String],
}

#[derive(Template)]
#[template(path = "mail/letter.html")]
struct Html<'a> {
    subject: &'a str,
    before: &'a [String],
    action: Option<(&'a str, &'a str)>,
    after: &'a [String],
}

impl Letter<'_> {
    fn into_mail(self, kind: &'static str, to: &str) -> Mail {
        let text = Text {
            before: &self.before,
            action: self.action,
            after: &self.after,
        }
        .render()
        .unwrap_or_default();
        let html = Html {
            subject: self.subject,
            before: &self.before,
            action: self.action,
            after: &self.after,
        }
        .render()
        .unwrap_or_default();
        Mail {
            kind,
            to: to.to_string(),
            subject: self.subject.to_string(),
            text,
            html,
            link: self.action.map(|(_, url)| url.to_string()),
        }
    }
}

/// A readable lifetime: "1 hour", "24 hours", "7 days", "30 minutes".
pub fn lifetime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s.is_multiple_of(86_400) && s >= 2 * 86_400 {
        (s / 86_400, "day")
    } else if s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "Confirm your e-mail address": sent at sign-up and on request.
pub fn verify_email(to: &str, link: &str, valid_for: std::time::Duration) -> Mail {
    Letter {
        subject: "Confirm your e-mail address",
        before: vec![format!(
            "Please confirm that {to} is your address. Opening the link shows a button; the address is confirmed when you press it."
        )],
        action: Some(("Confirm my address", link)),
        after: vec![
            format!("The link works once, for {}.", lifetime(valid_for)),
            "If you did not create an account, ignore this message: without the confirmation nothing is verified."
                .into(),
        ],
    }
    .into_mail("verify_email", to)
}

/// "Reset your password": the answer to a reset request for an account with a password.
pub fn reset_password(to: &str, link: &str, valid_for: std::time::Duration) -> Mail {
    Letter {
        subject: "Reset your password",
        before: vec![
            "Someone — we hope you — asked to reset the password of your account. Choose a new one here:"
                .into(),
        ],
        action: Some(("Choose a new password", link)),
        after: vec![
            format!(
                "The link works once, for {}. Setting a new password signs you out everywhere else.",
                lifetime(valid_for)
            ),
            "If you did not ask for this, ignore this message: your password stays as it is.".into(),
        ],
    }
    .into_mail("reset_password", to)
}

/// The answer to a reset request for an account that has no password: how it signs in.
pub fn reset_without_password(to: &str, providers: &[String]) -> Mail {
    let how = if providers.is_empty() {
        "an identity provider".to_string()
    } else {
        providers.join(", ")
    };
    Letter {
        subject: "About your password reset request",
        before: vec![
            "Someone — we hope you — asked to reset the password of your account.".into(),
            format!("Your account has no password: you sign in with {how}. Use the \"Continue with\" button on the sign-in page."),
        ],
        action: None,
        after: vec!["If you did not ask for this, ignore this message: nothing changed.".into()],
    }
    .into_mail("reset_password_no_password", to)
}

/// What a new-device alert tells about the sign-in.
pub struct SignInDetails<'a> {
    pub when: &'a str,
    pub device: &'a str,
    pub ip: &'a str,
    pub method: &'a str,
}

/// "New sign-in to your account": a browser that never signed in to the account just did.
pub fn new_device(to: &str, sign_in: &SignInDetails<'_>, link: &str, valid_for: std::time::Duration) -> Mail {
    Letter {
        subject: "New sign-in to your account",
        before: vec![
            "Your account was just signed in to from a browser that had not signed in to it before.".into(),
            format!(
                "When: {}. Device: {}. Network address: {}. Signed in with: {}.",
                sign_in.when, sign_in.device, sign_in.ip, sign_in.method
            ),
            "If this was you, there is nothing to do.".into(),
        ],
        action: Some(("This wasn't me — end that session", link)),
        after: vec![format!(
            "The link ends exactly that session, once, and offers to reset your password; it works for {}.",
            lifetime(valid_for)
        )],
    }
    .into_mail("new_device", to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bodies_carry_the_link_and_the_html_is_escaped() {
        let m = verify_email(
            "a<script>@example.com",
            "https://auth.example.com/verify-email?token=abc",
            std::time::Duration::from_secs(24 * 3600),
        );
        for body in [&m.text, &m.html] {
            assert!(
                body.contains("https://auth.example.com/verify-email?token=abc"),
                "{body}"
            );
            assert!(body.contains("24 hours"), "{body}");
        }
        assert!(
            m.text.starts_with("Hello,\n"),
            "no name a stranger could have chosen: {}",
            m.text
        );
        assert!(
            m.html.contains("a&#60;script&#62;@") || m.html.contains("a&lt;script&gt;@"),
            "{}",
            m.html
        );
        assert!(!m.html.contains("<script>"));
    }

    #[test]
    fn lifetimes_read_naturally() {
        use std::time::Duration;
        assert_eq!(lifetime(Duration::from_secs(3600)), "1 hour");
        assert_eq!(lifetime(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(lifetime(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(lifetime(Duration::from_secs(1800)), "30 minutes");
    }
}
