//! Request fields whose schema states the limits the server enforces. A value outside them is
//! refused when the request is parsed — 400 `invalid_request`, with a message naming the field —
//! so the spec and the server cannot disagree about it. Rules the schema cannot express (a
//! breached password, an address already taken) keep their own codes.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::users::{EMAIL_MAX_CHARS, NAME_MAX_CHARS};

/// The shortest e-mail address worth looking at: `a@b`.
pub const EMAIL_MIN_CHARS: usize = 3;

/// The example address the spec shows.
pub const EMAIL_EXAMPLE: &str = "ada@example.com";

/// Declares a string field type whose spec schema and whose parsing come from one place: a JSON
/// string (never a number or a boolean turned into one, as poem-openapi's `String` would), which
/// `$check` accepts (else its message), described by `$schema`.
macro_rules! string_field {
    ($(#[$doc:meta])* $name:ident, $type_name:literal, schema: $schema:expr, check: $check:expr $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;

            type RawValueType = Self;

            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $type_name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value.unwrap_or_default() {
                    Value::String(s) => {
                        let check: fn(&str) -> Result<(), String> = $check;
                        check(&s).map_err(ParseError::custom)?;
                        Ok($name(s))
                    }
                    other => Err(ParseError::expected_type(other)),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

/// Characters, as JSON Schema counts `minLength` and `maxLength`.
pub fn check_length(s: &str, what: &str, min: usize, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!("{what} has {min} to {max} characters, not {n}"))
    }
}

string_field!(
    /// An e-mail address as a request carries it: `format: email`, 3 to 254 characters. Whether
    /// it is an address the server accepts is the server's e-mail rule (`users::parse_email`):
    /// at signup a refusal is 400 `invalid_email`; at sign-in an address no account has is simply
    /// `invalid_credentials`.
    EmailInput,
    "string_email",
    schema: MetaSchema {
        min_length: Some(EMAIL_MIN_CHARS),
        max_length: Some(EMAIL_MAX_CHARS),
        example: Some(Value::String(EMAIL_EXAMPLE.into())),
        ..MetaSchema::new_with_format("string", "email")
    },
    check: check_email_input,
);

/// The limits of [`EmailInput`], for input that does not come as JSON (the hosted pages' forms).
pub fn check_email_input(s: &str) -> Result<(), String> {
    check_length(s, "an e-mail address", EMAIL_MIN_CHARS, EMAIL_MAX_CHARS)
}

/// What a full name may be, as a JSON Schema (ECMA-262) pattern: at least one character that is
/// neither white space nor a control character, and no control character anywhere — exactly
/// [`is_full_name`], which a test checks for every character. The classes are spelled out because
/// `\s` means different things to different regex engines: these are Rust's `char::is_control`
/// (Unicode Cc) and `char::is_whitespace` (Unicode White_Space), which `str::trim` uses.
pub const FULL_NAME_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$";

/// True for a name [`FULL_NAME_PATTERN`] matches.
pub fn is_full_name(s: &str) -> bool {
    !s.chars().any(char::is_control) && s.chars().any(|c| !c.is_whitespace())
}

string_field!(
    /// A full name as a request carries it: 1 to 200 characters, not only white space, no control
    /// characters. `users::normalize_name` then drops the spaces around it.
    FullName,
    "string_full_name",
    schema: MetaSchema {
        min_length: Some(1),
        max_length: Some(NAME_MAX_CHARS),
        pattern: Some(FULL_NAME_PATTERN.to_string()),
        example: Some(Value::String("Ada Lovelace".into())),
        ..MetaSchema::new("string")
    },
    check: check_full_name,
);

/// The limits of [`FullName`], for input that does not come as JSON (the hosted pages' forms).
pub fn check_full_name(s: &str) -> Result<(), String> {
    check_length(s, "a full name", 1, NAME_MAX_CHARS)?;
    if is_full_name(s) {
        Ok(())
    } else {
        Err("a full name holds more than white space, and no control characters".into())
    }
}

/// A passkey's name: as a full name, 1 to 64 characters.
pub const PASSKEY_NAME_MAX_CHARS: usize = 64;

string_field!(
    /// What the owner calls a passkey ("YubiKey 5"): 1 to 64 characters, not only spaces, no
    /// control characters.
    PasskeyName,
    "string_passkey_name",
    schema: MetaSchema {
        min_length: Some(1),
        max_length: Some(PASSKEY_NAME_MAX_CHARS),
        pattern: Some(FULL_NAME_PATTERN.to_string()),
        example: Some(Value::String("YubiKey 5".into())),
        ..MetaSchema::new("string")
    },
    check: check_passkey_name,
);

pub fn check_passkey_name(s: &str) -> Result<(), String> {
    check_length(s, "a passkey name", 1, PASSKEY_NAME_MAX_CHARS)?;
    if is_full_name(s) {
        Ok(())
    } else {
        Err("a passkey name holds more than white space, and no control characters".into())
    }
}

/// Six digits, with spaces or hyphens anywhere (as apps show them): what
/// `auth::mfa::codes::normalize_totp` reads.
pub const OTP_CODE_PATTERN: &str = r"^[ -]*([0-9][ -]*){6}$";

string_field!(
    /// A code from an authenticator app: six digits (spaces and hyphens are ignored).
    OtpCode,
    "string_otp_code",
    schema: MetaSchema {
        min_length: Some(6),
        max_length: Some(16),
        pattern: Some(OTP_CODE_PATTERN.to_string()),
        example: Some(Value::String("123456".into())),
        ..MetaSchema::new("string")
    },
    check: check_otp_code,
);

pub fn check_otp_code(s: &str) -> Result<(), String> {
    check_length(s, "a code", 6, 16)?;
    crate::auth::mfa::codes::normalize_totp(s)
        .map(|_| ())
        .ok_or_else(|| "a code is six digits".into())
}

/// Sixteen characters of Crockford's base32 (`I`, `L`, `O` read as digits; no `U`), in any case, with
/// spaces or hyphens anywhere: what `auth::mfa::codes::normalize_recovery_code` reads.
pub const RECOVERY_CODE_PATTERN: &str = r"^[ -]*([0-9A-TV-Za-tv-z][ -]*){16}$";

string_field!(
    /// One of the account's recovery codes, `xxxx-xxxx-xxxx-xxxx`.
    RecoveryCodeInput,
    "string_recovery_code",
    schema: MetaSchema {
        min_length: Some(16),
        max_length: Some(32),
        pattern: Some(RECOVERY_CODE_PATTERN.to_string()),
        example: Some(Value::String("7k2m-9q4r-x8vt-3h6p".into())),
        ..MetaSchema::new("string")
    },
    check: check_recovery_code,
);

pub fn check_recovery_code(s: &str) -> Result<(), String> {
    check_length(s, "a recovery code", 16, 32)?;
    crate::auth::mfa::codes::normalize_recovery_code(s)
        .map(|_| ())
        .ok_or_else(|| "a recovery code is 16 letters and digits, as `xxxx-xxxx-xxxx-xxxx`".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::normalize_name;

    #[test]
    fn the_code_patterns_are_the_code_rules() {
        let otp = regex::Regex::new(OTP_CODE_PATTERN).unwrap();
        let recovery = regex::Regex::new(RECOVERY_CODE_PATTERN).unwrap();
        let alphabet: Vec<char> = (0x20u8..0x7f)
            .map(char::from)
            .chain(['é', '١', '\u{a0}'])
            .collect();
        for a in &alphabet {
            for b in &alphabet {
                for candidate in [
                    format!("12{a}345{b}"),
                    format!("{a}123456{b}"),
                    format!("123{a}456"),
                    format!("abcd-efgh-jkmn-pq{a}{b}"),
                    format!("{a}bcd-efgh-jkmn-pqrs{b}"),
                ] {
                    let n = candidate.chars().count();
                    assert_eq!(
                        otp.is_match(&candidate) && (6..=16).contains(&n),
                        check_otp_code(&candidate).is_ok(),
                        "{candidate:?}"
                    );
                    assert_eq!(
                        recovery.is_match(&candidate) && (16..=32).contains(&n),
                        check_recovery_code(&candidate).is_ok(),
                        "{candidate:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_full_name_pattern_is_the_full_name_rule_for_every_character() {
        let pattern = regex::Regex::new(FULL_NAME_PATTERN).unwrap();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            for name in [c.to_string(), format!("Ada{c} ")] {
                assert_eq!(pattern.is_match(&name), is_full_name(&name), "{:?}", name);
            }
        }
    }

    #[test]
    fn a_full_name_the_api_takes_is_one_the_name_rule_keeps() {
        for name in [
            "Ada",
            "  Ada Lovelace  ",
            "李小龍",
            "\u{FEFF}",
            "🙂",
            &"n".repeat(200),
        ] {
            assert!(is_full_name(name), "{name:?}");
            assert!(normalize_name(name).is_ok(), "{name:?}");
        }
        for name in ["", " ", "\u{3000}\u{2003}\u{00A0}", "Ada\u{7}", "\u{85}"] {
            assert!(!is_full_name(name), "{name:?}");
            assert!(normalize_name(name).is_err(), "{name:?}");
        }
        // White space that is also a control character is trimmed by the rule but refused by
        // the API: the API is the stricter of the two, never the looser.
        assert!(!is_full_name("\tAda"));
        assert!(normalize_name("\tAda").is_ok());
    }

    #[test]
    fn a_number_or_a_boolean_is_not_a_string() {
        assert!(FullName::parse_from_json(Some(serde_json::json!("Ada"))).is_ok());
        for value in [
            serde_json::json!(false),
            serde_json::json!(42),
            serde_json::Value::Null,
        ] {
            assert!(FullName::parse_from_json(Some(value.clone())).is_err(), "{value}");
            assert!(
                EmailInput::parse_from_json(Some(value.clone())).is_err(),
                "{value}"
            );
        }
    }
}
