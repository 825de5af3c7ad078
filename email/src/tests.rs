use super::*;

/// `(input, Some((display, canonical)))` for an accepted address, `None` for a refused one.
const TABLE: &[(&str, Option<(&str, &str)>)] = &[
    // Trimmed; the domain is lowercased for display; the identity ignores case.
    (
        "  Alice@Example.COM ",
        Some(("Alice@example.com", "alice@example.com")),
    ),
    (
        "alice+tag@example.com",
        Some(("alice+tag@example.com", "alice+tag@example.com")),
    ),
    (
        "o'brien.x_y-z@sub.example.co.uk",
        Some((
            "o'brien.x_y-z@sub.example.co.uk",
            "o'brien.x_y-z@sub.example.co.uk",
        )),
    ),
    (
        "!#$%&'*+-/=?^_`{|}~@example.com",
        Some((
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "!#$%&'*+-/=?^_`{|}~@example.com",
        )),
    ),
    // Letters of any script are letters; their case folds.
    (
        "\u{c9}lodie@example.com",
        Some(("\u{c9}lodie@example.com", "\u{e9}lodie@example.com")),
    ),
    (
        "\u{3a3}\u{39f}\u{3a6}\u{399}\u{391}@example.gr",
        Some((
            "\u{3a3}\u{39f}\u{3a6}\u{399}\u{391}@example.gr",
            "\u{3c3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}@example.gr",
        )),
    ),
    (
        "\u{7528}\u{6237}@example.cn",
        Some(("\u{7528}\u{6237}@example.cn", "\u{7528}\u{6237}@example.cn")),
    ),
    // The domain is one domain however it is spelled: IDNA (UTS #46) to its ASCII form.
    (
        "user@B\u{dc}CHER.example",
        Some(("user@b\u{fc}cher.example", "user@xn--bcher-kva.example")),
    ),
    (
        "user@xn--bcher-kva.example",
        Some(("user@b\u{fc}cher.example", "user@xn--bcher-kva.example")),
    ),
    (
        "user@\u{ff45}xample.com",
        Some(("user@example.com", "user@example.com")),
    ),
    (
        "user@example\u{3002}com",
        Some(("user@example.com", "user@example.com")),
    ),
    // Local parts that fold together only under some rule: refused, never merged.
    ("t\u{130}m@example.com", None),  // İ lowercases to i + U+0307
    ("\u{212a}im@example.com", None), // Kelvin sign (NFKC: K)
    ("\u{ff54}\u{ff49}\u{ff4d}@example.com", None), // full-width
    ("e\u{301}lodie@example.com", None), // a combining mark
    ("\u{fb01}le@example.com", None), // the ligature ﬁ
    ("x\u{b2}@example.com", None),    // superscript two
    // Invisible and control characters, anywhere.
    ("a\u{202e}b@example.com", None),
    ("a\u{200b}b@example.com", None),
    ("a\u{200d}b@example.com", None),
    ("ab@exa\u{200b}mple.com", None),
    ("ab@exam\u{ad}ple.com", None),
    ("\u{feff}ab@example.com", None),
    ("a\u{0}b@example.com", None),
    ("a\u{85}b@example.com", None),
    ("a\u{2028}b@example.com", None),
    ("a\u{115f}b@example.com", None),
    ("a\u{3164}@example.com", None),
    ("a\u{e000}b@example.com", None),
    ("a\u{378}b@example.com", None), // unassigned
    ("a b@example.com", None),
    ("a\u{a0}b@example.com", None),
    // Shapes no mail system accepts.
    ("", None),
    ("   ", None),
    ("alice", None),
    ("alice@", None),
    ("@example.com", None),
    ("a@evil.com@example.com", None),
    ("\"a@b\"@example.com", None),
    ("\"ab\"@example.com", None),
    ("a(comment)@example.com", None),
    ("a,b@example.com", None),
    ("a@a..b", None),
    ("a@example..com", None),
    ("a@.example.com", None),
    ("a@example.com.", None),
    ("a..b@example.com", None),
    (".a@example.com", None),
    ("a.@example.com", None),
    ("alice@localhost", None),
    ("a@[127.0.0.1]", None),
    ("a@127.0.0.1", None),
    ("a@-example.com", None),
    ("a@example-.com", None),
    ("a@exa_mple.com", None),
    ("a@exa mple.com", None),
];

#[test]
fn the_canonical_form_of_each_address_in_the_table() {
    let mut wrong = Vec::new();
    for (input, expected) in TABLE {
        let got = EmailAddress::parse(input)
            .ok()
            .map(|a| (a.display().to_string(), a.canonical().to_string()));
        let expected = expected.map(|(d, c)| (d.to_string(), c.to_string()));
        if got != expected {
            wrong.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn length_limits_are_octets_of_the_canonical_form() {
    let local = |n: usize| format!("{}@example.com", "a".repeat(n));
    assert!(EmailAddress::parse(&local(64)).is_ok());
    assert!(EmailAddress::parse(&local(65)).is_err());
    // 32 two-octet letters are 64 octets; one more is too many.
    assert!(EmailAddress::parse(&format!("{}@example.com", "\u{e9}".repeat(32))).is_ok());
    assert!(EmailAddress::parse(&format!("{}@example.com", "\u{e9}".repeat(33))).is_err());
    let label = "d".repeat(63);
    let domain = |labels: usize| vec![label.as_str(); labels].join(".");
    // 4 × 63 + 3 dots = 255 > 253.
    assert!(EmailAddress::parse(&format!("a@{}", domain(4))).is_err());
    assert!(EmailAddress::parse(&format!("a@{}.com", domain(3))).is_ok());
    assert!(EmailAddress::parse(&format!("a@{}.com", "d".repeat(64))).is_err());
}

#[test]
fn the_canonical_form_is_a_fixed_point() {
    for (input, expected) in TABLE {
        if expected.is_some() {
            let once = EmailAddress::parse(input).unwrap();
            for again in [once.canonical(), once.display()] {
                let twice = EmailAddress::parse(again).unwrap();
                assert_eq!(twice.canonical(), once.canonical(), "{input:?} via {again:?}");
            }
        }
    }
}
