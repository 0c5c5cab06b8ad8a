//! Removing what looks like a credential from text a platform wrote (error
//! messages, details) before it reaches a client or a log: platforms
//! sometimes echo what they were sent, tokens included.

/// What replaces a credential.
pub const REDACTED: &str = "[redacted]";

/// `text` with everything that looks like a credential replaced by
/// [`REDACTED`]:
///
/// - the value after `Bearer` or `Basic`;
/// - the value after a key that names a secret (`access_token=…`,
///   `"client_secret": "…"`, `password: …`, `code=…`);
/// - JWT-like strings (base64 JSON, `eyJ…`) and PEM blocks;
/// - long runs of hexadecimal (32 digits or more) or of base64 mixing letters
///   and digits (24 characters or more), UUIDs excepted.
///
/// It errs on the side of redacting: an over-long identifier in a message
/// costs less than a leaked token.
pub fn scrub(text: &str) -> String {
    let text = without_pem_blocks(text);
    let mut out = String::with_capacity(text.len());
    // Whether the previous word asks for the next one to be redacted.
    let mut redact_next = false;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let separator_len = rest.find(is_word_char).unwrap_or(rest.len());
        let (separator, after) = rest.split_at(separator_len);
        out.push_str(separator);
        // `key: value` and `key = value` hand the value over; anything else
        // between the words (a comma, a sentence) ends the key's reach.
        if !separator
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\''))
        {
            redact_next = false;
        }
        let word_len = after.find(|c| !is_word_char(c)).unwrap_or(after.len());
        let (word, after) = after.split_at(word_len);
        rest = after;
        if word.is_empty() {
            continue;
        }
        let key_assigns = separator_is_assignment(after);
        if let Some((key, _)) = word.split_once('=')
            && (names_secret(key) || is_short_secret_name(key))
        {
            // `access_token=abc` in one word: keep the key.
            out.push_str(key);
            out.push('=');
            out.push_str(REDACTED);
            redact_next = false;
        } else if redact_next || looks_secret(word) {
            out.push_str(REDACTED);
            redact_next = is_auth_scheme(word);
        } else {
            out.push_str(word);
            redact_next = is_auth_scheme(word) || (names_secret(word) && key_assigns);
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.' | '~')
}

/// Whether what follows a word assigns it a value (`: ` or ` = `, quotes allowed).
fn separator_is_assignment(after: &str) -> bool {
    let separator = after
        .find(|c: char| !(c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\'')))
        .map_or(after, |end| &after[..end]);
    separator.contains(':') || separator.contains('=')
}

fn is_auth_scheme(word: &str) -> bool {
    word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic")
}

/// `code=…` (an OAuth code) and `key=…` name secrets when assigned in one
/// word, as in a URL; `error code: 500` does not.
fn is_short_secret_name(key: &str) -> bool {
    matches!(key.to_ascii_lowercase().as_str(), "code" | "key" | "sig")
}

/// Whether a key names a secret: `token`, `client_secret`, `apiKey`, ...
fn names_secret(key: &str) -> bool {
    let key = key
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    const PARTS: [&str; 11] = [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "api_key",
        "private",
        "authorization",
        "credential",
        "signature",
        "cookie",
    ];
    PARTS.iter().any(|part| key.contains(part)) || key == "pwd"
}

fn looks_secret(word: &str) -> bool {
    let word = word.trim_end_matches('.');
    if word.starts_with("eyJ") && word.len() >= 16 {
        // Base64 of a JSON object: a JWT or a credential document.
        return true;
    }
    word.split('.').any(|part| {
        let hex = part.bytes().all(|b| b.is_ascii_hexdigit());
        let mixed = part.bytes().any(|b| b.is_ascii_digit())
            && part.bytes().any(|b| b.is_ascii_alphabetic());
        (hex && part.len() >= 32) || (mixed && part.len() >= 24 && !is_uuid(part))
    })
}

/// `8-4-4-4-12` hexadecimal digits: record ids, not secrets.
fn is_uuid(part: &str) -> bool {
    let groups: Vec<&str> = part.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `-----BEGIN …-----` to the matching `-----END …-----`, or to the end.
fn without_pem_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        let block = &rest[start..];
        rest = match block.find("-----END") {
            Some(end) => {
                let tail = &block[end + "-----END".len()..];
                match tail.find("-----") {
                    Some(close) => &tail[close + "-----".len()..],
                    None => "",
                }
            }
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";

    #[test]
    fn credentials_in_platform_messages_are_redacted() {
        let cases = [
            (
                format!("Invalid token {JWT}"),
                "Invalid token [redacted]".to_string(),
            ),
            (
                "Authorization: Bearer abc.def-ghi".to_string(),
                "Authorization: [redacted] [redacted]".to_string(),
            ),
            (
                "refused access_token=s3cret&state=1&code=xyz".to_string(),
                "refused access_token=[redacted]&state=1&code=[redacted]".to_string(),
            ),
            (
                r#"{"client_secret": "mujrobot", "scope": "SCOPE_APP_BASIC_INFO"}"#.to_string(),
                r#"{"client_secret": "[redacted]", "scope": "SCOPE_APP_BASIC_INFO"}"#.to_string(),
            ),
            (
                "api_token: sandbox-partner-api-token is unknown".to_string(),
                "api_token: [redacted] is unknown".to_string(),
            ),
            (
                "key 0123456789abcdef0123456789abcdef expired".to_string(),
                "key [redacted] expired".to_string(),
            ),
            (
                "secret MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= leaked".to_string(),
                "secret [redacted] leaked".to_string(),
            ),
            (
                "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\nbad"
                    .to_string(),
                "key:\n[redacted]\nbad".to_string(),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(scrub(&text), expected, "{text}");
        }
    }

    #[test]
    fn ordinary_messages_are_left_alone() {
        for text in [
            "Auction not found",
            "destination_account_daily_transfer_limit_exceeded",
            "request.interestMin: The value 'x' is not valid",
            "transfer 8a3f5c1e-2b4d-4e6f-9a1b-3c5d7e9f0a12 has expired.",
            "API calls quota exceeded! maximum admitted 1 per Second.",
            "the token has expired; sign in again",
            "Bondora error code: 429, key: Payload",
            "amount must be at least 100 cents (1.00 USD)",
            "Zonky does not allow this filter: interestRate__gt",
            "Ünïcödé text, with commas: and colons = fine",
        ] {
            assert_eq!(scrub(text), text);
        }
    }
}
