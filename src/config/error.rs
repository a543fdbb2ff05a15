//! What can be wrong with a configuration: a problem with one variable (collected, so that all
//! are reported at once), or an error that stops the configuration as a whole.

use std::fmt;
use std::path::PathBuf;

use super::Origin;
use super::discover::MANIFEST_CAP;
use crate::sanitize::{escaped, one_line, redacted};

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
    /// What the reason is about when it is not this variable alone: the secret whose fetch
    /// failed (`vault://secret/db`), or the backend (`Vault`, `AWS`) when the failure is the
    /// same for every variable it serves (a login, a token, an address, a region, TLS). Problems
    /// with the same subject and reason are reported once, naming every variable.
    pub subject: Option<String>,
    /// Where the variable was defined, when it is known (`envoke check --profile` shows it).
    pub origin: Option<Origin>,
}

impl VariableProblem {
    /// A problem with the text meant as a reference shown [`redacted`]: a connection string
    /// written where a reference was expected must not be printed with its password.
    pub fn new(name: &str, reference: Option<&str>, reason: String) -> VariableProblem {
        VariableProblem {
            name: name.to_owned(),
            reference: reference.map(redacted),
            reason,
            subject: None,
            origin: None,
        }
    }

    /// The same problem, with where its variable was defined.
    pub fn from(self, origin: Origin) -> VariableProblem {
        VariableProblem {
            origin: Some(origin),
            ..self
        }
    }

    /// The same problem, shared with every variable that has `subject` and the same reason.
    pub fn about(self, subject: String) -> VariableProblem {
        VariableProblem {
            subject: Some(subject),
            ..self
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
    /// The manifest could not be opened or read, or is not UTF-8.
    #[error("cannot read manifest {path}: {source}")]
    ReadManifest {
        /// The manifest as `-m` named it, or as found (relative to the working directory).
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// A FIFO, a device, a directory, a socket: never read, so it cannot hang envoke.
    #[error("manifest {path} is {kind}, not a regular file")]
    ManifestNotAFile {
        /// The manifest as `-m` named it or as the search found it.
        path: PathBuf,
        /// What it is instead: `a directory`, `a FIFO`, `a device`, `a socket`.
        kind: &'static str,
    },
    /// The manifest is over [`MANIFEST_CAP`]; refused before it can fill memory.
    #[error("manifest {path} is larger than {} MiB", MANIFEST_CAP / 1024 / 1024)]
    ManifestTooLarge {
        /// The manifest as `-m` named it or as the search found it.
        path: PathBuf,
    },
    /// The manifest is not valid TOML or does not fit the schema.
    #[error("invalid manifest {path}: {source}")]
    ParseManifest {
        /// The manifest as `-m` named it or as the search found it.
        path: PathBuf,
        /// The parse error, with line and column.
        source: crate::manifest::ManifestError,
    },
    /// A setting in a manifest table other than `[vault]` has a value that cannot be used.
    #[error("invalid setting `{setting}` in {path}: {reason}")]
    InvalidSetting {
        /// The manifest the setting is in.
        path: PathBuf,
        /// The setting, e.g. `[process] stop_timeout`.
        setting: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// A setting from the manifest or the environment has a value that cannot be used.
    #[error("invalid {setting}: {reason}")]
    BadValue {
        /// Where it was found: `VAULT_TOKEN`, `` `namespace` in [vault] ``.
        setting: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// A Vault login method lacks a credential it cannot log in without.
    #[error("{needed_by} needs `{setting}`{}", or_variables(.variables))]
    MissingSetting {
        /// The method that needs it, as written in `[vault]`: `auth = "approle"`.
        needed_by: String,
        /// The `[vault]` key that would give it, e.g. `role_id`.
        setting: &'static str,
        /// The variables that would give it instead, joined with "or"; empty when none.
        variables: String,
    },
    /// A manifest found by searching (not named with `-m`) that another user could have written.
    #[error(
        "found {path}, but {reason}: not trusted (it chooses where tokens go); \
         name it with -m if you mean it"
    )]
    UntrustedManifest {
        /// The manifest found, relative to the working directory.
        path: PathBuf,
        /// Whose it is or who can write it: why it is not trusted.
        reason: String,
    },
    /// A manifest found by searching sets a connection or credential setting, and the user has
    /// not trusted it (with this content).
    #[error(
        "{path} (found by searching, not named with -m) sets {setting}, which decides where \
         envoke sends credentials or which it uses, and it is not trusted: review it, then run \
         `envoke trust {path}` (a changed file asks again), or name it with -m"
    )]
    UntrustedSettings {
        /// The manifest found, relative to the working directory.
        path: PathBuf,
        /// The first such setting it sets, e.g. `[vault] address`.
        setting: &'static str,
    },
    /// The store of trusted manifests cannot be believed or read.
    #[error("the store of trusted manifests is not usable: {reason}")]
    TrustStore {
        /// Which file, and why.
        reason: String,
    },
    /// `--profile NAME` names no `[profiles.NAME]` in the manifest.
    #[error("no profile `{name}` in the manifest (its profiles: {known})")]
    UnknownProfile {
        /// The profile asked for, escaped for the terminal.
        name: String,
        /// The manifest's profiles, comma-separated, or `none`.
        known: String,
    },
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
