//! Turns command-line flags, the manifest and envoke's own environment into one validated
//! [`Config`]. Every reference is parsed here; nothing downstream parses again.
//!
//! Problems with single variables (a bad reference, an invalid name) are collected, not returned
//! at the first one, so `run` can report them all and `check` can show each as `invalid`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::time::Duration;

use nix::sys::signal::Signal;
use secrecy::SecretString;

use crate::launch::signals::{parse_signal, parse_signal_mapping};
use crate::launch::supervise::StopPolicy;
use crate::watch::{OnChange, WatchOptions};

use crate::manifest::{AwsSection, EnvEntry, LongEntry, Manifest};
use crate::reference::{Reference, ReferenceError};

/// The manifest file looked for in the working directory.
pub const DEFAULT_MANIFEST: &str = "envoke.toml";

/// Everything a launch needs, validated.
#[derive(Debug)]
pub struct Config {
    /// The manifest that was read, if any.
    pub manifest: Option<PathBuf>,
    /// The child's variables, from the manifest and from environment references.
    pub variables: Vec<Variable>,
    /// Variables that could not be accepted; a launch refuses to start while any exist.
    pub problems: Vec<VariableProblem>,
    /// AWS connection settings beyond aws-config's default chain.
    pub aws: AwsSettings,
    /// Vault connection settings.
    pub vault: VaultSettings,
    /// envoke's inherited environment, which the child receives unless a variable overrides it.
    pub inherited: Vec<(OsString, OsString)>,
    /// How the child is stopped.
    pub stop: StopPolicy,
    /// Rotation watching, when on.
    pub watch: Option<WatchOptions>,
    /// Revoke the Vault leases envoke holds when it exits (`--no-revoke` turns this off).
    pub revoke: bool,
}

/// One variable for the child.
#[derive(Debug, Clone)]
pub struct Variable {
    /// The variable name.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
    /// Where the variable was defined.
    pub origin: Origin,
    /// Whether the child gets the path of a private file holding the value instead.
    pub file: bool,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A value written in the manifest.
    Literal(String),
    /// A secret to fetch.
    Reference(Reference),
}

/// Where a variable was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The manifest's `[env]` table.
    Manifest,
    /// envoke's own environment (`NAME=aws-sm://...`).
    Environment,
}

/// A variable that could not be accepted.
#[derive(Debug, Clone)]
pub struct VariableProblem {
    /// The variable name as written.
    pub name: String,
    /// The text that was meant as a reference, when there is one.
    pub reference: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// AWS settings from the manifest's `[aws]`; unset fields fall back to aws-config's chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region override.
    pub region: Option<String>,
    /// Endpoint override.
    pub endpoint: Option<String>,
    /// Profile override.
    pub profile: Option<String>,
}

/// Vault settings, environment first, overridden by the manifest's `[vault]`.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Server address.
    pub address: String,
    /// The token (VAULT_TOKEN, else ~/.vault-token); `Debug` redacts it.
    pub token: Option<SecretString>,
    /// Enterprise namespace.
    pub namespace: Option<String>,
    /// CA certificate file.
    pub ca_cert: Option<String>,
    /// Skip TLS verification.
    pub skip_verify: bool,
}

/// The vault CLI's default address.
pub const DEFAULT_VAULT_ADDR: &str = "https://127.0.0.1:8200";

/// A configuration that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    ReadManifest {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not fit the schema.
    #[error("invalid manifest {path}: {source}")]
    ParseManifest {
        /// The manifest path.
        path: PathBuf,
        /// The parse error, with line and column.
        source: crate::manifest::ManifestError,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid setting `{setting}` in {path}: {reason}")]
    InvalidSetting {
        /// The manifest path.
        path: PathBuf,
        /// The setting, e.g. `[process] stop_timeout`.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// What `config` needs from the command line.
#[derive(Debug, Default)]
pub struct Flags {
    /// `-m FILE` / ENVOKE_MANIFEST.
    pub manifest: Option<PathBuf>,
    /// `--no-env-refs` / ENVOKE_NO_ENV_REFS.
    pub no_env_refs: bool,
    /// `--stop-signal` / ENVOKE_STOP_SIGNAL.
    pub stop_signal: Option<Signal>,
    /// `--stop-timeout` / ENVOKE_STOP_TIMEOUT.
    pub stop_timeout: Option<Duration>,
    /// `--signal-map`.
    pub signal_map: Vec<(Signal, Signal)>,
    /// `--watch` / ENVOKE_WATCH.
    pub watch: Option<Duration>,
    /// `--on-change`.
    pub on_change: Option<OnChange>,
    /// `--settle`.
    pub settle: Option<Duration>,
    /// `--no-revoke`.
    pub no_revoke: bool,
}

impl Config {
    /// Builds the configuration from flags, the working directory's manifest and `environment`
    /// (envoke's own, passed in so tests can drive it).
    pub fn load(
        flags: &Flags,
        environment: Vec<(OsString, OsString)>,
        home: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let manifest_path = match &flags.manifest {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_MANIFEST)).filter(|p| p.is_file()),
        };
        let manifest = match &manifest_path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadManifest {
                        path: path.clone(),
                        source,
                    })?;
                Manifest::parse(&text).map_err(|source| ConfigError::ParseManifest {
                    path: path.clone(),
                    source,
                })?
            }
            None => Manifest::default(),
        };

        let lookup = |name: &str| -> Option<String> {
            environment
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.to_str())
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };

        let mut variables = Vec::new();
        let mut problems = Vec::new();
        for (name, entry) in &manifest.env {
            match manifest_variable(name, entry) {
                Ok(variable) => variables.push(variable),
                Err(problem) => problems.push(problem),
            }
        }
        if !flags.no_env_refs {
            let defined: std::collections::BTreeSet<&str> =
                manifest.env.keys().map(String::as_str).collect();
            for (name, value) in &environment {
                let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                    continue;
                };
                if defined.contains(name) {
                    continue; // the manifest's definition wins
                }
                match Reference::parse_environment_value(value) {
                    None => {}
                    Some(Ok(reference)) => variables.push(Variable {
                        name: name.to_owned(),
                        source: Source::Reference(reference),
                        origin: Origin::Environment,
                        file: false,
                    }),
                    Some(Err(error)) => problems.push(VariableProblem {
                        name: name.to_owned(),
                        reference: Some(value.to_owned()),
                        reason: format!("invalid reference in the environment: {error}"),
                    }),
                }
            }
        }

        let vault_section = &manifest.vault;
        let token = lookup("VAULT_TOKEN")
            .or_else(|| read_token_file(home?))
            .map(SecretString::from);
        let vault = VaultSettings {
            address: vault_section
                .address
                .clone()
                .or_else(|| lookup("VAULT_ADDR"))
                .unwrap_or_else(|| DEFAULT_VAULT_ADDR.to_owned()),
            token,
            namespace: vault_section
                .namespace
                .clone()
                .or_else(|| lookup("VAULT_NAMESPACE")),
            ca_cert: vault_section
                .ca_cert
                .clone()
                .or_else(|| lookup("VAULT_CACERT")),
            skip_verify: vault_section
                .skip_verify
                .unwrap_or_else(|| lookup("VAULT_SKIP_VERIFY").is_some_and(|v| truthy(&v))),
        };
        let stop = stop_policy(flags, &manifest, manifest_path.as_deref())?;
        let watch = watch_options(flags, &manifest, manifest_path.as_deref())?;
        let AwsSection {
            region,
            endpoint,
            profile,
        } = manifest.aws;

        Ok(Config {
            manifest: manifest_path,
            variables,
            problems,
            aws: AwsSettings {
                region,
                endpoint,
                profile,
            },
            vault,
            inherited: environment,
            stop,
            watch,
            revoke: !flags.no_revoke,
        })
    }

    /// The variables that name references, with their references.
    pub fn references(&self) -> impl Iterator<Item = (&Variable, &Reference)> {
        self.variables.iter().filter_map(|v| match &v.source {
            Source::Reference(r) => Some((v, r)),
            Source::Literal(_) => None,
        })
    }

    /// Variables by name, for lookups.
    pub fn by_name(&self) -> BTreeMap<&str, &Variable> {
        self.variables
            .iter()
            .map(|v| (v.name.as_str(), v))
            .collect()
    }
}

/// Flags (and their environment variables) first, then the manifest's `[process]`, then defaults.
/// Builds the errors of one manifest's settings, naming the manifest.
struct SettingErrors<'a> {
    path: Option<&'a Path>,
}

impl SettingErrors<'_> {
    fn invalid(&self, setting: &'static str, reason: String) -> ConfigError {
        ConfigError::InvalidSetting {
            path: self.path.map(Path::to_path_buf).unwrap_or_default(),
            setting,
            reason,
        }
    }

    fn duration(&self, setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(text)
            .map_err(|e| self.invalid(setting, format!("{e} (e.g. 500ms, 30s, 5m)")))
    }
}

fn stop_policy(
    flags: &Flags,
    manifest: &Manifest,
    path: Option<&Path>,
) -> Result<StopPolicy, ConfigError> {
    let errors = SettingErrors { path };
    let invalid = |setting, reason| errors.invalid(setting, reason);
    let section = &manifest.process;
    let mut policy = StopPolicy::default();
    if let Some(sig) = flags.stop_signal {
        policy.stop_signal = sig;
    } else if let Some(text) = &section.stop_signal {
        policy.stop_signal = parse_signal(text).map_err(|r| invalid("[process] stop_signal", r))?;
    }
    if let Some(timeout) = flags.stop_timeout {
        policy.stop_timeout = timeout;
    } else if let Some(text) = &section.stop_timeout {
        policy.stop_timeout = errors.duration("[process] stop_timeout", text)?;
    }
    for text in &section.signal_map {
        let (from, to) =
            parse_signal_mapping(text).map_err(|r| invalid("[process] signal_map", r))?;
        policy.signal_map.insert(from, to);
    }
    policy.signal_map.extend(flags.signal_map.iter().copied());
    Ok(policy)
}

/// `--watch` etc. first, then the manifest's `[watch]`; watching is on when either sets an
/// interval.
fn watch_options(
    flags: &Flags,
    manifest: &Manifest,
    path: Option<&Path>,
) -> Result<Option<WatchOptions>, ConfigError> {
    let errors = SettingErrors { path };
    let invalid = |setting, reason| errors.invalid(setting, reason);
    let duration = |setting, text: &str| errors.duration(setting, text);
    let section = &manifest.watch;
    let interval = match (flags.watch, &section.interval) {
        (Some(interval), _) => interval,
        (None, Some(text)) => duration("[watch] interval", text)?,
        (None, None) => return Ok(None),
    };
    if interval.is_zero() {
        return Err(invalid("watch interval", "must be more than 0".to_owned()));
    }
    let on_change = match (&flags.on_change, &section.on_change) {
        (Some(action), _) => action.clone(),
        (None, Some(text)) => OnChange::parse(text).map_err(|r| invalid("[watch] on_change", r))?,
        (None, None) => OnChange::Restart,
    };
    let settle = match (flags.settle, &section.settle) {
        (Some(settle), _) => settle,
        (None, Some(text)) => duration("[watch] settle", text)?,
        (None, None) => Duration::from_secs(2),
    };
    Ok(Some(WatchOptions {
        interval,
        on_change,
        settle,
    }))
}

fn manifest_variable(name: &str, entry: &EnvEntry) -> Result<Variable, VariableProblem> {
    let problem = |reference: Option<&str>, reason: String| VariableProblem {
        name: name.to_owned(),
        reference: reference.map(str::to_owned),
        reason,
    };
    if !is_valid_name(name) {
        return Err(problem(
            None,
            "invalid variable name (use letters, digits and `_`, not starting with a digit)"
                .to_owned(),
        ));
    }
    let source = match entry {
        EnvEntry::Short(text) if Reference::looks_like_reference(text) => {
            Source::Reference(Reference::parse(text).map_err(|e| reference_problem(name, text, e))?)
        }
        EnvEntry::Short(text) => Source::Literal(text.clone()),
        EnvEntry::Long(LongEntry {
            reference: Some(text),
            value: None,
            ..
        }) => {
            Source::Reference(Reference::parse(text).map_err(|e| reference_problem(name, text, e))?)
        }
        EnvEntry::Long(LongEntry {
            reference: None,
            value: Some(text),
            ..
        }) => Source::Literal(text.clone()),
        EnvEntry::Long(_) => {
            return Err(problem(
                None,
                "give exactly one of `ref` and `value`".to_owned(),
            ));
        }
    };
    if let Source::Literal(text) = &source
        && text.contains('\0')
    {
        return Err(problem(None, "value contains a NUL byte".to_owned()));
    }
    Ok(Variable {
        name: name.to_owned(),
        source,
        origin: Origin::Manifest,
        file: matches!(entry, EnvEntry::Long(LongEntry { file: true, .. })),
    })
}

fn reference_problem(name: &str, text: &str, error: ReferenceError) -> VariableProblem {
    VariableProblem {
        name: name.to_owned(),
        reference: Some(text.to_owned()),
        reason: format!("invalid reference: {error}"),
    }
}

/// POSIX portable environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `~/.vault-token`, as written by `vault login`.
fn read_token_file(home: &Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join(".vault-token")).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("DB_PASSWORD"));
        assert!(is_valid_name("_x1"));
        assert!(!is_valid_name("1X"));
        assert!(!is_valid_name("A-B"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("A B"));
    }

    #[test]
    fn long_form_needs_exactly_one_field() {
        let entry = EnvEntry::Long(LongEntry {
            reference: Some("vault://a/b".into()),
            value: Some("x".into()),
            file: false,
        });
        assert!(manifest_variable("A", &entry).is_err());
        let entry = EnvEntry::Long(LongEntry {
            reference: None,
            value: Some("vault://a/b".into()),
            file: false,
        });
        assert!(matches!(
            manifest_variable("A", &entry).unwrap().source,
            Source::Literal(_)
        ));
    }
}
