//! Session tokens and the signed cookie value that carries them.
//!
//! A token is 256 bits from the operating system's CSPRNG, base64url-encoded. The store only
//! ever sees [`TokenHash`] (SHA-256 of the token), so a dump of the store yields no usable
//! cookie. The cookie value is `<token>.<slot>.<mac>`:
//!
//! - `slot` is the user's cluster slot tag (see [`slot_tag`]): it lets the Redis store put a
//!   session and its user's index in one hash slot, so both change in one atomic script even on
//!   Redis Cluster. It is derived from a hash of the user id and tells nothing about the user.
//! - `mac` is HMAC-SHA256 over `token.slot` with the first `SESSION_SECRET`; every configured
//!   secret verifies. A forged or tampered cookie is rejected before any store lookup.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Length of a token in bytes (256 bits).
pub const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;
const SLOT_CHARS: usize = 8;
const MAC_CHARS: usize = 43;

/// Random bytes from the OS CSPRNG, base64url without padding.
pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new random secret suitable for `SESSION_SECRET` (384 bits).
pub fn generate_secret() -> String {
    random_b64(48)
}

/// A secret session token. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        SessionToken(random_b64(TOKEN_BYTES))
    }

    /// Wraps a value received from a client (a flow id, say) to hash it like a token.
    pub fn from_raw(value: &str) -> Self {
        SessionToken(value.to_string())
    }

    /// The key under which the store keeps this token's session.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// SHA-256 of a token: what the store is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// SHA-256 of a token.
    fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn to_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A hash as [`TokenHash::to_b64`] wrote it (the successor a rotated token names); `None`
    /// for anything else.
    pub fn from_b64(text: &str) -> Option<Self> {
        // Room for base64's estimate of 33; a longer text does not fit and is not a hash.
        let mut decoded = [0u8; 33];
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut decoded).ok()?;
        let bytes: [u8; 32] = decoded.get(..len)?.try_into().ok()?;
        Some(TokenHash(bytes))
    }

    /// [`TokenHash::to_b64`], appended to `out`.
    pub fn push_b64(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.0, out);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", &self.to_b64()[..8])
    }
}

/// The cluster slot tag of a user: 48 bits of SHA-256 over the user id, base64url.
pub fn slot_tag(user_id: &uuid::Uuid) -> String {
    let digest = Sha256::new()
        .chain_update(b"authauth/slot/v1/")
        .chain_update(user_id.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..6])
}

/// What a verified cookie carries, read in place from the cookie value. `Debug` never prints
/// the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieValue<'a> {
    token: &'a str,
    pub slot: &'a str,
}

impl CookieValue<'_> {
    /// The hash of the token the cookie carries: its session's key in the store.
    pub fn token_hash(&self) -> TokenHash {
        TokenHash::of(self.token)
    }
}

impl fmt::Debug for CookieValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CookieValue {{ token: [redacted], slot: {:?} }}", self.slot)
    }
}

/// Signs and verifies cookie values with the configured secrets.
#[derive(Clone)]
pub struct CookieSigner {
    /// Per secret, HMAC-SHA256 already keyed: the two blocks HMAC derives from the key (inner
    /// and outer pad) are hashed once here, not on every request; each use starts from a copy.
    keyed: Vec<HmacSha256>,
}

impl fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CookieSigner([{} keys redacted])", self.keyed.len())
    }
}

impl CookieSigner {
    /// `keys[0]` signs; every key verifies. Panics on an empty list, which configuration
    /// validation rules out.
    pub fn new(keys: Vec<SecretString>) -> Self {
        assert!(!keys.is_empty(), "at least one session secret is required");
        CookieSigner {
            keyed: keys.iter().map(Self::mac).collect(),
        }
    }

    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    fn mac(key: &SecretString) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(key.expose_secret().as_bytes()).expect("HMAC takes any key length")
    }

    /// The cookie value for a token.
    pub fn sign(&self, token: &SessionToken, slot: &str) -> String {
        let payload = format!("{}.{slot}", token.expose());
        let tag = self.tag(&payload);
        format!("{payload}.{tag}")
    }

    /// HMAC-SHA256 of `payload` with the signing key, base64url.
    pub fn tag(&self, payload: &str) -> String {
        let mut mac = self.keyed[0].clone();
        mac.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` is the HMAC of `payload` under any configured key (constant time).
    pub fn check_tag(&self, payload: &str, tag: &str) -> bool {
        // Decoded on the stack: a tag of 43 characters is 32 bytes (room for base64's estimate
        // of 33); a longer one does not fit and cannot verify either.
        let mut decoded = [0u8; 33];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(tag, &mut decoded) else {
            return false;
        };
        let tag = &decoded[..len];
        self.keyed.iter().any(|keyed| {
            let mut mac = keyed.clone();
            mac.update(payload.as_bytes());
            mac.verify_slice(tag).is_ok()
        })
    }

    /// Checks the shape and the signature (in constant time) of a cookie value.
    ///
    /// Every part has a fixed length, so the two dots have fixed places: they are checked
    /// there, not searched for. What lies between them is the signature's to judge — a value
    /// this server did not sign (a dot inside the token, say) cannot verify.
    pub fn verify<'a>(&self, value: &'a str) -> Option<CookieValue<'a>> {
        const SLOT_AT: usize = TOKEN_CHARS + 1;
        const MAC_AT: usize = SLOT_AT + SLOT_CHARS + 1;
        let bytes = value.as_bytes();
        if bytes.len() != MAC_AT + MAC_CHARS || bytes[SLOT_AT - 1] != b'.' || bytes[MAC_AT - 1] != b'.' {
            return None;
        }
        // Each cut follows an ASCII dot, so it falls between characters.
        let payload = value.get(..MAC_AT - 1)?;
        let tag = value.get(MAC_AT..)?;
        if !self.check_tag(payload, tag) {
            return None;
        }
        Some(CookieValue {
            token: value.get(..SLOT_AT - 1)?,
            slot: value.get(SLOT_AT..MAC_AT - 1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(keys: &[&str]) -> CookieSigner {
        CookieSigner::new(keys.iter().map(|k| SecretString::from(k.to_string())).collect())
    }

    /// The tag is HMAC-SHA256 under the configured key, computed from the pre-keyed state:
    /// RFC 4231 test case 2, under the signing key and (for verification) under a previous one.
    #[test]
    fn the_tag_is_hmac_sha256_of_the_payload_under_each_key() {
        // 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843, base64url.
        let tag = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM".to_string();
        let payload = "what do ya want for nothing?";
        let s = signer(&["Jefe"]);
        assert_eq!(s.tag(payload), tag);
        // Twice: each use starts from the keyed state, not from the previous use's.
        assert_eq!(s.tag(payload), tag);
        let rotated = signer(&["a new secret", "Jefe"]);
        assert_ne!(rotated.tag(payload), tag, "signs with the first key");
        assert!(rotated.check_tag(payload, &tag), "verifies with every key");
        assert!(!signer(&["Jeff"]).check_tag(payload, &tag));
    }

    #[test]
    fn signed_cookie_round_trips() {
        let s = signer(&["a".repeat(32).as_str()]);
        let token = SessionToken::generate();
        let slot = slot_tag(&uuid::Uuid::new_v4());
        let value = s.sign(&token, &slot);
        let back = s.verify(&value).unwrap();
        assert!(back.token_hash() == token.hash());
        assert_eq!(back.slot, slot);
        assert!(
            !format!("{back:?}").contains(token.expose()),
            "Debug never prints the token"
        );
    }

    #[test]
    fn tampered_or_foreign_cookies_are_rejected() {
        let s = signer(&["a".repeat(32).as_str()]);
        let value = s.sign(&SessionToken::generate(), &slot_tag(&uuid::Uuid::new_v4()));
        let mut bytes = value.clone().into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        assert!(s.verify(std::str::from_utf8(&bytes).unwrap()).is_none());
        assert!(signer(&["b".repeat(32).as_str()]).verify(&value).is_none());
        assert!(s.verify("attacker-chosen").is_none());
        assert!(s.verify("").is_none());
    }

    #[test]
    fn a_value_of_the_right_length_and_the_wrong_shape_is_refused_without_a_panic() {
        let s = signer(&["a".repeat(32).as_str()]);
        let value = s.sign(&SessionToken::generate(), &slot_tag(&uuid::Uuid::new_v4()));
        // A dot inside the token, or a separator missing: what the signature covered changed.
        for at in [10, 43, 52, 60] {
            let mut moved = value.clone().into_bytes();
            moved[at] = if moved[at] == b'.' { b'A' } else { b'.' };
            assert!(
                s.verify(std::str::from_utf8(&moved).unwrap()).is_none(),
                "byte {at}"
            );
        }
        // As many bytes, in two-byte characters: no cut may fall inside one.
        let wide = "é".repeat(value.len() / 2);
        assert_eq!(wide.len(), value.len());
        assert!(s.verify(&wide).is_none());
        let mut shifted = value.clone();
        shifted.replace_range(42..44, "é");
        assert!(s.verify(&shifted).is_none());
        // A tag longer than any HMAC-SHA256 tag: refused, not decoded past its buffer.
        assert!(!s.check_tag("payload", &"A".repeat(200)));
        assert!(!s.check_tag("payload", ""));
    }

    #[test]
    fn every_configured_secret_verifies_but_only_the_first_signs() {
        let old = signer(&["old".repeat(11).as_str()]);
        let value = old.sign(&SessionToken::generate(), &slot_tag(&uuid::Uuid::new_v4()));
        let rotated = signer(&["new".repeat(11).as_str(), "old".repeat(11).as_str()]);
        assert!(rotated.verify(&value).is_some());
        let fresh = rotated.sign(&SessionToken::generate(), "AAAAAAAA");
        assert!(old.verify(&fresh).is_none());
    }

    #[test]
    fn tokens_are_unique_and_256_bits() {
        let tokens: std::collections::HashSet<String> = (0..1000)
            .map(|_| SessionToken::generate().expose().to_string())
            .collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens
            .iter()
            .all(|t| URL_SAFE_NO_PAD.decode(t).unwrap().len() == 32));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = SessionToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
        // …but says what it is, so a log line still makes sense.
        assert_eq!(format!("{t:?}"), "SessionToken([redacted])");
        let s = signer(&["a".repeat(32).as_str(), "b".repeat(32).as_str()]);
        assert_eq!(format!("{s:?}"), "CookieSigner([2 keys redacted])");
    }

    #[test]
    fn a_token_hash_is_the_sha256_of_the_token_in_base64url() {
        // SHA-256("abc"), the FIPS 180-2 example, in base64url without padding.
        let hash = SessionToken::from_raw("abc").hash();
        assert_eq!(hash.to_b64(), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        // …and reads back from it; nothing else reads as a hash.
        assert!(TokenHash::from_b64(&hash.to_b64()) == Some(hash));
        for other in [
            "",
            "abc",
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0AA",
            "not base64!",
        ] {
            assert!(TokenHash::from_b64(other).is_none(), "{other:?}");
        }
        // Debug shows only a prefix: enough to tell entries apart in a log.
        assert_eq!(format!("{hash:?}"), "TokenHash(ungWv48B)");
    }

    #[test]
    fn a_signed_value_of_the_right_length_but_the_wrong_parts_is_refused() {
        // Validly signed, 96 characters in all, but a 42-character token and a 9-character
        // slot: the shape check refuses it before anything else looks at it.
        let s = signer(&["a".repeat(32).as_str()]);
        let value = s.sign(&SessionToken::from_raw(&"t".repeat(42)), &"s".repeat(9));
        assert_eq!(value.len(), TOKEN_CHARS + SLOT_CHARS + MAC_CHARS + 2);
        assert!(s.verify(&value).is_none());
        let value = s.sign(&SessionToken::from_raw(&"t".repeat(43)), &"s".repeat(8));
        assert!(s.verify(&value).is_some());
    }

    #[test]
    fn secrets_are_384_random_bits() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 48);
        assert_eq!(random_b64(12).len(), 16);
    }

    #[test]
    fn slot_tags_are_eight_characters_and_follow_the_user() {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(slot_tag(&a).len(), SLOT_CHARS);
        assert_eq!(slot_tag(&a), slot_tag(&a));
        assert_ne!(slot_tag(&a), slot_tag(&b));
    }
}
