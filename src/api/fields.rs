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

use crate::users::EMAIL_MAX_CHARS;

/// The shortest e-mail address worth looking at: `a@b`.
pub const EMAIL_MIN_CHARS: usize = 3;

/// The example address the spec shows.
pub const EMAIL_EXAMPLE: &str = "ada@example.com";

/// An e-mail address as a request carries it: `format: email`, 3 to 254 characters. Whether it is
/// an address the server accepts is the server's e-mail rule (`users::parse_email`): at signup
/// a refusal is 400 `invalid_email`; at sign-in an address no account has is simply
/// `invalid_credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailInput(pub String);

impl EmailInput {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Type for EmailInput {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_email".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(EMAIL_MIN_CHARS),
            max_length: Some(EMAIL_MAX_CHARS),
            example: Some(Value::String(EMAIL_EXAMPLE.into())),
            ..MetaSchema::new_with_format("string", "email")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for EmailInput {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => {
                // Characters, as JSON Schema counts `minLength` and `maxLength`.
                let n = s.chars().count();
                if !(EMAIL_MIN_CHARS..=EMAIL_MAX_CHARS).contains(&n) {
                    return Err(ParseError::custom(format!(
                        "an e-mail address has {EMAIL_MIN_CHARS} to {EMAIL_MAX_CHARS} characters, not {n}"
                    )));
                }
                Ok(EmailInput(s))
            }
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for EmailInput {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// What a full name may be, as a JSON Schema (ECMA-262) pattern the server checks with the same
/// meaning: at least one character that is neither white space nor a control character, and no
/// control character anywhere (`users::normalize_name`, which trims surrounding spaces). The
/// classes are spelled out because `\s` means different things to different regex engines.
///
/// `#[oai(validator(pattern))]` only takes a literal, so `auth::SignupRequest` repeats this
/// string; a test holds the two together.
pub const FULL_NAME_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::normalize_name;

    #[test]
    fn the_full_name_pattern_accepts_what_the_name_rule_does() {
        let pattern = regex::Regex::new(FULL_NAME_PATTERN).unwrap();
        for name in [
            "Ada",
            "  Ada Lovelace  ",
            "李小龍",
            "Zoë d\u{2019}Arc",
            "a\u{00A0}b",
            "x",
            "\u{FEFF}",
            "🙂",
        ] {
            assert!(pattern.is_match(name), "{name:?}");
            assert!(normalize_name(name).is_ok(), "{name:?}");
        }
        for name in [
            "",
            " ",
            "\u{3000}\u{2003}\u{00A0}",
            "Ada\u{7}",
            "Ada\nLovelace",
            "\u{85}",
            "\u{9F}Ada",
        ] {
            assert!(!pattern.is_match(name), "{name:?}");
            assert!(normalize_name(name).is_err(), "{name:?}");
        }
        // White space that is also a control character is trimmed by the rule but refused by
        // the pattern: the API is the stricter of the two, never the looser.
        assert!(!pattern.is_match("\tAda"));
        assert!(normalize_name("\tAda").is_ok());
    }
}
