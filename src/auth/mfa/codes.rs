//! TOTP codes (RFC 6238, via `totp-rs`) and recovery codes.
//!
//! TOTP: SHA-1, 6 digits, 30-second steps — what every authenticator app reads from an
//! `otpauth://` URI — with one step of clock skew either way. A code is accepted for one step
//! only once (the caller records the step, see `super::Mfa`). Recovery codes: 80 random bits
//! each, written as 16 characters of Crockford's base32 in groups of four; stored as SHA-256
//! digests, which 80 bits make as good as unguessable.

use rand::{rngs::OsRng, Rng};
use sha2::{Digest, Sha256};
use totp_rs::{Builder, Secret, Totp};

/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per TOTP code.
pub const DIGITS: u8 = 6;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at once.
pub const RECOVERY_CODES: usize = 10;

/// A new TOTP secret from the OS's random number generator.
pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    OsRng.fill(&mut bytes[..]);
    bytes
}

/// The TOTP of `secret`, labelled `issuer:account` for authenticator apps.
pub fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<Totp> {
    Builder::new()
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECONDS)
        .with_skew(1)
        .with_issuer(Some(issuer.replace(':', " ")))
        // The label is `issuer:account`; a colon in the account would split it elsewhere.
        .with_account_name(account.replace(':', " "))
        .build()
        .ok()
}

/// What a person typed as a TOTP code, reduced to its digits: spaces and a middle hyphen (as
/// apps show it) are fine; anything else is no code.
pub fn normalize_totp(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The time step whose code `code` is, within one step of `now_secs`.
pub fn matching_step(totp: &Totp, code: &str, now_secs: u64) -> Option<u64> {
    totp.check(code, now_secs)
}

/// The base32 form of a secret, for people who type it into their app.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::new(secret.to_vec().into_boxed_slice()).to_base32()
}

/// Crockford's base32 alphabet: no I, L, O or U, so nothing reads as something else.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters in a recovery code (without the hyphens): 16 × 5 = 80 bits.
const RECOVERY_CHARS: usize = 16;

/// A new recovery code, `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_code() -> String {
    let mut out = String::with_capacity(RECOVERY_CHARS + 3);
    for i in 0..RECOVERY_CHARS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char);
    }
    out
}

/// A recovery code as typed, in the one form that is hashed: case and hyphens or spaces do not
/// matter, and letters that look like digits are read as them (Crockford's decoding).
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let mut out = String::with_capacity(RECOVERY_CHARS);
    for c in input.chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == RECOVERY_CHARS).then_some(out)
}

/// The digest a recovery code is stored as (hex SHA-256 of its normalized form).
pub fn recovery_digest(normalized: &str) -> String {
    Sha256::digest(normalized.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_and_the_server_agree_on_codes_and_steps() {
        // RFC 6238, appendix B: the SHA-1 seed "12345678901234567890" at 59 s gives 287082
        // (the 6-digit tail of 94287082).
        let t = totp(b"12345678901234567890", "authauth", "a@example.com").unwrap();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(matching_step(&t, "287082", 59), Some(1));
        // One step of skew either way, not two.
        assert_eq!(matching_step(&t, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(&t, "287082", 59 + 60), None);
        assert_eq!(matching_step(&t, "000000", 59), None);
        let url = t.to_url().unwrap();
        assert!(
            url.starts_with("otpauth://totp/authauth:a%40example.com?"),
            "{url}"
        );
        assert!(url.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{url}");
        assert!(url.contains("issuer=authauth"), "{url}");
    }

    #[test]
    fn a_new_secret_is_160_random_bits_and_reads_as_rfc_4648_base32() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != a[0]), "not one repeated byte");
        assert_eq!(
            secret_base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn typed_codes_are_normalized_or_refused() {
        assert_eq!(normalize_totp(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_totp("123-456").as_deref(), Some("123456"));
        for bad in ["12345", "1234567", "12345a", "１２３４５６", ""] {
            assert_eq!(normalize_totp(bad), None, "{bad}");
        }
    }

    #[test]
    fn recovery_codes_have_80_bits_and_read_back_however_typed() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        let groups: Vec<usize> = code.split('-').map(str::len).collect();
        assert_eq!(groups, [4, 4, 4, 4], "{code}");
        let normalized = normalize_recovery_code(&code).unwrap();
        assert_eq!(normalized.len(), 16);
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase()).as_deref(),
            Some(normalized.as_str())
        );
        assert_eq!(
            normalize_recovery_code("ILO0-aaaa-bbbb-cccc").as_deref(),
            Some("1100aaaabbbbcccc")
        );
        assert_eq!(normalize_recovery_code("uuuu-aaaa-bbbb-cccc"), None);
        assert_eq!(normalize_recovery_code("aaaa-bbbb-cccc"), None);
        assert_eq!(normalize_recovery_code("aaaa-bbbb-cccc-ddddé"), None);
        assert_ne!(new_recovery_code(), new_recovery_code());
        assert_eq!(recovery_digest("x").len(), 64);
    }
}
