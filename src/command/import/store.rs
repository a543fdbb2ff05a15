//! Storing an import without losing what is stored. Each destination is read first and merged
//! key by key ([`super::merge`]); what the import will do is said in names only; a stored value
//! that would change, or a stored secret that is not a JSON object, stops the import unless
//! `--force` is given, before anything is written. Writes do not overwrite a concurrent writer
//! blind: Vault KV v2 writes carry check-and-set with the version read (a KV v1 mount has no such
//! thing), and an AWS write first checks that `AWSCURRENT` still points at the version read,
//! and a secret that did not exist is created, never put over one made meanwhile.

use secrecy::SecretString;

use super::merge::{Changes, Merge, Single};
use super::{Destination, ImportError, Plan};
use crate::config::Config;
use crate::provider::FetchError;
use crate::provider::aws::{AwsProvider, Created};
use crate::provider::vault::{Stored, VaultProvider, VaultRequest};
use crate::secret::SecretValue;

/// How an import writes: `--force`, and whether notes are printed (`-q` silences them).
#[derive(Debug, Clone, Copy)]
pub struct Writing {
    /// `--force`: stored values may change, a non-object may be replaced.
    pub force: bool,
    /// `-q`: no notes on stderr.
    pub quiet: bool,
}

impl Writing {
    fn note(self, text: &str) {
        if !self.quiet {
            eprintln!("envoke: {text}");
        }
    }
}

/// Stores `plan`'s secrets at its destination, merged with what is there.
pub async fn store(plan: &Plan, config: &Config, writing: Writing) -> Result<(), ImportError> {
    let destination = plan.destination.to_string();
    let failed = |source| ImportError::Store {
        destination: destination.clone(),
        source,
    };
    match &plan.destination {
        Destination::Aws { prefix, split } => {
            let aws = AwsProvider::connect(&config.aws, &config.inherited)
                .await
                .map_err(failed)?;
            if *split {
                store_split(&aws, prefix, &plan.secrets, writing).await
            } else {
                store_aws(&aws, prefix, &plan.secrets, writing).await
            }
        }
        Destination::Vault { path } => {
            let settings = config
                .vault
                .as_ref()
                .ok_or_else(|| failed(FetchError::Other("Vault is not configured".to_owned())))?;
            let vault = VaultProvider::connect(settings).await.map_err(failed)?;
            let stored = store_vault(&vault, path, &plan.secrets, writing).await;
            vault.logout().await;
            stored
        }
    }
}

/// Says what an import does at `destination`; refuses what needs `--force` without it.
fn decide(destination: &str, changes: &Changes<'_>, writing: Writing) -> Result<(), ImportError> {
    writing.note(&format!("{destination}: {}", changes.describe()));
    match changes.needs_force() {
        Some(what) if !writing.force => Err(ImportError::WouldChange {
            destination: destination.to_owned(),
            what,
        }),
        _ => Ok(()),
    }
}

/// One JSON secret in Secrets Manager.
async fn store_aws(
    aws: &AwsProvider,
    name: &str,
    secrets: &[(String, SecretString)],
    writing: Writing,
) -> Result<(), ImportError> {
    let destination = format!("aws-sm://{name}");
    let failed = |source| ImportError::Store {
        destination: destination.clone(),
        source,
    };
    let current = aws.read_current(name).await.map_err(failed)?;
    let merge = Merge::of(current.as_ref().map(|(value, _)| value), secrets);
    decide(&destination, &merge.changes(), writing)?;
    if merge.is_noop() {
        return Ok(());
    }
    write_aws(
        aws,
        name,
        current.map(|(_, version)| version),
        &merge.document,
    )
    .await
    .map_err(|error| error.at(&destination))
}

/// `--split`: one secret per variable, `PREFIX/NAME`.
async fn store_split(
    aws: &AwsProvider,
    prefix: &str,
    secrets: &[(String, SecretString)],
    writing: Writing,
) -> Result<(), ImportError> {
    let destination = format!("aws-sm://{prefix}/*");
    let mut plans = Vec::new();
    for (name, value) in secrets {
        let secret = format!("{prefix}/{name}");
        let current = aws
            .read_current(&secret)
            .await
            .map_err(|source| ImportError::Store {
                destination: format!("aws-sm://{secret}"),
                source,
            })?;
        let single = Single::of(current.as_ref().map(|(value, _)| value), value);
        plans.push((
            secret,
            name,
            value,
            single,
            current.map(|(_, version)| version),
        ));
    }
    let named = |wanted: Single| -> Vec<String> {
        plans
            .iter()
            .filter(|(.., single, _)| *single == wanted)
            .map(|(_, name, ..)| (*name).clone())
            .collect()
    };
    let (added, changed, same) = (
        named(Single::Added),
        named(Single::Changed),
        named(Single::Same),
    );
    let changes = Changes {
        unit: "stored secret",
        added: &added,
        changed: &changed,
        same: &same,
        kept: &[],
        replaces_non_object: false,
    };
    decide(&destination, &changes, writing)?;
    for (secret, _, value, single, version) in plans {
        if single == Single::Same {
            continue;
        }
        let value = SecretValue::new(secrecy::ExposeSecret::expose_secret(value).to_owned());
        write_aws(aws, &secret, version, &value)
            .await
            .map_err(|error| error.at(&format!("aws-sm://{secret}")))?;
    }
    Ok(())
}

/// Why a write was not made.
enum WriteError {
    /// Another writer got there between the read and the write.
    Conflict(String),
    /// The backend refused or failed.
    Failed(FetchError),
}

impl WriteError {
    /// The import's error for this write at `destination`.
    fn at(self, destination: &str) -> ImportError {
        match self {
            WriteError::Conflict(detail) => ImportError::Conflict {
                destination: destination.to_owned(),
                detail,
            },
            WriteError::Failed(source) => ImportError::Store {
                destination: destination.to_owned(),
                source,
            },
        }
    }
}

/// Creates secret `name` (`read`: it did not exist) or puts a new version, once `AWSCURRENT`
/// is seen still on the version `read`.
async fn write_aws(
    aws: &AwsProvider,
    name: &str,
    read: Option<String>,
    value: &SecretValue,
) -> Result<(), WriteError> {
    let Some(read) = read else {
        return match aws.create(name, value).await.map_err(WriteError::Failed)? {
            Created::Yes => Ok(()),
            Created::AlreadyExists => Err(WriteError::Conflict(
                "someone created it while envoke was importing".to_owned(),
            )),
        };
    };
    let now = aws
        .current_version(name)
        .await
        .map_err(WriteError::Failed)?;
    if now.as_deref() != Some(read.as_str()) {
        return Err(WriteError::Conflict(format!(
            "AWSCURRENT moved from version {read} to {} while envoke was importing",
            now.as_deref().unwrap_or("none")
        )));
    }
    aws.put(name, value).await.map_err(WriteError::Failed)
}

/// One KV secret in Vault.
async fn store_vault(
    vault: &VaultProvider,
    path: &str,
    secrets: &[(String, SecretString)],
    writing: Writing,
) -> Result<(), ImportError> {
    let destination = format!("vault://{path}");
    let failed = |source| ImportError::Store {
        destination: destination.clone(),
        source,
    };
    let request = VaultRequest {
        path: path.to_owned(),
        version: None,
    };
    let current = match vault.read(&request).await {
        Ok(document) => Some(document),
        Err(FetchError::NotFound(_)) => None,
        Err(error) => return Err(failed(error)),
    };
    let merge = Merge::of(current.as_ref().map(|d| &d.value), secrets);
    decide(&destination, &merge.changes(), writing)?;
    if merge.is_noop() {
        return Ok(());
    }
    // KV v2 only: 0 means "only if it does not exist yet".
    let read_version = current
        .as_ref()
        .and_then(|d| d.version.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    match vault
        .store(path, &merge.document, Some(read_version))
        .await
        .map_err(failed)?
    {
        Stored::Written => Ok(()),
        Stored::Conflict => Err(ImportError::Conflict {
            destination,
            detail: format!(
                "its version is no longer {read_version} (check-and-set refused the write)"
            ),
        }),
    }
}
