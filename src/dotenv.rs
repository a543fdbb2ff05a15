//! The `.env` format, as dotenv libraries read it: `NAME=value` lines, `export NAME=value`,
//! `# comments`, unquoted values (a ` #` starts a comment), single quotes (taken as they are),
//! double quotes (with `\n`, `\t`, `\"`, `\\` escapes, and newlines inside), empty values.
//!
//! No I/O; values come out as secrets: a `.env` file is full of them.

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::manifest::is_variable_name;

/// Why a `.env` file cannot be read. Names the line, never shows a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct DotenvError {
    /// The line the problem is on, counted from 1 as editors count.
    pub line: usize,
    /// What is wrong; fixed text, so it can never carry a value from the file.
    pub reason: &'static str,
}

/// The variables of a `.env` file, in order; a name given twice keeps its last value.
pub fn parse(text: &str) -> Result<Vec<(String, SecretString)>, DotenvError> {
    let mut variables: Vec<(String, SecretString)> = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let line_number = index + 1;
        let error = |reason| DotenvError {
            line: line_number,
            reason,
        };
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let (name, rest) = trimmed
            .split_once('=')
            .ok_or(error("no `=`: expected NAME=value"))?;
        let name = name.trim_end();
        if !is_variable_name(name) {
            return Err(error(
                "the name is not a variable name (letters, digits and `_`)",
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let mut body = Zeroizing::new(String::from(&rest[1..]));
                // A quoted value may go on over the following lines until its closing quote.
                // Each line is scanned once: a line break ends any escape, so the scan of a new
                // line starts afresh at its line break.
                let mut scanned = 0;
                loop {
                    if let Some(end) = closing_quote(&body[scanned..], quote).map(|e| e + scanned) {
                        if !trailing_is_comment(&body[end + 1..]) {
                            return Err(error("text after the closing quote"));
                        }
                        body.truncate(end);
                        break;
                    }
                    let (_, next) = lines.next().ok_or(error("a quote that is never closed"))?;
                    scanned = body.len();
                    body.push('\n');
                    body.push_str(next);
                }
                if quote == '"' { unescape(&body) } else { body }
            }
            _ => {
                let value = match rest.find(" #") {
                    Some(comment) => &rest[..comment],
                    None => rest,
                };
                Zeroizing::new(value.trim_end().to_owned())
            }
        };
        variables.retain(|(existing, _)| existing != name);
        variables.push((
            name.to_owned(),
            SecretString::from(value.as_str().to_owned()),
        ));
    }
    Ok(variables)
}

/// The byte offset of the quote that closes `body`, skipping `\"` inside double quotes.
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (offset, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(offset),
            _ => escaped = false,
        }
    }
    None
}

fn trailing_is_comment(rest: &str) -> bool {
    let rest = rest.trim_start();
    rest.is_empty() || rest.starts_with('#')
}

fn unescape(body: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(body.len()));
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other @ ('"' | '\\' | '$')) => out.push(other),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.expose_secret().to_owned()))
            .collect()
    }

    #[test]
    fn every_form_dotenv_libraries_read() {
        let text = r#"
# a comment
export DB_PASSWORD=s3cr3t
PLAIN = spaced value   # trailing comment
EMPTY=
SINGLE='no $escapes \n here'
DOUBLE="line one\nline \"two\""
MULTI="first
second"
HASH=abc#def
REPEATED=1
REPEATED=2
"#;
        assert_eq!(
            values(text),
            [
                ("DB_PASSWORD", "s3cr3t"),
                ("PLAIN", "spaced value"),
                ("EMPTY", ""),
                ("SINGLE", "no $escapes \\n here"),
                ("DOUBLE", "line one\nline \"two\""),
                ("MULTI", "first\nsecond"),
                ("HASH", "abc#def"),
                ("REPEATED", "2"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn errors_name_the_line_never_the_value() {
        assert_eq!(parse("A=1\nnot a line\n").unwrap_err().line, 2);
        assert_eq!(
            parse("A=\"never closed\nB=2\n").unwrap_err().reason,
            "a quote that is never closed"
        );
        assert!(parse("1A=x").is_err());
        let error = parse("A=\"sk-live-9\" y").unwrap_err().to_string();
        assert!(!error.contains("sk-live-9"), "{error}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }
    }
}
