//! References to values: the step between a validated [`Config`] and the child's environment.
//!
//! Identical references are fetched once; variables that name the same Vault path share one read
//! (one lease, so a username and a password belong together). AWS and Vault are asked at the
//! same time, and each provider runs its own requests concurrently. A backend that no reference
//! uses is never contacted. Every variable gets an [`Outcome`]; `run` refuses to start when any
//! failed, `check` reports them all.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Config, Source};
use crate::provider::aws::{AwsProvider, AwsRequest};
use crate::provider::vault::VaultProvider;
use crate::provider::{Document, DocumentKind, FetchError, Lease};
use crate::reference::Reference;
use crate::secret::{Digest, SecretValue, SelectError};

/// One distinct fetch: identical references (and different keys of one secret) share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchKey {
    /// A Secrets Manager secret at a version.
    Aws(AwsRequest),
    /// A Vault path, optionally at a KV v2 version.
    Vault {
        /// The path as written.
        path: String,
        /// The pinned version.
        version: Option<u64>,
    },
}

impl FetchKey {
    /// The fetch a reference needs.
    pub fn of(reference: &Reference) -> FetchKey {
        match reference {
            Reference::Aws(r) => FetchKey::Aws(AwsRequest {
                secret_id: r.secret_id.clone(),
                version: r.version.clone(),
            }),
            Reference::Vault(r) => FetchKey::Vault {
                path: r.path.clone(),
                version: r.version,
            },
        }
    }

    /// Whether it is pinned to a version that never changes (and so is never polled).
    pub fn pinned(&self) -> bool {
        match self {
            FetchKey::Aws(r) => matches!(r.version, crate::reference::AwsVersion::Id(_)),
            FetchKey::Vault { version, .. } => version.is_some(),
        }
    }
}

impl std::fmt::Display for FetchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchKey::Aws(r) => write!(f, "aws-sm://{}", r.secret_id),
            FetchKey::Vault { path, .. } => write!(f, "vault://{path}"),
        }
    }
}

/// What envoke remembers of a fetched document: enough to detect a change, never the value.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Which fetch.
    pub key: FetchKey,
    /// The version it returned.
    pub version: Option<String>,
    /// Where it came from.
    pub kind: DocumentKind,
    /// A keyed hash of the whole document.
    pub digest: Digest,
    /// Its Vault lease, if any.
    pub lease: Option<Lease>,
}

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
    /// One entry per document fetched.
    pub fetched: Vec<Fetched>,
}

impl Resolution {
    /// The Vault leases obtained.
    pub fn leases(&self) -> Vec<Lease> {
        self.fetched
            .iter()
            .filter_map(|f| f.lease.clone())
            .collect()
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

    /// The AWS provider, or why there is none.
    pub fn aws(&self) -> Result<&AwsProvider, FetchError> {
        match &self.aws {
            Some(Ok(provider)) => Ok(provider),
            Some(Err(error)) => Err(error.clone()),
            None => Err(FetchError::Other("AWS is not configured".to_owned())),
        }
    }

    /// The Vault provider, or why there is none.
    pub fn vault(&self) -> Result<&VaultProvider, FetchError> {
        match &self.vault {
            Some(Ok(provider)) => Ok(provider),
            Some(Err(error)) => Err(error.clone()),
            None => Err(FetchError::Other("Vault is not configured".to_owned())),
        }
    }
}

/// Fetches every reference in `config` and selects each variable's value.
pub async fn resolve(config: &Config, backends: &Backends) -> Resolution {
    resolve_only(config, backends, |_| true, &HashMap::new()).await
}

/// Like [`resolve`], for the variables whose fetch `wanted` accepts. `pins` fetches some AWS
/// secrets at a known version id instead of by stage (the watcher knows which version a stage
/// moved to); results are still reported under the reference's own fetch key.
pub async fn resolve_only(
    config: &Config,
    backends: &Backends,
    wanted: impl Fn(&FetchKey) -> bool,
    pins: &HashMap<FetchKey, String>,
) -> Resolution {
    let effective = |key: FetchKey| match (pins.get(&key), key) {
        (Some(version_id), FetchKey::Aws(request)) => FetchKey::Aws(AwsRequest {
            secret_id: request.secret_id,
            version: crate::reference::AwsVersion::Id(version_id.clone()),
        }),
        (_, key) => key,
    };
    let mut aws_requests = Vec::new();
    let mut vault_requests = Vec::new();
    for (_, reference) in config.references() {
        let key = FetchKey::of(reference);
        if !wanted(&key) {
            continue;
        }
        match effective(key) {
            FetchKey::Aws(request) => aws_requests.push(request),
            FetchKey::Vault { path, version } => vault_requests.push((path, version)),
        }
    }
    dedupe(&mut aws_requests);
    dedupe(&mut vault_requests);

    let aws = async {
        match backends.aws() {
            _ if aws_requests.is_empty() => HashMap::new(),
            Ok(provider) => provider.fetch_all(aws_requests).await,
            Err(error) => aws_requests
                .into_iter()
                .map(|r| (r, Err(error.clone())))
                .collect(),
        }
    };
    let vault = async {
        match backends.vault() {
            _ if vault_requests.is_empty() => HashMap::new(),
            Ok(provider) => provider.read_all(vault_requests).await,
            Err(error) => vault_requests
                .into_iter()
                .map(|r| (r, Err(error.clone())))
                .collect(),
        }
    };
    let (aws_documents, vault_documents) = futures::join!(aws, vault);
    let documents: HashMap<FetchKey, Result<Document, FetchError>> = aws_documents
        .into_iter()
        .map(|(request, document)| (FetchKey::Aws(request), document))
        .chain(
            vault_documents
                .into_iter()
                .map(|((path, version), document)| (FetchKey::Vault { path, version }, document)),
        )
        .collect();

    // Collected through a BTreeSet: one entry per fetch, in key order.
    let fetched: Vec<Fetched> = config
        .references()
        .map(|(_, reference)| FetchKey::of(reference))
        .filter(|key| wanted(key))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|key| {
            let document = documents.get(&effective(key.clone()))?.as_ref().ok()?;
            Some(Fetched {
                key,
                version: document.version.clone(),
                kind: document.kind.clone(),
                digest: document.value.keyed_digest(),
                lease: document.lease.clone(),
            })
        })
        .collect();
    let outcomes = config
        .references()
        .filter(|(_, reference)| wanted(&FetchKey::of(reference)))
        .map(|(variable, reference)| {
            let key = match reference {
                Reference::Aws(r) => &r.key,
                Reference::Vault(r) => &r.key,
            };
            let document = documents.get(&effective(FetchKey::of(reference)));
            let (version, result) = select(document, key.as_ref());
            Outcome {
                name: variable.name.clone(),
                reference: reference.clone(),
                version,
                result,
            }
        })
        .collect();
    Resolution { outcomes, fetched }
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
