//! The plan of an import: where the secrets go ([`Destination`]), which variables are secrets
//! and which stay literals, and the manifest that references them. No I/O.

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::ImportError;
use crate::reference::Reference;
use crate::sanitize::escaped;

/// Where the secrets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One JSON secret, or one secret per variable under the prefix.
    Aws {
        /// The secret's name from `--to aws-sm://PREFIX`; with `split`, each secret's name
        /// begins with it and `/`.
        prefix: String,
        /// `--split`: a secret per variable (PREFIX/NAME) instead of one JSON secret.
        split: bool,
    },
    /// One KV secret.
    Vault {
        /// `MOUNT/PATH` from `--to vault://MOUNT/PATH`, as a `vault://` reference holds it.
        path: String,
    },
}

impl Destination {
    /// Reads `--to` (with `--split`): a bare `aws-sm://PREFIX` or `vault://MOUNT/PATH`; a key,
    /// a version or a region has no meaning for where secrets are written.
    pub fn parse(text: &str, split: bool) -> Result<Destination, ImportError> {
        let bad = || ImportError::BadDestination(escaped(text));
        // What a secret name or a KV path is made of: the manifest quotes it, policies and
        // references read it, and `..` or `%2e` would make it name another path.
        let name = text.split_once("://").map_or("", |(_, name)| name);
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
        if !name.chars().all(allowed)
            || name
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(bad());
        }
        match Reference::parse(text).map_err(|_| bad())? {
            Reference::Aws(r) if r.key.is_none() && r.region.is_none() && r.to_string() == text => {
                Ok(Destination::Aws {
                    prefix: r.secret_id,
                    split,
                })
            }
            Reference::Vault(_) if split => Err(ImportError::SplitForVault),
            Reference::Vault(r) if r.key.is_none() && r.version.is_none() => {
                Ok(Destination::Vault { path: r.path })
            }
            _ => Err(bad()),
        }
    }

    /// The reference to variable `name` once stored.
    fn reference(&self, name: &str) -> String {
        match self {
            Destination::Aws {
                prefix,
                split: true,
            } => format!("aws-sm://{prefix}/{name}"),
            Destination::Aws { prefix, .. } => format!("aws-sm://{prefix}#{name}"),
            Destination::Vault { path } => format!("vault://{path}#{name}"),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Aws { prefix, split } => {
                write!(f, "aws-sm://{prefix}{}", if *split { "/*" } else { "" })
            }
            Destination::Vault { path } => write!(f, "vault://{path}"),
        }
    }
}

/// What an import does with each variable of the `.env` file.
pub struct Plan {
    /// Where the secrets go, and so what the manifest's references name.
    pub destination: Destination,
    /// Variables whose values go to the destination.
    pub secrets: Vec<(String, SecretString)>,
    /// Variables kept as literals, with why.
    pub literals: Vec<(String, SecretString, &'static str)>,
}

impl Plan {
    /// Sorts the `.env` file's variables, in their order, into secrets and literals that are
    /// clearly not secret.
    ///
    /// `--literal NAME` keeps a variable literal and `--secret NAME` stores it, whatever it
    /// looks like (`--secret` wins when both name it); each must name a variable of the file.
    pub fn new(
        variables: Vec<(String, SecretString)>,
        destination: Destination,
        literal: &[String],
        secret: &[String],
    ) -> Result<Plan, ImportError> {
        for (flag, names) in [("literal", literal), ("secret", secret)] {
            if let Some(unknown) = names
                .iter()
                .find(|n| !variables.iter().any(|(v, _)| v == *n))
            {
                return Err(ImportError::UnknownOverride {
                    flag,
                    name: escaped(unknown),
                });
            }
        }
        let mut secrets = Vec::new();
        let mut literals = Vec::new();
        for (name, value) in variables {
            let why = if secret.contains(&name) {
                None
            } else if literal.contains(&name) {
                Some("--literal")
            } else {
                not_secret(&name, value.expose_secret())
            };
            match why {
                Some(why) => literals.push((name, value, why)),
                None => secrets.push((name, value)),
            }
        }
        Ok(Plan {
            destination,
            secrets,
            literals,
        })
    }

    /// The manifest that takes the `.env` file's place. Holds no secret value.
    pub fn manifest(&self, source: &str) -> String {
        let mut out = format!(
            "# Imported from {} by `envoke import`; the secrets are in {}.\n[env]\n",
            escaped(source),
            self.destination
        );
        let width = self
            .secrets
            .iter()
            .map(|(n, _)| n.len())
            .chain(self.literals.iter().map(|(n, _, _)| n.len()))
            .max()
            .unwrap_or(0);
        for (name, _) in &self.secrets {
            out.push_str(&format!(
                "{name:<width$} = {}\n",
                toml_string(&self.destination.reference(name))
            ));
        }
        for (name, value, why) in &self.literals {
            let text = toml_string(value.expose_secret());
            // A literal with a scheme:// would be read as a reference.
            let entry = if Reference::looks_like_reference(value.expose_secret()) {
                format!("{{ value = {text} }}")
            } else {
                text
            };
            out.push_str(&format!(
                "{name:<width$} = {entry}   # kept as a literal: {why}\n"
            ));
        }
        out
    }
}

/// Values that set a mode or a level, never a secret.
const SETTING_WORDS: &[&str] = &[
    "debug",
    "info",
    "warn",
    "warning",
    "error",
    "trace",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "development",
    "production",
    "staging",
    "test",
    "local",
];
/// Parts of a name that say "secret": such a name wins over any look of the value
/// (ADMIN_PASSWORD=test).
const SECRET_NAMES: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASS",
    "PWD",
    "WEBHOOK",
    "DSN",
    "AUTH",
    "CREDENTIAL",
    "SIGNATURE",
    "PRIVATE",
    "CERT",
    "PIN",
    "SALT",
    "SEED",
];

/// Why a value is provably not a secret, when it is: empty, a port, a setting word or boolean,
/// a short number, a host name, or a URL that is only a scheme and a host (a path, a query or
/// userinfo can carry a token: `https://hooks.example.com/services/T000/B000/XXXX`). A name that
/// says "secret" wins over any look of the value.
fn not_secret(name: &str, value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("empty");
    }
    let upper_name = name.to_ascii_uppercase();
    if SECRET_NAMES.iter().any(|word| upper_name.contains(word)) {
        return None;
    }
    if upper_name.ends_with("PORT") && value.parse::<u16>().is_ok_and(|port| port > 0) {
        return Some("a port number");
    }
    if SETTING_WORDS.contains(&value.to_ascii_lowercase().as_str()) {
        return Some("a setting word");
    }
    if is_short_number(value) {
        return Some("a number");
    }
    let named_host = upper_name.ends_with("HOST") || upper_name.ends_with("HOSTNAME");
    if is_host_name(value, named_host) {
        return Some("a host name");
    }
    if is_bare_url(value) {
        return Some("a URL with no path, query or credentials");
    }
    None
}

/// A number of at most 10 characters (`30`, `0.5`, `-1`): a timeout, a size, a ratio. Longer
/// digit strings may be account or card numbers.
fn is_short_number(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    value.len() <= 10
        && digits.split('.').count() <= 2
        && digits
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// A host name in lower case: dot-separated labels of letters, digits and `-`, the last one
/// letters only (`db.internal`, `api.example.com`). A single label (`db`, `redis`) only when the
/// variable's name says it is a host.
fn is_host_name(value: &str, named_host: bool) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
    };
    let last = labels.last().copied().unwrap_or_default();
    labels.iter().all(|label| label_ok(label))
        && (if labels.len() == 1 {
            named_host || value == "localhost"
        } else {
            last.bytes().all(|b| b.is_ascii_lowercase())
        })
}

/// A URL that is only a scheme and a host, with a port and a closing `/` at most.
fn is_bare_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && is_host_name(&host.to_ascii_lowercase(), true)
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = Zeroizing::new(String::from("\""));
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearly_not_secret_values_stay_literals() {
        assert_eq!(not_secret("DB_PORT", "5432"), Some("a port number"));
        assert_eq!(not_secret("LOG_LEVEL", "INFO"), Some("a setting word"));
        assert_eq!(not_secret("X", ""), Some("empty"));
        assert_eq!(not_secret("API_URL", "https://api.example.com/v1"), None);
        assert_eq!(
            not_secret("API_URL", "https://api.example.com:8443/"),
            Some("a URL with no path, query or credentials")
        );
        assert_eq!(not_secret("DB_HOST", "db"), Some("a host name"));
        assert_eq!(
            not_secret("UPSTREAM", "api.example.com"),
            Some("a host name")
        );
        assert_eq!(not_secret("UPSTREAM", "hunter2"), None);
        assert_eq!(not_secret("TIMEOUT", "30"), Some("a number"));
        assert_eq!(not_secret("RATIO", "0.5"), Some("a number"));
        assert_eq!(not_secret("ACCOUNT", "12345678901234"), None);
        assert_eq!(
            not_secret("SESSION", "eyJhbGciOi.eyJzdWIi.SflKxwRJSM"),
            None
        );
        assert_eq!(not_secret("DATABASE_URL", "postgres://app:pw@db/app"), None);
        assert_eq!(
            not_secret("HOOK", "https://x.example.com/h?token=abc"),
            None
        );
        assert_eq!(not_secret("PIN", "1234"), None);
        assert_eq!(not_secret("OPENAI_API_KEY", "sk-abc"), None);
        assert_eq!(not_secret("DATABASE_URL", "postgres://app:pa/ss@db"), None);
        assert_eq!(not_secret("ADMIN_PASSWORD", "test"), None);
        assert_eq!(
            not_secret(
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T1/B2/XXXX"
            ),
            None
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(
            Destination::parse("aws-sm://prod/app", false).unwrap(),
            Destination::Aws {
                prefix: "prod/app".into(),
                split: false
            }
        );
        assert_eq!(
            Destination::parse("vault://secret/app", false).unwrap(),
            Destination::Vault {
                path: "secret/app".into()
            }
        );
        assert!(Destination::parse("vault://secret/app#k", false).is_err());
        assert!(Destination::parse("vault://secret/app", true).is_err());
        assert!(Destination::parse("s3://bucket", false).is_err());
        for bad in [
            "vault://secret/a\"b",
            "vault://secret/a/../b",
            "vault://secret/app/%2e%2e/other",
            "aws-sm://app/\nprod",
            "aws-sm://app//prod",
        ] {
            assert!(Destination::parse(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn literals_are_valid_toml_strings() {
        let text = format!("A = {}\n", toml_string("a \"quoted\"\\ \n\u{1}"));
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["A"].as_str(), Some("a \"quoted\"\\ \n\u{1}"));
    }
}
