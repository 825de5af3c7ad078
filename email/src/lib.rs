//! The identity of an e-mail address: the one place where authauth decides which spellings are
//! the same address and which are not addresses at all.
//!
//! It lives in its own crate so that the server and the migration that backfilled
//! `users.email_canonical` compute exactly the same thing (the migration crate cannot depend on
//! the server's).
//!
//! # The rule
//!
//! An address is `local@domain`, trimmed of surrounding white space, with exactly one `@`.
//!
//! - **Nowhere** a control character, a format character (zero-width spaces and joiners, bidi
//!   overrides and marks, the BOM, the soft hyphen), white space, a line or paragraph separator,
//!   a private-use, surrogate or unassigned code point, a Hangul filler. They are invisible or
//!   reorder text, so two addresses that look the same could differ; no mail system needs them.
//! - **The domain** is processed by IDNA (UTS #46, non-transitional, STD3 rules, DNS lengths):
//!   labels of letters, digits and inner hyphens, none empty, at least two labels, the last one
//!   not all digits (no IP addresses, no address literals). Its identity is the ASCII form
//!   (`xn--…`); it is shown in its Unicode form. Every spelling IDNA maps to the same ASCII name
//!   (`BÜCHER.example`, `xn--bcher-kva.example`, full-width letters) is the same domain, because
//!   it is the same domain in DNS.
//! - **The local part** may hold ASCII letters and digits, the RFC 5322 `atext` symbols
//!   ``!#$%&'*+-/=?^_`{|}~``, and letters and decimal digits of any script; dots only between
//!   other characters, never two in a row; no quoted strings or comments; at most 64 octets.
//!   It must already be in Unicode NFKC form, and its identity is its lowercase (Unicode default
//!   case conversion), which must again be NFKC and hold only allowed characters.
//!
//! Why refuse instead of fold: what a local part means is up to the receiving mail server, and
//! no server treats `K` (U+212A KELVIN SIGN), `ｋ` (full-width) or `k` as one mailbox because
//! Unicode says they are "compatible". If authauth folded them, a provider vouching for
//! `\u{212A}im@example.com` would be vouching for a mailbox the owner of `kim@example.com` may
//! not control — and linking would hand that account over. So a local part that any normalisation
//! would change is refused, and so is one whose lowercase is not a plain string of letters
//! (`İ` lowercases to `i` + U+0307 COMBINING DOT ABOVE, which `lower()` in PostgreSQL turns into
//! `i`). The only folding left is letter case, which authauth has always ignored and which
//! every mail provider in practice ignores too.
//!
//! Known limits: scripts that need combining marks (vowel signs in Devanagari, say) cannot be
//! used in local parts; letters from different scripts that merely look alike (Latin `a`,
//! Cyrillic `а`) are different addresses, as they are to mail servers.

use std::fmt;

use unicode_normalization::is_nfkc;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_OCTETS: usize = 64;
/// RFC 5321 §4.5.3.1.3 (a path of 256 octets, less the angle brackets).
pub const MAX_ADDRESS_OCTETS: usize = 254;

/// An e-mail address that passed [`EmailAddress::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    display: String,
    canonical: String,
}

/// Why a string is not an address authauth accepts. The messages name characters by code point
/// and never repeat the input, which may hold characters a terminal would act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidEmail {
    Empty,
    TooLong,
    /// A control, format, white-space, separator, private-use or unassigned code point.
    Invisible(char),
    NotOneAt,
    LocalEmpty,
    LocalTooLong,
    LocalDots,
    LocalCharacter(char),
    /// The local part changes under NFKC (compatibility characters, decomposed letters).
    LocalNotNormalized,
    /// Lowercasing the local part gives something that is not plain letters (`İ`).
    LocalCaseAmbiguous,
    Domain,
    DomainNotQualified,
}

impl fmt::Display for InvalidEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InvalidEmail::*;
        match self {
            Empty => f.write_str("the e-mail address is empty"),
            TooLong => write!(f, "the e-mail address is longer than {MAX_ADDRESS_OCTETS} octets"),
            Invisible(c) => write!(
                f,
                "the e-mail address contains U+{:04X}, an invisible, control or space character",
                u32::from(*c)
            ),
            NotOneAt => f.write_str("an e-mail address has exactly one `@`"),
            LocalEmpty => f.write_str("the e-mail address has nothing before the `@`"),
            LocalTooLong => write!(
                f,
                "the part of the e-mail address before the `@` is longer than {MAX_LOCAL_OCTETS} octets"
            ),
            LocalDots => f.write_str(
                "the part of the e-mail address before the `@` may not start or end with a dot, or hold two dots in a row",
            ),
            LocalCharacter(c) => write!(
                f,
                "the part of the e-mail address before the `@` holds U+{:04X}; it may hold letters, digits, dots and !#$%&'*+-/=?^_`{{|}}~",
                u32::from(*c)
            ),
            LocalNotNormalized => f.write_str(
                "the part of the e-mail address before the `@` holds compatibility characters (such as full-width letters or the Kelvin sign) or decomposed letters; type it with plain letters",
            ),
            LocalCaseAmbiguous => f.write_str(
                "the part of the e-mail address before the `@` holds a letter without a plain lowercase form (such as `İ`)",
            ),
            Domain => f.write_str("the domain of the e-mail address is not a valid domain name"),
            DomainNotQualified => f.write_str(
                "the domain of the e-mail address must be a full domain name such as example.com",
            ),
        }
    }
}

impl std::error::Error for InvalidEmail {}

impl EmailAddress {
    /// Checks `raw` against the rule in the crate documentation; see there.
    pub fn parse(raw: &str) -> Result<EmailAddress, InvalidEmail> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        // Before any Unicode processing, so huge inputs cost nothing. (Any mapping below only
        // shortens or keeps the domain within DNS limits.)
        if email.len() > 4 * MAX_ADDRESS_OCTETS {
            return Err(InvalidEmail::TooLong);
        }
        if let Some(c) = email.chars().find(|&c| is_invisible(c)) {
            return Err(InvalidEmail::Invisible(c));
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidEmail::NotOneAt);
        };
        let folded_local = canonical_local(local)?;
        let (ascii_domain, unicode_domain) = domain_forms(domain)?;
        let canonical = format!("{folded_local}@{ascii_domain}");
        if canonical.len() > MAX_ADDRESS_OCTETS {
            return Err(InvalidEmail::TooLong);
        }
        Ok(EmailAddress {
            display: format!("{local}@{unicode_domain}"),
            canonical,
        })
    }

    /// The address to show and to write to: the local part as typed, the domain in its
    /// (lowercase) Unicode form.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The identity of the address: equal for every spelling of the same address, different
    /// otherwise. What is unique, looked up, throttled and linked.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    pub fn into_parts(self) -> (String, String) {
        (self.display, self.canonical)
    }
}

/// Characters that are invisible, reorder text, or are not characters at all.
fn is_invisible(c: char) -> bool {
    use GeneralCategory::*;
    c.is_control()
        || c.is_whitespace()
        // Hangul fillers: letters by category, blank on screen (default-ignorable).
        || matches!(c, '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}')
        || matches!(
            c.general_category(),
            Control
                | Format
                | SpaceSeparator
                | LineSeparator
                | ParagraphSeparator
                | PrivateUse
                | Surrogate
                | Unassigned
        )
}

fn allowed_in_local(c: char) -> bool {
    use GeneralCategory::*;
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '.' || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        matches!(
            c.general_category(),
            UppercaseLetter
                | LowercaseLetter
                | TitlecaseLetter
                | ModifierLetter
                | OtherLetter
                | DecimalNumber
        )
    }
}

/// The identity of a local part: its lowercase, when that is unambiguous (see the crate docs).
fn canonical_local(local: &str) -> Result<String, InvalidEmail> {
    if local.is_empty() {
        return Err(InvalidEmail::LocalEmpty);
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return Err(InvalidEmail::LocalTooLong);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(InvalidEmail::LocalDots);
    }
    if let Some(c) = local.chars().find(|&c| !allowed_in_local(c)) {
        return Err(InvalidEmail::LocalCharacter(c));
    }
    if !is_nfkc(local) {
        return Err(InvalidEmail::LocalNotNormalized);
    }
    let folded = local.to_lowercase();
    if !folded.chars().all(allowed_in_local) || !is_nfkc(&folded) {
        return Err(InvalidEmail::LocalCaseAmbiguous);
    }
    if folded.len() > MAX_LOCAL_OCTETS {
        return Err(InvalidEmail::LocalTooLong);
    }
    Ok(folded)
}

/// The domain's identity (ASCII, `xn--` labels) and its form for display (Unicode).
fn domain_forms(domain: &str) -> Result<(String, String), InvalidEmail> {
    // STD3 rules (letters, digits, hyphens), no leading or trailing hyphens, no empty labels,
    // no trailing dot, labels ≤ 63 and names ≤ 253 octets.
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| InvalidEmail::Domain)?;
    if ascii.is_empty() {
        return Err(InvalidEmail::Domain);
    }
    match ascii.rsplit_once('.') {
        Some((_, tld)) if !tld.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(InvalidEmail::DomainNotQualified),
    }
    let (unicode, shown) = idna::domain_to_unicode(&ascii);
    let unicode = if shown.is_ok() { unicode } else { ascii.clone() };
    Ok((ascii, unicode))
}

#[cfg(test)]
mod tests;
