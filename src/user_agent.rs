//! "Firefox on Linux": a person-readable name for the browser a session was created from, from
//! its `User-Agent` — the one name the account page ("your devices") and the new-device alert
//! both show. Only for display: nothing decides anything on it (a client sends whatever
//! `User-Agent` it likes).

/// The browser and operating system a `User-Agent` names, as "Browser on OS"; the parts it
/// cannot tell are left out ("Unknown browser" when it can tell neither).
pub fn describe(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
        return "Unknown browser".into();
    };
    match describe_known(Some(ua)) {
        Some(known) => known,
        // Not a browser we know (curl, a script): its product token says what it is.
        None => ua
            .split_whitespace()
            .next()
            .and_then(|product| product.split('/').next())
            .filter(|name| !name.is_empty())
            .map(|name| name.chars().take(40).collect())
            .unwrap_or_else(|| "Unknown browser".into()),
    }
}

/// [`describe`] when it can name the browser or the system — in words from its own tables
/// only, never text from the `User-Agent`: what a message to the account's owner may carry (a
/// stranger chooses the `User-Agent` of the sign-in an alert is about).
pub fn describe_known(user_agent: Option<&str>) -> Option<String> {
    let ua = user_agent?;
    match (browser(ua), os(ua)) {
        (Some(b), Some(o)) => Some(format!("{b} on {o}")),
        (Some(b), None) => Some(b.to_string()),
        (None, Some(o)) => Some(format!("A browser on {o}")),
        (None, None) => None,
    }
}

fn browser(ua: &str) -> Option<&'static str> {
    // Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    BROWSERS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

fn os(ua: &str) -> Option<&'static str> {
    // Order matters: Android says "Linux", iOS says "like Mac OS X".
    const SYSTEMS: &[(&str, &str)] = &[
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers_are_named_with_their_system() {
        for (ua, expected) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            ("curl/8.5.0", "curl"),
            ("authauth-tests/1.0", "authauth-tests"),
        ] {
            assert_eq!(describe(Some(ua)), expected, "{ua}");
        }
        assert_eq!(describe(None), "Unknown browser");
        assert_eq!(describe(Some("  ")), "Unknown browser");
    }

    #[test]
    fn the_known_description_never_repeats_the_user_agent() {
        use super::describe_known;
        assert_eq!(
            describe_known(Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            ))
            .as_deref(),
            Some("Firefox on Linux")
        );
        for ua in ["curl/8.5.0", "Call-0800-555-now/1.0", ""] {
            assert_eq!(describe_known(Some(ua)), None, "{ua}");
        }
        assert_eq!(describe_known(None), None);
    }
}
