//! Making text from outside safe to show: a manifest, the environment and servers all hand envoke
//! text that ends up in an error, a log line or `envoke check`'s table.
//!
//! - [`one_line`]: a server's message as one line, its control characters escaped, so that it can
//!   neither fake a log line nor colour a terminal.
//! - [`escaped`]: a name or reference with its control characters escaped.
//! - [`redacted`]: a string that was meant as a reference but could not be used, with the parts
//!   of a URL that hold credentials hidden (`postgres://app:****@db/app?sslkey=****`): a
//!   connection string written where a reference was expected must not be printed whole.

use crate::reference::split_parts;

/// Runs of whitespace (newlines, tabs) become one space; any other control character is escaped.
pub fn one_line(text: &str) -> String {
    escaped(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `text` with its control characters escaped (`\u{1b}`, `\n`); everything else as it is.
pub fn escaped(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The mask for what [`redacted`] hides.
const MASK: &str = "****";

/// `text` with the password of a URL's userinfo (or the whole userinfo, when it is one token),
/// and every query value, replaced by `****`; control characters escaped. Text that is not
/// `scheme://...` is returned escaped only. The query of envoke's own schemes is kept: it holds
/// selectors (`version-stage`, `version-id`, `region`, `version`), not credentials.
pub fn redacted(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return escaped(text);
    };
    // The userinfo ends at the last `@`: a password may hold `/`, `?` or `#` (generated ones
    // often do). An `@` further on (in a path) makes more of the text hidden, never less.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (before_query, query, fragment) = split_parts(rest);
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (host, path) = before_query.split_at(authority_end);
    let authority = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, _password)) if !user.contains(['/', '?', '#']) => {
                format!("{user}:{MASK}@{host}")
            }
            _ => format!("{MASK}@{host}"),
        },
        None => host.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query
        && matches!(scheme, "aws-sm" | "vault")
    {
        out.push('?');
        out.push_str(query);
    } else if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _value)) => format!("{name}={MASK}"),
                None => MASK.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    escaped(&out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redacted("postgres://app:PASSWORD@db/app"),
            "postgres://app:****@db/app"
        );
        assert_eq!(
            redacted("https://ghp_TOKEN@github.com/x?token=abc&mode=1#k"),
            "https://****@github.com/x?token=****&mode=****#k"
        );
        assert_eq!(redacted("vault://secret/app#key"), "vault://secret/app#key");
        assert_eq!(
            redacted("aws-sm://prod/db?version-stage=AWSPREVIOUS#password"),
            "aws-sm://prod/db?version-stage=AWSPREVIOUS#password"
        );
        assert_eq!(redacted("vault://app:PW@host/x"), "vault://app:****@host/x");
        assert_eq!(
            redacted("postgres://app:pa/ss?x#y@db/app"),
            "postgres://app:****@db/app"
        );
        assert_eq!(redacted("plain\u{1b}[31m"), "plain\\u{1b}[31m");
        assert_eq!(
            one_line("1 error occurred:\n\t* permission denied\n\n"),
            "1 error occurred: * permission denied"
        );
        assert_eq!(one_line("red \u{1b}[31m text"), "red \\u{1b}[31m text");
    }

    proptest! {
        #[test]
        fn redaction_never_panics(text in "\\PC{0,60}", control in "[\\x00-\\x1f]{0,3}") {
            let out = redacted(&format!("{text}{control}"));
            prop_assert!(!out.chars().any(char::is_control));
            let out = one_line(&format!("{control}{text}"));
            prop_assert!(!out.chars().any(char::is_control));
        }

        #[test]
        fn redaction_never_leaves_a_password(
            scheme in "[a-z][a-z0-9+.-]{0,8}".prop_filter("not envoke's", |s| s != "vault" && s != "aws-sm"),
            user in "[a-z]{0,8}",
            password in "[A-Z0-9!$%^*()_+=/?#:]{8,20}",
            host in "[a-z.]{1,20}(:[0-9]{1,5})?",
            path in "(/[a-z]{0,8}){0,3}",
            query_value in "[A-Z0-9]{8,20}",
        ) {
            let url = format!("{scheme}://{user}:{password}@{host}{path}?sslpassword={query_value}");
            let out = redacted(&url);
            prop_assert!(!out.contains(&password), "{}", out);
            prop_assert!(!out.contains(&query_value), "{}", out);
            // A userinfo of one token (no `:`, which would make what precedes it a user name).
            let token = password.replace(':', "");
            let token_url = format!("{scheme}://{token}@{host}{path}");
            prop_assert!(!redacted(&token_url).contains(&token));
        }
    }
}
