//! Turns command-line flags, the manifest and envoke's own environment into one validated
//! [`Config`]. Every reference is parsed here; nothing downstream parses again. Every settings
//! type lives here or below, so that config imports nothing above it: settings are finished
//! before any work starts. One file per job:
//!
//! - [`discover`]: finding the manifest (`-m`, or `envoke.toml` here or above) and reading it;
//! - [`variables`]: the child's variables, from `[env]` and from references in the environment,
//!   and the problems with single variables (collected, not returned at the first one, so `run`
//!   can report them all and `check` can show each as `invalid`); [`template`]: `${NAME}` texts;
//! - [`own_env`]: envoke's own environment, and which of its variables the child never inherits;
//! - [`layer`]: the one precedence mechanism every setting is looked up with;
//! - [`trust`]: the user's consent for a found manifest's connection and credential settings;
//! - one file per manifest table's settings: [`process`], [`watch`], [`aws`], [`vault`];
//! - [`error`]: what can be wrong.
//!
//! # Precedence
//!
//! Each setting is taken from the first place in its row that gives it ([`layer::Layers`]).
//! A flag's `ENVOKE_*` variable is read by clap in the flag's place.
//!
//! | settings | 1st | 2nd | 3rd | otherwise |
//! |----------|-----|-----|-----|-----------|
//! | `stop_signal`, `stop_timeout` | `--stop-signal`, `--stop-timeout` | `[process]` | | TERM, 10s |
//! | `signal_map` | `[process]` and `--signal-map` add up, the flag's mapping wins | | | none |
//! | `interval`, `on_change`, `settle`, `sweep`, `splay`, `recheck_signal`, `recheck_on` | `--watch`, `--on-change`, ... | `[watch]` | | no watching; restart, 2s, the interval, 0s, none, none |
//! | `address`, `namespace`, `ca_cert`, `skip_verify` | `VAULT_*` | `BAO_*` | `[vault]` ✱ | `https://127.0.0.1:8200`, none, none, off |
//! | `auth`, `role`, `mount` | `ENVOKE_VAULT_AUTH`, `ENVOKE_VAULT_ROLE`, `ENVOKE_VAULT_AUTH_MOUNT` | `[vault]` ✱ | | `token`, none, the method's name |
//! | Vault token | `VAULT_TOKEN` | `BAO_TOKEN` | `VAULT_TOKEN_FILE`, then `token_file` in `[vault]` ✱ | `~/.vault-token` |
//! | `role_id`, `secret_id`, `secret_id_file`, `client_cert`, `client_key` | `VAULT_ROLE_ID`, `VAULT_SECRET_ID`, `VAULT_SECRET_ID_FILE`, `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY` | `[vault]` ✱ | | an error naming both |
//! | `jwt_file` | `[vault]` ✱ | | | the pod's token (kubernetes), an error (jwt) |
//! | AWS region | `[aws] region` | `AWS_REGION` | `AWS_DEFAULT_REGION` | the AWS profile's ([`aws::AwsSettings::region`]) |
//! | AWS endpoint, profile | `AWS_ENDPOINT_URL_SECRETS_MANAGER` or `AWS_ENDPOINT_URL`, `AWS_PROFILE` | `[aws] endpoint`, `[aws] profile` ✱ | | aws-config's default chain |
//! | `role_arn`, `external_id`, `session_name` | `[aws]` ✱ | | | no role assumed |
//!
//! ✱ A connection or credential setting: where a manifest key of one is overridden by the
//! environment and differs, envoke warns naming both; a manifest found by searching (not named
//! with `-m` or ENVOKE_MANIFEST) may set one only once the user trusts it ([`trust`]).

pub mod aws;
pub mod discover;
pub mod error;
pub mod layer;
pub mod own_env;
pub mod process;
pub mod template;
pub mod trust;
pub mod variables;
pub mod vault;
pub mod watch;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use self::aws::{AwsSettings, RoleKeyWithoutRole};
pub use self::error::{ConfigError, VariableProblem};
use self::layer::{Layers, Place};
pub use self::own_env::OwnEnvironment;
use self::process::StopPolicy;
use self::template::Template;
pub use self::variables::{Expansion, Origin, Source, Variable};
use self::vault::VaultSettings;
use self::watch::{OnChange, WatchOptions};
use crate::manifest::Manifest;
use crate::reference::Reference;
use crate::sanitize::escaped;

/// Everything a launch needs, validated. No `Debug`: `inherited` is envoke's whole environment,
/// AWS keys included.
pub struct Config {
    /// The manifest read, if any (`-m`, or `envoke.toml` here or above).
    pub manifest: Option<PathBuf>,
    /// The profile applied (`--profile`), if any.
    pub profile: Option<String>,
    /// The child's variables, from the manifest and from environment references.
    pub variables: Vec<Variable>,
    /// Variables that could not be accepted; a launch refuses to start while any exist.
    pub problems: Vec<VariableProblem>,
    /// `[aws]`: what overrides aws-config's default chain; empty when the manifest has none.
    pub aws: AwsSettings,
    /// Vault settings, when a reference needs Vault (they are neither checked nor used
    /// otherwise).
    pub vault: Option<VaultSettings>,
    /// envoke's inherited environment without envoke's own credentials and settings
    /// ([`ENVOKE_OWN`]); the child receives it unless a variable overrides it.
    pub inherited: Vec<(OsString, OsString)>,
    /// How envoke stops the child, and which signals it forwards as others.
    pub stop: StopPolicy,
    /// Rotation watching, when on.
    pub watch: Option<WatchOptions>,
    /// Revoke the Vault leases envoke holds when it exits (`--no-revoke` turns this off).
    pub revoke: bool,
    /// `--mask`: the child's output passes through envoke with every resolved value masked.
    pub mask: bool,
    /// Secret files may go to a filesystem that is not in memory (`--allow-disk-files`).
    pub allow_disk_files: bool,
}

/// What `config` needs from the command line; each field is a flag or its ENVOKE_* variable.
#[derive(Debug, Default)]
pub struct Flags {
    /// `-m FILE`: the manifest to read instead of searching for `envoke.toml`.
    pub manifest: Option<PathBuf>,
    /// `--no-env-refs`: references in envoke's own environment are not variables.
    pub no_env_refs: bool,
    /// `--profile NAME`: `[profiles.NAME]` applied over the manifest.
    pub profile: Option<String>,
    /// `--exec`: envoke replaces itself with the command, so nothing that needs a supervisor
    /// (watching, secret files, masking) is allowed.
    pub exec: bool,
    /// `--stop-signal`: what envoke sends when it stops the child itself; over `[process]`.
    pub stop_signal: Option<Signal>,
    /// `--stop-timeout`: the grace period before SIGKILL; over `[process]`.
    pub stop_timeout: Option<Duration>,
    /// `--signal-map FROM:TO`, in order; added to `[process]`'s mappings, winning over them.
    pub signal_map: Vec<(Signal, Signal)>,
    /// `--watch [INTERVAL]`: watch with this poll interval; over `[watch] interval`.
    pub watch: Option<Duration>,
    /// `--on-change`: what a rotation does to the child; over `[watch]`.
    pub on_change: Option<OnChange>,
    /// `--settle`: the window in which changes coalesce into one action; over `[watch]`.
    pub settle: Option<Duration>,
    /// `--sweep`: how often AWS secrets no rotation is due for are checked; over `[watch]`.
    pub sweep: Option<Duration>,
    /// `--splay`: the longest random delay before acting on a change; over `[watch]`.
    pub splay: Option<Duration>,
    /// `--recheck-signal`: the signal that makes envoke check every secret; over `[watch]`.
    pub recheck_signal: Option<Signal>,
    /// `--recheck-on REF`: the text of a reference to the secret whose change rechecks all.
    pub recheck_on: Option<String>,
    /// `--no-revoke`: leave Vault leases and envoke's login token alive when envoke exits.
    pub no_revoke: bool,
    /// `--mask`: the child's output passes through envoke with every resolved value masked.
    pub mask: bool,
    /// `--pass-env NAME`: envoke's own credentials that the child gets anyway.
    pub pass_env: Vec<String>,
    /// `--allow-disk-files`: secret files may go to a filesystem that is not in memory.
    pub allow_disk_files: bool,
}

/// What the configuration is loaded for: the subcommands need slightly different things of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `envoke run`.
    Run,
    /// `envoke check`.
    Check,
    /// `envoke policy`: a Vault login's missing credentials are not an error (the policy needs
    /// the method and its mount, not a way to log in).
    Policy,
    /// `envoke import`; to Vault, the Vault settings are loaded though no reference needs them.
    Import {
        /// The destination is Vault.
        to_vault: bool,
    },
}

impl Config {
    /// Builds the configuration from flags, the manifest (`-m`, else ./envoke.toml when present)
    /// and `environment` (envoke's own, passed in so tests can drive it).
    pub fn load(
        flags: &Flags,
        purpose: Purpose,
        environment: Vec<(OsString, OsString)>,
        home: Option<&Path>,
        working_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let (manifest_path, found, text, manifest) =
            match discover::read_manifest(flags.manifest.as_deref(), working_dir)? {
                Some((path, found, text, manifest)) => (Some(path), Some(found), text, manifest),
                None => (None, None, String::new(), Manifest::default()),
            };
        let manifest = with_profile(manifest, flags.profile.as_deref())?;
        let layers = Layers {
            manifest: manifest_path.as_deref(),
            environment: OwnEnvironment(&environment),
        };
        let (variables, problems) = variables::collect(&manifest, &environment, !flags.no_env_refs);
        let watch = WatchOptions::load(flags, &manifest.watch, &manifest.process, &layers)?;
        // The backends the variables' references and the `--recheck-on` secret need.
        let uses = |aws: bool| {
            backend_references(&variables, watch.as_ref())
                .any(|reference| matches!(reference, Reference::Aws(_)) == aws)
        };
        let uses_vault = uses(false) || purpose == (Purpose::Import { to_vault: true });
        let uses_aws = uses(true) || purpose == (Purpose::Import { to_vault: false });
        if let (Some(path), Some(discover::Found::Searched)) = (&manifest_path, found) {
            let used = trust::restricted_settings(&manifest)
                .into_iter()
                .filter(|name| {
                    if name.starts_with("[vault]") {
                        uses_vault
                    } else {
                        uses_aws
                    }
                })
                .collect::<Vec<_>>();
            if let Some(setting) = used.first() {
                let store = trust::store_path(&layers.environment, home);
                let canonical = working_dir.join(path).canonicalize().ok();
                let trusted = match (&store, &canonical) {
                    (Some(store), Some(canonical)) => trust::is_trusted(store, canonical, &text)
                        .map_err(|reason| ConfigError::TrustStore { reason })?,
                    _ => false,
                };
                if !trusted {
                    return Err(ConfigError::UntrustedSettings {
                        path: path.clone(),
                        setting,
                    });
                }
            }
        }
        let vault = if uses_vault {
            Some(VaultSettings::load(
                &manifest.vault,
                &layers,
                home,
                purpose == Purpose::Policy,
            )?)
        } else {
            None
        };
        let aws = AwsSettings::load(manifest.aws, &layers).map_err(|RoleKeyWithoutRole(key)| {
            layers.invalid(
                Place::Manifest("aws", key),
                "needs role_arn (it belongs to the role envoke assumes)".to_owned(),
            )
        })?;
        let stop = StopPolicy::load(flags, &manifest.process, &layers)?;
        let config = Config {
            manifest: manifest_path.clone(),
            profile: manifest.applied.map(|applied| applied.name),
            variables,
            problems,
            aws,
            vault,
            stop,
            watch,
            inherited: own_env::without_envokes_own(environment, &flags.pass_env),
            revoke: !flags.no_revoke,
            mask: flags.mask,
            allow_disk_files: flags.allow_disk_files,
        };
        if flags.exec && (config.watch.is_some() || config.wants_files()) {
            return Err(ConfigError::ExecCannotSupervise);
        }
        if flags.exec && flags.mask {
            return Err(ConfigError::ExecCannotMask);
        }
        Ok(config)
    }

    /// The variables that name references, with their references.
    pub fn references(&self) -> impl Iterator<Item = (&Variable, &Reference)> {
        self.variables.iter().filter_map(|v| match &v.source {
            Source::Reference(r) => Some((v, r)),
            Source::Literal(_) | Source::Template(_) => None,
        })
    }

    /// Every reference envoke asks a backend about: the variables' and, when watching, the
    /// `--recheck-on` secret's.
    pub fn backend_references(&self) -> impl Iterator<Item = &Reference> {
        backend_references(&self.variables, self.watch.as_ref())
    }

    /// The literal variables with their values.
    pub fn literals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables.iter().filter_map(|v| match &v.source {
            Source::Literal(text) => Some((v.name.as_str(), text.as_str())),
            Source::Reference(_) | Source::Template(_) => None,
        })
    }

    /// The composed variables with their templates.
    pub fn templates(&self) -> impl Iterator<Item = (&str, &Template)> {
        self.variables.iter().filter_map(|v| match &v.source {
            Source::Template(t) => Some((v.name.as_str(), t)),
            _ => None,
        })
    }

    /// Every variable by its name: what a resolved value's variable asks for (a file, where it
    /// was defined), and which names an expanded secret's keys must not take.
    pub fn by_name(&self) -> BTreeMap<&str, &Variable> {
        self.variables
            .iter()
            .map(|v| (v.name.as_str(), v))
            .collect()
    }

    /// Whether there is nothing to resolve because no manifest was found and the environment
    /// holds no reference: run from the wrong directory, most likely.
    pub fn found_nothing(&self) -> bool {
        self.manifest.is_none() && self.variables.is_empty() && self.problems.is_empty()
    }

    /// Whether any variable is given to the child as a file (`file = true`).
    pub fn wants_files(&self) -> bool {
        self.variables.iter().any(|v| v.file)
    }
}

/// The manifest with its `[profiles.NAME]` applied, when a profile is asked for.
fn with_profile(manifest: Manifest, profile: Option<&str>) -> Result<Manifest, ConfigError> {
    let Some(name) = profile else {
        return Ok(manifest);
    };
    manifest
        .with_profile(name)
        .map_err(|known| ConfigError::UnknownProfile {
            name: escaped(name),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known
                    .iter()
                    .map(|k| escaped(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// The references of `variables` and, when watching, the `--recheck-on` secret's: what envoke
/// asks a backend about, and so which backends a configuration uses.
fn backend_references<'a>(
    variables: &'a [Variable],
    watch: Option<&'a WatchOptions>,
) -> impl Iterator<Item = &'a Reference> {
    let of_variables = variables.iter().filter_map(|v| match &v.source {
        Source::Reference(reference) => Some(reference),
        Source::Literal(_) | Source::Template(_) => None,
    });
    of_variables.chain(watch.and_then(|w| w.recheck_on.as_ref()))
}
