//! Composed values: a variable built from others, so that an application that wants one
//! connection string gets it from the parts a secret holds, without a change to its code.
//!
//! ```toml
//! [env]
//! DB_USER      = "aws-sm://rds!db-1234#username"
//! DB_PASSWORD  = "aws-sm://rds!db-1234#password"
//! DB_HOST      = "db.internal"
//! DATABASE_URL = { template = "postgresql://${DB_USER}:${DB_PASSWORD:url}@${DB_HOST}:5432/app" }
//! ```
//!
//! `${NAME}` is the value of another variable (resolved or literal; a template's own value when
//! it is one); `${NAME:url}` is that value percent-encoded, every byte but RFC 3986's unreserved
//! characters (ASCII letters and digits, `-`, `.`, `_`, `~`, which producers should not
//! encode), so that it is safe in a URL's userinfo, path or query; `$$` is a `$`. The names are
//! checked when the manifest is loaded: an unknown one, or templates that name each other in a
//! circle, is an error then. The composed value is a secret like any other: it is built where the
//! child's environment is built, in zeroizing memory, and built again when a rotation restarts the
//! command.

use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use zeroize::Zeroizing;

/// The largest value a template composes: 1 MiB, far above any connection string, far below
/// what the exec of the command could take anyway.
pub const MAX_COMPOSED: usize = 1024 * 1024;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Variable { name: String, url: bool },
}

/// Why a template cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `${` without its `}`; the byte offset of the `$`.
    #[error("`${{` at byte {0} has no closing `}}`")]
    Unclosed(usize),
    /// What is between `${` and `}` (escaped), not a variable name.
    #[error("`${{{0}}}` does not name a variable (letters, digits and `_`)")]
    BadName(String),
    /// A filter after `:` other than `url` (escaped).
    #[error("unknown filter `:{0}` (the one there is: `:url`)")]
    UnknownFilter(String),
    /// A `$` followed by neither `{` nor `$`; the byte offset of the `$`.
    #[error("a `$` at byte {0} is neither `${{NAME}}` nor `$$` (write `$$` for a `$`)")]
    LoneDollar(usize),
}

impl Template {
    /// Parses a manifest's `template = "..."` into text and `${NAME}` parts; whether the names
    /// exist is checked later, against all the variables.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let position = text.len() - rest.len() + at;
            let after = &rest[at + 1..];
            if let Some(after) = after.strip_prefix('$') {
                literal.push('$');
                rest = after;
            } else if let Some(after) = after.strip_prefix('{') {
                let end = after.find('}').ok_or(TemplateError::Unclosed(position))?;
                let (name, filter) = match after[..end].split_once(':') {
                    Some((name, filter)) => (name, Some(filter)),
                    None => (&after[..end], None),
                };
                if !crate::manifest::is_variable_name(name) {
                    return Err(TemplateError::BadName(crate::sanitize::escaped(
                        &after[..end],
                    )));
                }
                let url = match filter {
                    None => false,
                    Some("url") => true,
                    Some(other) => {
                        return Err(TemplateError::UnknownFilter(crate::sanitize::escaped(
                            other,
                        )));
                    }
                };
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Variable {
                    name: name.to_owned(),
                    url,
                });
                rest = &after[end + 1..];
            } else {
                return Err(TemplateError::LoneDollar(position));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The variables it names, in order (a name may repeat).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The composed value; `None` while a variable it names has no value yet, or when the value
    /// would be larger than [`MAX_COMPOSED`] (templates that double each other grow fast).
    pub fn render<'a>(
        &self,
        value_of: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text.as_bytes()),
                Part::Variable { name, url: false } => out.extend_from_slice(value_of(name)?),
                Part::Variable { name, url: true } => {
                    for piece in percent_encode(value_of(name)?, NOT_UNRESERVED) {
                        out.extend_from_slice(piece.as_bytes());
                    }
                }
            }
            if out.len() > MAX_COMPOSED {
                return None;
            }
        }
        Some(out)
    }
}

/// What `${NAME:url}` encodes: every byte but RFC 3986's unreserved characters (section 2.3:
/// "should not be percent-encoded by URI producers").
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn render(template: &str, values: &[(&str, &str)]) -> String {
        let template = Template::parse(template).unwrap();
        let out = template
            .render(|name| {
                values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_bytes())
            })
            .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn values_are_put_in_and_url_encoded_on_request() {
        assert_eq!(
            render(
                "postgresql://${U}:${P:url}@${H}/app?cost=$$5",
                &[("U", "app"), ("P", "p@ss:w/rd?#&"), ("H", "db")]
            ),
            "postgresql://app:p%40ss%3Aw%2Frd%3F%23%26@db/app?cost=$5"
        );
        assert_eq!(
            render("${P:url}", &[("P", "a-b.c_d~e f/g")]),
            "a-b.c_d~e%20f%2Fg",
            "RFC 3986's unreserved characters stay as they are"
        );
        assert_eq!(render("plain", &[]), "plain");
        assert_eq!(render("${A}${A}", &[("A", "x")]), "xx");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert_eq!(Template::parse("a ${B"), Err(TemplateError::Unclosed(2)));
        assert_eq!(
            Template::parse("${1X}"),
            Err(TemplateError::BadName("1X".into()))
        );
        assert_eq!(
            Template::parse("${X:b64}"),
            Err(TemplateError::UnknownFilter("b64".into()))
        );
        assert_eq!(
            Template::parse("cost $5"),
            Err(TemplateError::LoneDollar(5))
        );
        assert!(Template::parse("${}").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}") {
            let _ = Template::parse(&text);
        }

        #[test]
        fn url_encoding_decodes_back(value in "\\PC{0,40}") {
            let encoded = render("${V:url}", &[("V", &value)]);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)));
            let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
            prop_assert_eq!(decoded, value);
        }
    }
}
