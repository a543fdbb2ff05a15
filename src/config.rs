//! Turns command-line flags, the manifest and envoke's own environment into one validated
//! [`Config`]. Every reference is parsed here; nothing downstream parses again. Every settings
//! type lives here or below, one file per manifest table ([`process`], [`watch`], [`aws`],
//! [`vault`]), so that config imports nothing above it: settings are finished before any work
//! starts.
//!
//! Problems with single variables (a bad reference, an invalid name) are collected, not returned
//! at the first one, so `run` can report them all and `check` can show each as `invalid`.

pub mod aws;
pub mod process;
pub mod template;
pub mod vault;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use self::aws::{AwsSettings, RoleKeyWithoutRole};
use self::process::{StopPolicy, parse_signal, parse_signal_mapping};
use self::template::Template;
use self::vault::VaultSettings;
use self::watch::{
    DEFAULT_SWEEP, MAX_DURATION, MIN_INTERVAL, MIN_SETTLE, OnChange, WatchOptions, recheck_signal,
};
use crate::manifest::{EnvEntry, LongEntry, Manifest, ProcessSection, WatchSection};
use crate::reference::{Reference, ReferenceError};
use crate::sanitize::{escaped, one_line, redacted};
use crate::untrusted_file;

/// The manifest file looked for in the working directory.
const DEFAULT_MANIFEST: &str = "envoke.toml";

/// The largest manifest envoke reads (docs/manifest.md): far above any real one, and small
/// enough that input like `-m /dev/zero` cannot grow envoke's memory.
const MANIFEST_CAP: u64 = 4 * 1024 * 1024;

/// Everything a launch needs, validated. No `Debug`: `inherited` is envoke's whole environment,
/// AWS keys included.
pub struct Config {
    /// The manifest read, if any (`-m`, or `envoke.toml` here or above).
    pub manifest: Option<PathBuf>,
    /// The child's variables, from the manifest and from environment references.
    pub variables: Vec<Variable>,
    /// Variables that could not be accepted; a launch refuses to start while any exist.
    pub problems: Vec<VariableProblem>,
    pub aws: AwsSettings,
    /// Vault settings, when a reference needs Vault (they are neither checked nor used
    /// otherwise).
    pub vault: Option<VaultSettings>,
    /// envoke's inherited environment without envoke's own credentials and settings
    /// ([`ENVOKE_OWN`]); the child receives it unless a variable overrides it.
    pub inherited: Vec<(OsString, OsString)>,
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

/// One variable for the child.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub source: Source,
    pub origin: Origin,
    /// Whether the child gets the path of a private file holding the value instead.
    pub file: bool,
    /// For a reference ending in `#*` (or `expand = true`): the secret's keys become variables.
    pub expand: Option<Expansion>,
}

/// `NAME = "aws-sm://ID#*"` or `{ ref = "...", expand = true, prefix = "DB_", keys = [...] }`:
/// each top-level key of a JSON secret becomes a variable named `prefix` + the key in upper
/// case, every character but letters and digits made `_` (RDS- and Redshift-managed secrets
/// hold `username`, `password`, `host`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub prefix: String,
    /// Only these keys; all of them when `None`.
    pub keys: Option<Vec<String>>,
}

impl Expansion {
    /// The variable a key becomes.
    pub fn name(&self, key: &str) -> String {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}{key}", self.prefix)
    }
}

/// Where a variable's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A value written in the manifest.
    Literal(String),
    /// A secret to fetch.
    Reference(Reference),
    /// A value composed of other variables' values.
    Template(Template),
}

/// Where a variable was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The manifest's `[env]` table.
    Manifest,
    /// envoke's own environment (`NAME=aws-sm://...`).
    Environment,
}

/// A variable that could not be accepted or resolved. Its `Display` is the one place that
/// writes `NAME (REF): reason`.
#[derive(Debug, Clone)]
pub struct VariableProblem {
    /// The variable name as written.
    pub name: String,
    /// The text that was meant as a reference, when there is one.
    pub reference: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl VariableProblem {
    /// A problem with the text meant as a reference shown [`redacted`]: a connection string
    /// written where a reference was expected must not be printed with its password.
    pub fn new(name: &str, reference: Option<&str>, reason: String) -> VariableProblem {
        VariableProblem {
            name: name.to_owned(),
            reference: reference.map(redacted),
            reason,
        }
    }
}

impl fmt::Display for VariableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", escaped(&self.name))?;
        if let Some(reference) = &self.reference {
            write!(f, " ({reference})")?;
        }
        write!(f, ": {}", one_line(&self.reason))
    }
}

/// A configuration that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read manifest {path}: {source}")]
    ReadManifest {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A FIFO, a device, a directory, a socket: never read, so it cannot hang envoke.
    #[error("manifest {path} is {kind}, not a regular file")]
    ManifestNotAFile { path: PathBuf, kind: &'static str },
    #[error("manifest {path} is larger than {} MiB", MANIFEST_CAP / 1024 / 1024)]
    ManifestTooLarge { path: PathBuf },
    /// The manifest is not valid TOML or does not fit the schema.
    #[error("invalid manifest {path}: {source}")]
    ParseManifest {
        path: PathBuf,
        /// The parse error, with line and column.
        source: crate::manifest::ManifestError,
    },
    #[error("invalid setting `{setting}` in {path}: {reason}")]
    InvalidSetting {
        path: PathBuf,
        /// The setting, e.g. `[process] stop_timeout`.
        setting: &'static str,
        reason: String,
    },
    /// A setting from the manifest or the environment has a value that cannot be used.
    #[error("invalid {setting}: {reason}")]
    BadValue {
        /// Where it was found: `VAULT_TOKEN`, `` `namespace` in [vault] ``.
        setting: String,
        reason: String,
    },
    #[error("{needed_by} needs `{setting}`{}", or_variables(.variables))]
    MissingSetting {
        needed_by: String,
        setting: &'static str,
        variables: String,
    },
    #[error(
        "found {path}, but {reason}: not trusted (it chooses where tokens go); \
         name it with -m if you mean it"
    )]
    UntrustedManifest { path: PathBuf, reason: String },
    #[error("no profile `{name}` in the manifest (its profiles: {known})")]
    UnknownProfile { name: String, known: String },
    /// `check` found neither a manifest nor a reference in the environment.
    #[error(
        "no envoke.toml here or in a directory above (up to the repository's root), and no \
         reference in the environment: nothing to check; give one with -m FILE, or --allow-empty \
         when that is intended"
    )]
    NothingToCheck,
    /// `--exec` with something only a supervising envoke can do.
    #[error(
        "--exec leaves no envoke behind to watch secrets or remove secret files; \
         drop --exec, or --watch and `file = true`"
    )]
    ExecCannotSupervise,
    /// `--exec` with `--mask`.
    #[error(
        "--mask needs envoke between the command and its output, and --exec leaves no envoke \
         behind; drop --exec or --mask"
    )]
    ExecCannotMask,
}

fn or_variables(variables: &str) -> String {
    if variables.is_empty() {
        " in [vault]".to_owned()
    } else {
        format!(" in [vault] or {variables}")
    }
}

/// What `config` needs from the command line; each field is a flag or its ENVOKE_* variable.
#[derive(Debug, Default)]
pub struct Flags {
    pub manifest: Option<PathBuf>,
    pub no_env_refs: bool,
    /// `--profile NAME`: `[profiles.NAME]` applied over the manifest.
    pub profile: Option<String>,
    pub exec: bool,
    pub stop_signal: Option<Signal>,
    pub stop_timeout: Option<Duration>,
    pub signal_map: Vec<(Signal, Signal)>,
    pub watch: Option<Duration>,
    pub on_change: Option<OnChange>,
    pub settle: Option<Duration>,
    pub sweep: Option<Duration>,
    pub splay: Option<Duration>,
    pub recheck_signal: Option<Signal>,
    pub no_revoke: bool,
    pub mask: bool,
    /// `--pass-env NAME`: envoke's own credentials that the child gets anyway.
    pub pass_env: Vec<String>,
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

/// envoke's own environment, as the settings read it: a variable that is unset, empty or not
/// UTF-8 is absent.
pub(crate) struct Environment<'a>(pub(crate) &'a [(OsString, OsString)]);

impl Environment<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
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
        let (manifest_path, manifest) = read_manifest(flags.manifest.as_deref(), working_dir)?;
        let manifest = match &flags.profile {
            None => manifest,
            Some(name) => {
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
                    })?
            }
        };
        let errors = SettingErrors {
            path: manifest_path.as_deref(),
        };
        let (mut variables, mut problems) = manifest_variables(&manifest);
        if !flags.no_env_refs {
            let (found, invalid) = environment_references(&manifest, &environment);
            variables.extend(found);
            problems.extend(invalid);
        }
        let unusable = unusable_templates(&variables, &problems);
        variables.retain(|v| !unusable.iter().any(|p| p.name == v.name));
        problems.extend(unusable);
        let uses_vault = variables
            .iter()
            .any(|v| matches!(v.source, Source::Reference(Reference::Vault(_))));
        let vault = if uses_vault || purpose == (Purpose::Import { to_vault: true }) {
            Some(VaultSettings::load(
                &manifest.vault,
                &Environment(&environment),
                home,
                purpose == Purpose::Policy,
            )?)
        } else {
            None
        };
        let config = Config {
            manifest: manifest_path.clone(),
            variables,
            problems,
            aws: AwsSettings::load(manifest.aws).map_err(|RoleKeyWithoutRole(setting)| {
                errors.invalid(
                    setting,
                    "needs role_arn (it belongs to the role envoke assumes)".to_owned(),
                )
            })?,
            vault,
            stop: stop_policy(flags, &manifest.process, &errors)?,
            watch: watch_options(flags, &manifest.watch, &manifest.process, &errors)?,
            inherited: without_envokes_own(environment, &flags.pass_env),
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

/// envoke's own credentials and settings, which the child does not inherit unless `--pass-env`
/// names them: a child that needs Vault gets a token of its own, not envoke's. Every `ENVOKE_*`
/// variable is envoke's too. AWS credentials pass through: the child may need them as well.
pub const ENVOKE_OWN: &[&str] = &[
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "VAULT_TOKEN_FILE",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "VAULT_SECRET_ID_FILE",
    "VAULT_CLIENT_KEY",
];

fn without_envokes_own(
    environment: Vec<(OsString, OsString)>,
    pass: &[String],
) -> Vec<(OsString, OsString)> {
    environment
        .into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return true;
            };
            let own = ENVOKE_OWN.contains(&name) || name.starts_with("ENVOKE_");
            !own || pass.iter().any(|p| p == name)
        })
        .collect()
}

/// The manifest named by `-m`, else ./envoke.toml when there is one, else an empty manifest.
fn read_manifest(
    flag: Option<&Path>,
    working_dir: &Path,
) -> Result<(Option<PathBuf>, Manifest), ConfigError> {
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => match find_manifest(working_dir)? {
            Some(path) => path,
            None => return Ok((None, Manifest::default())),
        },
    };
    let text = read_manifest_text(&path)?;
    let manifest = Manifest::parse(&text).map_err(|source| ConfigError::ParseManifest {
        path: path.clone(),
        source,
    })?;
    Ok((Some(path), manifest))
}

/// `envoke.toml` in `working_dir` or the nearest directory above it, as a path relative to
/// `working_dir` (`envoke.toml`, `../../envoke.toml`). The search stops at the filesystem root, or
/// at a directory holding `.git` once it has looked there: a manifest outside the repository
/// belongs to something else. Whatever has the name is the manifest: a FIFO or a directory there
/// is reported, not skipped.
fn find_manifest(working_dir: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let mut relative = PathBuf::new();
    for dir in working_dir.ancestors() {
        let candidate = dir.join(DEFAULT_MANIFEST);
        if candidate.symlink_metadata().is_ok() {
            let path = relative.join(DEFAULT_MANIFEST);
            check_found_manifest(&candidate, &path)?;
            return Ok(Some(path));
        }
        if dir.join(".git").symlink_metadata().is_ok() {
            return Ok(None);
        }
        relative.push("..");
    }
    Ok(None)
}

/// A manifest found by searching, not named with `-m`, decides where tokens are sent and what the
/// command's environment holds: one that another user could have planted (in `/tmp`, a shared
/// directory) is refused, as git refuses a repository another user owns. It must be owned by
/// this user or root, and writable by no one else.
fn check_found_manifest(candidate: &Path, shown: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = candidate.metadata() else {
        return Ok(()); // reading it reports what is wrong
    };
    let euid = nix::unistd::geteuid().as_raw();
    let owner_trusted = metadata.uid() == euid || metadata.uid() == 0;
    let writable_by_others = metadata.mode() & 0o022 != 0;
    if owner_trusted && !writable_by_others {
        return Ok(());
    }
    Err(ConfigError::UntrustedManifest {
        path: shown.to_path_buf(),
        reason: if owner_trusted {
            "it is writable by other users".to_owned()
        } else {
            format!("it belongs to another user (uid {})", metadata.uid())
        },
    })
}

/// Reads a manifest that is a regular file of at most [`MANIFEST_CAP`] bytes of UTF-8 text
/// ([`untrusted_file::read`]).
fn read_manifest_text(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::ReadManifest {
        path: path.to_path_buf(),
        source,
    };
    let bytes = untrusted_file::read(path, MANIFEST_CAP).map_err(|error| match error {
        untrusted_file::ReadError::NotRegular(kind) => ConfigError::ManifestNotAFile {
            path: path.to_path_buf(),
            kind,
        },
        untrusted_file::ReadError::TooLarge(_) => ConfigError::ManifestTooLarge {
            path: path.to_path_buf(),
        },
        untrusted_file::ReadError::Io(source) => read_error(source),
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })
}

/// The manifest's `[env]`: the variables it defines, and the entries that cannot be used.
fn manifest_variables(manifest: &Manifest) -> (Vec<Variable>, Vec<VariableProblem>) {
    let mut variables = Vec::new();
    let mut problems = Vec::new();
    for (name, entry) in &manifest.env {
        match manifest_variable(name, entry) {
            Ok(variable) => variables.push(variable),
            Err(problem) => problems.push(problem),
        }
    }
    (variables, problems)
}

/// References in envoke's own environment (`NAME=aws-sm://...`) that the manifest does not
/// define; the manifest's definition wins.
fn environment_references(
    manifest: &Manifest,
    environment: &[(OsString, OsString)],
) -> (Vec<Variable>, Vec<VariableProblem>) {
    let defined: BTreeSet<&str> = manifest.env.keys().map(String::as_str).collect();
    let mut variables = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in environment {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if defined.contains(name) {
            continue;
        }
        match Reference::parse_environment_value(value) {
            None => {}
            Some(Ok(reference)) => variables.push(Variable {
                name: name.to_owned(),
                expand: expands(&reference).then(|| Expansion {
                    prefix: format!("{name}_"),
                    keys: None,
                }),
                source: Source::Reference(reference),
                origin: Origin::Environment,
                file: false,
            }),
            Some(Err(error)) => problems.push(VariableProblem::new(
                name,
                Some(value),
                format!("invalid reference in the environment: {error}"),
            )),
        }
    }
    (variables, problems)
}

/// Templates that name a variable that does not exist, or that name each other in a circle.
fn unusable_templates(
    variables: &[Variable],
    problems: &[VariableProblem],
) -> Vec<VariableProblem> {
    let templates: BTreeMap<&str, &Template> = variables
        .iter()
        .filter_map(|v| match &v.source {
            Source::Template(t) => Some((v.name.as_str(), t)),
            _ => None,
        })
        .collect();
    // A name an expansion may make (its keys are known only once the secret is fetched).
    let known = |name: &str| {
        variables.iter().any(|v| {
            v.name == name
                || v.expand
                    .as_ref()
                    .is_some_and(|e| name.starts_with(&e.prefix) && name.len() > e.prefix.len())
        }) || problems.iter().any(|p| p.name == name)
    };
    let mut unusable = Vec::new();
    for (&name, template) in &templates {
        if let Some(unknown) = template.names().find(|n| !known(n)) {
            unusable.push(VariableProblem::new(
                name,
                None,
                format!("the template names `{unknown}`, which is not a variable of the manifest"),
            ));
        } else if let Some(cycle) = cycle_from(name, &templates) {
            unusable.push(VariableProblem::new(
                name,
                None,
                format!(
                    "templates name each other in a circle: {}",
                    cycle.join(" → ")
                ),
            ));
        }
    }
    unusable
}

/// A path of template names from `start` back to `start`, if there is one.
fn cycle_from<'a>(
    start: &'a str,
    templates: &BTreeMap<&'a str, &'a Template>,
) -> Option<Vec<&'a str>> {
    // Depth-first, remembering the path; each template is expanded once.
    let mut stack: Vec<(Vec<&'a str>, &'a str)> = vec![(vec![start], start)];
    let mut seen = BTreeSet::new();
    while let Some((path, name)) = stack.pop() {
        let Some(template) = templates.get(name) else {
            continue;
        };
        for next in template.names() {
            let mut longer = path.clone();
            longer.push(next);
            if next == start {
                return Some(longer);
            }
            if seen.insert(next) {
                stack.push((longer, next));
            }
        }
    }
    None
}

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

/// Flags (and their environment variables) first, then the manifest's `[process]`, then defaults.
fn stop_policy(
    flags: &Flags,
    section: &ProcessSection,
    errors: &SettingErrors<'_>,
) -> Result<StopPolicy, ConfigError> {
    let invalid = |setting, reason| errors.invalid(setting, reason);
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
    section: &WatchSection,
    process: &ProcessSection,
    errors: &SettingErrors<'_>,
) -> Result<Option<WatchOptions>, ConfigError> {
    let invalid = |setting, reason| errors.invalid(setting, reason);
    let duration = |setting, text: &str| errors.duration(setting, text);
    let recheck = match (flags.recheck_signal, &section.recheck_signal) {
        (Some(sig), _) => Some(
            recheck_signal(sig)
                .map_err(|reason| bad_flag("--recheck-signal (ENVOKE_RECHECK_SIGNAL)", reason))?,
        ),
        (None, Some(text)) => Some(
            parse_signal(text)
                .and_then(recheck_signal)
                .map_err(|r| invalid("[watch] recheck_signal", r))?,
        ),
        (None, None) => None,
    };
    // A duration from its flag, else from the manifest's text, passed through `check`; an error
    // names the flag or the key it came from. `None` when neither gives one.
    let setting = |flag: Option<Duration>,
                   flag_name: &str,
                   text: &Option<String>,
                   key: &'static str,
                   check: &dyn Fn(Duration) -> Result<Duration, String>|
     -> Result<Option<Duration>, ConfigError> {
        match (flag, text) {
            (Some(value), _) => check(value)
                .map(Some)
                .map_err(|reason| bad_flag(flag_name, reason)),
            (None, Some(text)) => check(duration(key, text)?)
                .map(Some)
                .map_err(|reason| invalid(key, reason)),
            (None, None) => Ok(None),
        }
    };
    let interval = setting(
        flags.watch,
        "--watch (ENVOKE_WATCH)",
        &section.interval,
        "[watch] interval",
        &|value| at_least(value, MIN_INTERVAL, "interval").and_then(at_most),
    )?;
    let Some(interval) = interval else {
        if let Some(sig) = recheck {
            return Err(bad_flag(
                "--recheck-signal (ENVOKE_RECHECK_SIGNAL, [watch] recheck_signal)",
                format!(
                    "{sig} would recheck secrets that nothing watches: add --watch (or \
                     [watch] interval), or drop it"
                ),
            ));
        }
        return Ok(None);
    };
    if let Some(sig) = recheck {
        let mapped = flags.signal_map.iter().any(|(from, _)| *from == sig)
            || process
                .signal_map
                .iter()
                .filter_map(|text| parse_signal_mapping(text).ok())
                .any(|(from, _)| from == sig);
        if mapped {
            return Err(bad_flag(
                "--recheck-signal (ENVOKE_RECHECK_SIGNAL, [watch] recheck_signal)",
                format!("{sig} is also mapped by --signal-map; it cannot be both"),
            ));
        }
    }
    let on_change = match (&flags.on_change, &section.on_change) {
        (Some(action), _) => action.clone(),
        (None, Some(text)) => OnChange::parse(text).map_err(|r| invalid("[watch] on_change", r))?,
        (None, None) => OnChange::Restart,
    };
    let settle = setting(
        flags.settle,
        "--settle",
        &section.settle,
        "[watch] settle",
        &|value| at_least(value, MIN_SETTLE, "settle window").and_then(at_most),
    )?
    .unwrap_or(Duration::from_secs(2));
    // A sweep more often than the polls has nothing to do between them: it is the interval.
    let sweep = setting(
        flags.sweep,
        "--sweep",
        &section.sweep,
        "[watch] sweep",
        &at_most,
    )?
    .unwrap_or(DEFAULT_SWEEP)
    .max(interval);
    let splay = setting(
        flags.splay,
        "--splay",
        &section.splay,
        "[watch] splay",
        &at_most,
    )?
    .unwrap_or(Duration::ZERO);
    Ok(Some(WatchOptions {
        interval,
        on_change,
        settle,
        sweep,
        splay,
        recheck_signal: recheck,
    }))
}

/// `value` when it is at least `floor`; else why not (`what` names the setting in the reason).
fn at_least(value: Duration, floor: Duration, what: &str) -> Result<Duration, String> {
    if value < floor {
        return Err(format!(
            "{} is below the floor of {} (a shorter {what} makes a busy loop, not a watch); use {} \
             or more",
            humantime::format_duration(value),
            humantime::format_duration(floor),
            humantime::format_duration(floor),
        ));
    }
    Ok(value)
}

/// `value` when it is at most [`MAX_DURATION`]; else why not.
fn at_most(value: Duration) -> Result<Duration, String> {
    if value > MAX_DURATION {
        return Err(format!(
            "{} is above the ceiling of {}; use {} or less",
            humantime::format_duration(value),
            humantime::format_duration(MAX_DURATION),
            humantime::format_duration(MAX_DURATION),
        ));
    }
    Ok(value)
}

fn bad_flag(setting: &str, reason: String) -> ConfigError {
    ConfigError::BadValue {
        setting: setting.to_owned(),
        reason,
    }
}

fn manifest_variable(name: &str, entry: &EnvEntry) -> Result<Variable, VariableProblem> {
    let problem =
        |reference: Option<&str>, reason: String| VariableProblem::new(name, reference, reason);
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
            template: None,
            ..
        }) => {
            Source::Reference(Reference::parse(text).map_err(|e| reference_problem(name, text, e))?)
        }
        EnvEntry::Long(LongEntry {
            reference: None,
            value: Some(text),
            template: None,
            ..
        }) => Source::Literal(text.clone()),
        EnvEntry::Long(LongEntry {
            reference: None,
            value: None,
            template: Some(text),
            ..
        }) => Source::Template(
            Template::parse(text).map_err(|e| problem(None, format!("invalid template: {e}")))?,
        ),
        EnvEntry::Long(_) => {
            return Err(problem(
                None,
                "give exactly one of `ref`, `value` and `template`".to_owned(),
            ));
        }
    };
    let file = matches!(entry, EnvEntry::Long(LongEntry { file: true, .. }));
    // A file holds bytes; only an environment variable cannot hold a NUL.
    if let Source::Literal(text) = &source
        && text.contains('\0')
        && !file
    {
        return Err(problem(
            None,
            "value contains a NUL byte, which an environment variable cannot hold (`file = true` \
             can)"
                .to_owned(),
        ));
    }
    let expand = match (entry, &source) {
        (
            EnvEntry::Long(LongEntry {
                expand: true,
                prefix,
                keys,
                ..
            }),
            Source::Reference(reference),
        ) if reference.key().is_none() || expands(reference) => Some(Expansion {
            prefix: prefix.clone().unwrap_or_else(|| format!("{name}_")),
            keys: keys.clone(),
        }),
        (EnvEntry::Long(LongEntry { expand: true, .. }), _) => {
            return Err(problem(
                None,
                "`expand = true` goes with a `ref` to a whole secret (no #key)".to_owned(),
            ));
        }
        (EnvEntry::Long(LongEntry { prefix, keys, .. }), _)
            if prefix.is_some() || keys.is_some() =>
        {
            return Err(problem(
                None,
                "`prefix` and `keys` go with `expand = true`".to_owned(),
            ));
        }
        (_, Source::Reference(reference)) if expands(reference) => Some(Expansion {
            prefix: format!("{name}_"),
            keys: None,
        }),
        _ => None,
    };
    if expand.is_some() && file {
        return Err(problem(
            None,
            "an expanded secret cannot be given as a file".to_owned(),
        ));
    }
    Ok(Variable {
        name: name.to_owned(),
        source,
        origin: Origin::Manifest,
        file,
        expand,
    })
}

/// Whether a reference asks for every key (`#*`).
fn expands(reference: &Reference) -> bool {
    matches!(reference.key(), Some(crate::reference::KeyPath::Key(key)) if key == "*")
}

fn reference_problem(name: &str, text: &str, error: ReferenceError) -> VariableProblem {
    VariableProblem::new(name, Some(text), format!("invalid reference: {error}"))
}

/// POSIX portable environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
            template: None,
            file: false,
            ..LongEntry::default()
        });
        assert!(manifest_variable("A", &entry).is_err());
        let entry = EnvEntry::Long(LongEntry {
            reference: None,
            value: Some("vault://a/b".into()),
            template: None,
            file: false,
            ..LongEntry::default()
        });
        assert!(matches!(
            manifest_variable("A", &entry).unwrap().source,
            Source::Literal(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_manifest_text_is_accepted_or_refused_never_a_panic(text in "\\PC{0,200}") {
            let _ = Manifest::parse(&text);
        }

        #[test]
        fn any_entry_becomes_a_variable_or_a_problem_that_prints_safely(
            name in "\\PC{0,20}",
            value in "\\PC{0,60}",
            control in "[\\x00-\\x1f]{0,2}",
        ) {
            let name = format!("{name}{control}");
            let value = format!("{value}{control}");
            for entry in [
                EnvEntry::Short(value.clone()),
                EnvEntry::Long(LongEntry { reference: Some(value.clone()), ..LongEntry::default() }),
                EnvEntry::Long(LongEntry { template: Some(value.clone()), ..LongEntry::default() }),
            ] {
                if let Err(problem) = manifest_variable(&name, &entry) {
                    let shown = problem.to_string();
                    proptest::prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
                }
            }
        }
    }
}
