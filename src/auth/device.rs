//! Device cookies (OWASP "Slow down online guessing attacks with device cookies"): a browser
//! that signed in to an account before carries a signed proof of it, and its sign-ins to that
//! account skip the account-wide failure limit. So an attacker who fills that limit from many
//! networks locks out strangers, not the owner on their own devices.
//!
//! The value is `<nonce>.<mac>`, with `mac` = HMAC-SHA256(`SESSION_SECRET`, account and nonce):
//! it names no account and grants nothing by itself — it only changes which counters apply.

use crate::session::token::{random_b64, CookieSigner};

// `email` is the canonical address (`EmailAddress::canonical`): a cookie earned under one
// spelling is recognised under every spelling of the same address. (For ASCII addresses it is
// the trimmed lowercase address these payloads held before, so older cookies stay valid.)
fn payload(email: &str, nonce: &str) -> String {
    format!("authauth/device/v1|{email}|{nonce}")
}

/// A device cookie value proving this browser signed in to the account with the canonical
/// address `email`.
pub fn issue(signer: &CookieSigner, email: &str) -> String {
    let nonce = random_b64(16);
    let tag = signer.tag(&payload(email, &nonce));
    format!("{nonce}.{tag}")
}

/// Whether `value` proves an earlier sign-in to the canonical address `email` from this
/// browser.
pub fn recognizes(signer: &CookieSigner, email: &str, value: &str) -> bool {
    device_id(signer, email, value).is_some()
}

/// The id of the device `value` proves (its random nonce), if it proves an earlier sign-in to
/// the canonical address `email`. Throttling counts a known device's failures under it.
pub fn device_id<'v>(signer: &CookieSigner, email: &str, value: &'v str) -> Option<&'v str> {
    match value.split_once('.') {
        Some((nonce, tag)) if nonce.len() == 22 && tag.len() == 43 => {
            signer.check_tag(&payload(email, nonce), tag).then_some(nonce)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn a_device_cookie_is_bound_to_its_account_and_its_key() {
        let signer = CookieSigner::new(vec![SecretString::from("k".repeat(40))]);
        let v = issue(&signer, "alice@example.com");
        assert!(recognizes(&signer, "alice@example.com", &v));
        assert!(!recognizes(&signer, "bob@example.com", &v));
        let other = CookieSigner::new(vec![SecretString::from("o".repeat(40))]);
        assert!(!recognizes(&other, "alice@example.com", &v));
        assert!(!recognizes(&signer, "alice@example.com", "garbage"));
    }
}
