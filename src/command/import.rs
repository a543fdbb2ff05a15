//! `envoke import FILE --to DEST`: the way off a `.env` file. The file's secrets go to one place
//! in Secrets Manager or Vault, and a manifest that references them takes the file's place.
//!
//! - `--to aws-sm://PREFIX`: one JSON secret named PREFIX, a key per variable
//!   (`aws-sm://PREFIX#NAME`); with `--split`, a secret per variable (`aws-sm://PREFIX/NAME`).
//! - `--to vault://MOUNT/PATH`: one KV secret, a key per variable (`vault://MOUNT/PATH#NAME`).
//!
//! Values that are clearly not secret stay literals in the manifest, each with the reason: an
//! empty value, a port, a setting word (`info`, `true`, `production`), a URL without credentials.
//! Without `--write` nothing is stored and no secret value is printed: the manifest shows
//! references and those literals only. The `.env` file is never changed.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::cli::ImportArgs;
use crate::config::{Config, Flags, Purpose};
use crate::dotenv;
use crate::error::{Error, Exit};
use crate::provider::FetchError;
use crate::provider::aws::AwsProvider;
use crate::provider::vault::VaultProvider;
use crate::reference::Reference;
use crate::sanitize::escaped;
use crate::secret::SecretValue;
use crate::untrusted_file;

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

/// The largest `.env` file envoke reads.
const DOTENV_CAP: u64 = 4 * 1024 * 1024;

/// `envoke import`: reads the `.env` file, prints the manifest (and with `--write` stores the
/// values and writes it).
pub async fn import(args: ImportArgs) -> Result<Exit, Error> {
    let source = args.file.display().to_string();
    let text = read_dotenv(&args.file)?;
    let variables = dotenv::parse(&text, dotenv::Expand::Variables)
        .map(|parsed| parsed.variables)
        .map_err(|e| ImportError::ReadFile {
            path: escaped(&source),
            why: e.to_string(),
        })?;
    drop(text);
    let Some(to) = &args.to else {
        return Err(ImportError::NoDestination.into());
    };
    let destination = Destination::parse(to, args.split)?;
    let plan = Plan::new(variables, destination.clone());
    for (name, _, why) in &plan.literals {
        eprintln!("envoke: kept {name} as a literal: {why}");
    }
    let manifest = plan.manifest(&source);
    if !args.write {
        print!("{manifest}");
        eprintln!(
            "envoke: nothing was stored; with --write, the {} secret values go to {destination} \
             and this manifest to {}",
            plan.secrets.len(),
            args.output.display()
        );
        return Ok(Exit::Success);
    }
    if args.output.symlink_metadata().is_ok() && !args.force {
        return Err(ImportError::ManifestExists(args.output).into());
    }
    let purpose = Purpose::Import {
        to_vault: matches!(destination, Destination::Vault { .. }),
    };
    let config = super::load_config(&Flags::default(), purpose)?;
    plan.store(&config).await?;
    std::fs::write(&args.output, &manifest).map_err(|source| ImportError::WriteManifest {
        path: args.output.clone(),
        source,
    })?;
    eprintln!(
        "envoke: stored {} secret values at {destination} and wrote {}\n\
         next: check with `envoke check -m {}`, then delete {} (envoke never changes it) and add \
         it to .gitignore",
        plan.secrets.len(),
        args.output.display(),
        args.output.display(),
        escaped(&source),
    );
    Ok(Exit::Success)
}

/// A `.env` file: a regular file of at most [`DOTENV_CAP`] bytes, read into zeroizing memory.
fn read_dotenv(path: &Path) -> Result<Zeroizing<String>, ImportError> {
    let fail = |why: String| ImportError::ReadFile {
        path: path.display().to_string(),
        why,
    };
    let bytes = untrusted_file::read(path, DOTENV_CAP).map_err(|error| match error {
        untrusted_file::ReadError::NotRegular(kind) => {
            fail(format!("not a regular file but {kind}"))
        }
        untrusted_file::ReadError::TooLarge(_) => fail("larger than 4 MiB".to_owned()),
        untrusted_file::ReadError::Io(error) => fail(error.to_string()),
    })?;
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| fail("not UTF-8 text".to_owned()))
}

/// Why an import cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The `.env` file cannot be read or parsed.
    #[error("cannot read {path}: {why}")]
    ReadFile {
        /// The `.env` file as given on the command line.
        path: String,
        /// What is wrong: not a regular file, too large, not UTF-8, a line that does not parse.
        why: String,
    },
    /// No `--to`: envoke does not guess where secrets should live.
    #[error("say where the secrets go: --to aws-sm://PREFIX or --to vault://MOUNT/PATH")]
    NoDestination,
    /// `--write` would replace an existing manifest.
    #[error(
        "{} exists; envoke does not overwrite it without --force (or choose another with -o)",
        .0.display()
    )]
    ManifestExists(PathBuf),
    /// The secrets are stored, but the manifest that references them could not be written.
    #[error("stored the secrets, but cannot write {}: {source}", .path.display())]
    WriteManifest {
        /// `-o MANIFEST` (`envoke.toml` by default).
        path: PathBuf,
        /// Why writing failed.
        source: std::io::Error,
    },
    /// `--to` is not an `aws-sm://` or `vault://` reference without a key, version or region;
    /// the text escaped.
    #[error(
        "`--to {0}` is not a destination: give --to aws-sm://PREFIX or --to vault://MOUNT/PATH \
         (no ?query, no #key)"
    )]
    BadDestination(String),
    /// `--split` with a Vault destination, whose one KV secret already has a key per variable.
    #[error("--split goes with --to aws-sm:// only")]
    SplitForVault,
    /// Connecting to the destination or writing a secret there failed.
    #[error("cannot store the secrets at {destination}: {source}")]
    Store {
        /// The destination as `--to` gave it (`/*` added with `--split`).
        destination: String,
        /// The provider's error: credentials, permissions, the network.
        source: FetchError,
    },
}

impl Destination {
    /// Reads `--to` (with `--split`): a bare `aws-sm://PREFIX` or `vault://MOUNT/PATH`; a key,
    /// a version or a region has no meaning for where secrets are written.
    pub fn parse(text: &str, split: bool) -> Result<Destination, ImportError> {
        let bad = || ImportError::BadDestination(escaped(text));
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
    pub fn new(variables: Vec<(String, SecretString)>, destination: Destination) -> Plan {
        let mut secrets = Vec::new();
        let mut literals = Vec::new();
        for (name, value) in variables {
            match not_secret(&name, value.expose_secret()) {
                Some(why) => literals.push((name, value, why)),
                None => secrets.push((name, value)),
            }
        }
        Plan {
            destination,
            secrets,
            literals,
        }
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
                "{name:<width$} = \"{}\"\n",
                self.destination.reference(name)
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

    /// Stores the secrets at the destination: one JSON document (AWS) or KV secret (Vault), or
    /// one secret per variable with `--split`. A Vault login made for it is revoked after.
    pub async fn store(&self, config: &Config) -> Result<(), ImportError> {
        let failed = |source| ImportError::Store {
            destination: self.destination.to_string(),
            source,
        };
        match &self.destination {
            Destination::Aws { prefix, split } => {
                let aws = AwsProvider::connect(&config.aws, &config.inherited)
                    .await
                    .map_err(failed)?;
                if !split {
                    return aws.store(prefix, &self.document()).await.map_err(failed);
                }
                for (name, value) in &self.secrets {
                    let value = SecretValue::new(value.expose_secret().to_owned());
                    aws.store(&format!("{prefix}/{name}"), &value)
                        .await
                        .map_err(failed)?;
                }
                Ok(())
            }
            Destination::Vault { path } => {
                let settings = config.vault.as_ref().ok_or_else(|| {
                    failed(FetchError::Other("Vault is not configured".to_owned()))
                })?;
                let vault = VaultProvider::connect(settings).await.map_err(failed)?;
                let stored = vault.store(path, &self.document()).await.map_err(failed);
                vault.logout().await;
                stored
            }
        }
    }

    /// The secrets as one JSON object, a key per variable.
    fn document(&self) -> SecretValue {
        let mut object = serde_json::Map::new();
        for (name, value) in &self.secrets {
            object.insert(
                name.clone(),
                serde_json::Value::String(value.expose_secret().to_owned()),
            );
        }
        let mut object = serde_json::Value::Object(object);
        let text = object.to_string();
        crate::secret::zeroize_json(&mut object);
        SecretValue::new(text)
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
];

/// Why a value is clearly not a secret, when it is.
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
    if is_url_without_credentials(value) {
        return Some("a URL with no credentials in it");
    }
    None
}

/// Whether `value` is a URL with no userinfo and no credential-like query parameter.
fn is_url_without_credentials(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    // Any `@` may end a userinfo (a password may hold `/`); a query may carry a key.
    let credential_words = [
        "key",
        "token",
        "secret",
        "password",
        "sig",
        "auth",
        "credential",
    ];
    let query = rest.split_once('?').map(|(_, q)| q.to_ascii_lowercase());
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.contains('@')
        && !query.is_some_and(|q| credential_words.iter().any(|w| q.contains(w)))
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
        assert_eq!(
            not_secret("API_URL", "https://api.example.com/v1"),
            Some("a URL with no credentials in it")
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
    }

    #[test]
    fn literals_are_valid_toml_strings() {
        let text = format!("A = {}\n", toml_string("a \"quoted\"\\ \n\u{1}"));
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["A"].as_str(), Some("a \"quoted\"\\ \n\u{1}"));
    }
}
