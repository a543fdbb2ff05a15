//! References to values: the step between a validated [`Config`] and the child's environment.
//!
//! Identical references are fetched once; variables that name the same Vault path share one read
//! (one lease, so a username and a password belong together). AWS and Vault are asked at the
//! same time, and each provider runs its own requests concurrently. A backend that no reference
//! uses is never contacted. Every variable gets an [`Outcome`]; `run` refuses to start when any
//! failed, `check` reports them all.

use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;

use crate::config::{Config, Source};
use crate::provider::aws::{AwsProvider, AwsRequest};
use crate::provider::vault::VaultProvider;
use crate::provider::{Document, FetchError, Lease};
use crate::reference::Reference;
use crate::secret::{SecretValue, SelectError};

/// What became of one referenced variable.
#[derive(Debug)]
pub struct Outcome {
    /// The variable name.
    pub name: String,
    /// Its reference.
    pub reference: Reference,
    /// The version the value came from, when known.
    pub version: Option<String>,
    /// The value, or why there is none.
    pub result: Result<SecretValue, Failure>,
}

/// Why a variable has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document has no such key, or the value cannot be an environment variable.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The reference itself is invalid (reported by `check`).
    #[error("{0}")]
    Invalid(String),
}

impl Failure {
    /// The status word `envoke check` reports.
    pub fn status(&self) -> &'static str {
        match self {
            Failure::Fetch(error) => error.status(),
            Failure::Select(SelectError::KeyMissing(_)) => "key missing",
            Failure::Select(_) | Failure::Invalid(_) => "invalid",
        }
    }
}

/// The result of resolving a configuration.
#[derive(Debug, Default)]
pub struct Resolution {
    /// One outcome per referenced variable, in the configuration's order.
    pub outcomes: Vec<Outcome>,
    /// Vault leases obtained while resolving.
    pub leases: Vec<Lease>,
}

impl Resolution {
    /// Whether every variable has a value.
    pub fn all_ok(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }
}

/// The connected backends; `None` for one that no reference uses.
pub struct Backends {
    /// AWS, or why it could not be set up.
    pub aws: Option<Result<AwsProvider, FetchError>>,
    /// Vault, or why it could not be set up.
    pub vault: Option<Result<VaultProvider, FetchError>>,
}

impl Backends {
    /// Sets up the backends that `config`'s references need, and only those.
    pub async fn connect(config: &Config) -> Backends {
        let uses = |provider: &str| config.references().any(|(_, r)| r.provider() == provider);
        let aws = if uses("aws") {
            Some(AwsProvider::connect(&config.aws).await)
        } else {
            None
        };
        let vault = uses("vault").then(|| VaultProvider::connect(&config.vault));
        Backends { aws, vault }
    }
}

/// Fetches every reference in `config` and selects each variable's value.
pub async fn resolve(config: &Config, backends: &Backends) -> Resolution {
    let mut aws_requests = Vec::new();
    let mut vault_requests = Vec::new();
    for (_, reference) in config.references() {
        match reference {
            Reference::Aws(r) => aws_requests.push(AwsRequest {
                secret_id: r.secret_id.clone(),
                version: r.version.clone(),
            }),
            Reference::Vault(r) => vault_requests.push((r.path.clone(), r.version)),
        }
    }
    dedupe(&mut aws_requests);
    dedupe(&mut vault_requests);

    let aws = async {
        match &backends.aws {
            None => HashMap::new(),
            Some(Ok(provider)) => provider.fetch_all(aws_requests).await,
            Some(Err(error)) => aws_requests
                .into_iter()
                .map(|r| (r, Err(error.clone())))
                .collect(),
        }
    };
    let vault = async {
        match &backends.vault {
            None => HashMap::new(),
            Some(Ok(provider)) => join_all(vault_requests.into_iter().map(
                |(path, version)| async move {
                    let result = provider.read(&path, version).await;
                    ((path, version), result)
                },
            ))
            .await
            .into_iter()
            .collect(),
            Some(Err(error)) => vault_requests
                .into_iter()
                .map(|r| (r, Err(error.clone())))
                .collect::<HashMap<_, _>>(),
        }
    };
    let (aws_documents, vault_documents) = futures::join!(aws, vault);

    let leases = vault_documents
        .values()
        .filter_map(|d| d.as_ref().ok()?.lease.clone())
        .collect();
    let outcomes = config
        .references()
        .map(|(variable, reference)| {
            let (document, key) = match reference {
                Reference::Aws(r) => (
                    aws_documents.get(&AwsRequest {
                        secret_id: r.secret_id.clone(),
                        version: r.version.clone(),
                    }),
                    &r.key,
                ),
                Reference::Vault(r) => (vault_documents.get(&(r.path.clone(), r.version)), &r.key),
            };
            let (version, result) = select(document, key.as_ref());
            Outcome {
                name: variable.name.clone(),
                reference: reference.clone(),
                version,
                result,
            }
        })
        .collect();
    Resolution { outcomes, leases }
}

fn select(
    document: Option<&Result<Document, FetchError>>,
    key: Option<&crate::reference::KeyPath>,
) -> (Option<String>, Result<SecretValue, Failure>) {
    let document = match document {
        Some(Ok(document)) => document,
        Some(Err(error)) => return (None, Err(error.clone().into())),
        None => {
            return (
                None,
                Err(FetchError::Other("no answer from the backend".to_owned()).into()),
            );
        }
    };
    let value = match key {
        Some(key) => document.value.select(key),
        None => Ok(SecretValue::new(document.value.expose().to_owned())),
    };
    let result = value
        .and_then(|v| v.check_environment_safe().map(|()| v))
        .map_err(Failure::from);
    (document.version.clone(), result)
}

fn dedupe<T: Ord + Clone>(items: &mut Vec<T>) {
    items.sort();
    items.dedup();
}

/// The literal variables of `config` with their values, for building the environment.
pub fn literals(config: &Config) -> BTreeMap<&str, &str> {
    config
        .variables
        .iter()
        .filter_map(|v| match &v.source {
            Source::Literal(text) => Some((v.name.as_str(), text.as_str())),
            Source::Reference(_) => None,
        })
        .collect()
}
