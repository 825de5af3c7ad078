//! Secrets authauth must read back — an authenticator app's TOTP seed — sealed at rest with
//! AES-256-GCM. The key is derived (HKDF-SHA256) from each session secret (`SESSION_SECRET`), so
//! a copy of the database alone opens nothing; the first secret seals, every listed one opens,
//! so rotating `SESSION_SECRET` keeps them readable while the old secret stays in the list (and
//! a seal opened with an old key is re-sealed with the current one when next used). The account
//! id is the associated data: a sealed seed moved to another account's row does not open.

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What the derived key is for: a key derived for anything else differs.
const INFO: &[u8] = b"authauth second-factor seal v1";
const NONCE_BYTES: usize = 12;

/// Seals and opens with keys derived from the session secrets.
#[derive(Clone)]
pub struct Sealer {
    keys: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer([{} keys redacted])", self.keys.len())
    }
}

/// A sealed value opened.
pub struct Opened {
    pub plain: Vec<u8>,
    /// Opened with an older key: seal it again with the current one.
    pub stale: bool,
}

impl Sealer {
    pub fn new(secrets: &[SecretString]) -> Self {
        let keys = secrets
            .iter()
            .map(|s| {
                let mut okm = [0u8; 32];
                // 32 bytes is far below HKDF-SHA256's 8160-byte maximum: this cannot fail.
                let _ = Hkdf::<Sha256>::new(None, s.expose_secret().as_bytes()).expand(INFO, &mut okm);
                Aes256Gcm::new(&okm.into())
            })
            .collect();
        Sealer { keys }
    }

    /// `plain` sealed under the current key, bound to `context` (the account id).
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = key
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// The value sealed in `sealed` for `context`, or `None` when no key opens it (tampered,
    /// another account's, or sealed under a secret no longer listed).
    pub fn open(&self, sealed: &str, context: &[u8]) -> Option<Opened> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_BYTES);
        let nonce = Nonce::from_slice(nonce);
        self.keys.iter().enumerate().find_map(|(i, key)| {
            key.decrypt(
                nonce,
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
            .map(|plain| Opened { plain, stale: i > 0 })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secrets: &[&str]) -> Sealer {
        Sealer::new(
            &secrets
                .iter()
                .map(|s| SecretString::from(s.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_seal_opens_only_for_its_context_and_its_keys() {
        let current = sealer(&["a-session-secret-of-at-least-32-bytes!!"]);
        let sealed = current.seal(b"seed", b"user-1").unwrap();
        assert!(!sealed.contains("seed"));
        let opened = current.open(&sealed, b"user-1").unwrap();
        assert_eq!(opened.plain, b"seed");
        assert!(!opened.stale);
        assert!(current.open(&sealed, b"user-2").is_none(), "bound to its account");
        let other = sealer(&["another-session-secret-of-32-bytes-at-least"]);
        assert!(
            other.open(&sealed, b"user-1").is_none(),
            "another secret opens nothing"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(current
            .open(&String::from_utf8(tampered).unwrap(), b"user-1")
            .is_none());
        assert!(current.open("", b"user-1").is_none());
        assert!(current.open("not base64!", b"user-1").is_none());
    }

    #[test]
    fn the_debug_form_names_no_key() {
        let secret = "a-session-secret-of-at-least-32-bytes!!";
        let shown = format!("{:?}", sealer(&[secret, secret]));
        assert_eq!(shown, "Sealer([2 keys redacted])");
    }

    #[test]
    fn a_rotated_secret_still_opens_and_says_it_is_stale() {
        let old = sealer(&["the-old-session-secret-of-32-bytes-or-more"]);
        let sealed = old.seal(b"seed", b"u").unwrap();
        let rotated = sealer(&[
            "the-new-session-secret-of-32-bytes-or-more",
            "the-old-session-secret-of-32-bytes-or-more",
        ]);
        let opened = rotated.open(&sealed, b"u").unwrap();
        assert_eq!(opened.plain, b"seed");
        assert!(opened.stale);
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(rotated.seal(b"seed", b"u"), rotated.seal(b"seed", b"u"));
    }
}
