//! References to values: the step between a validated [`Config`] and the child's environment.
//!
//! Identical references are fetched once; variables that name the same Vault path share one read
//! (one lease, so a username and a password belong together). AWS and Vault are asked at the
//! same time, and each provider runs its own requests concurrently. Every variable gets an
//! [`Outcome`]; `run` refuses to start when any failed, `check` reports them all.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::{Config, Expansion, Origin, Variable, VariableProblem};
use crate::manifest::is_variable_name;
use crate::provider::aws::AwsRequest;
use crate::provider::vault::VaultRequest;
use crate::provider::{Backends, Document, DocumentKind, FetchError, Lease};
use crate::reference::{AwsVersion, KeyPath, Reference};
use crate::sanitize::{escaped, one_line, redacted};
use crate::secret::{Digest, SecretValue, SelectError};

/// One distinct fetch: identical references (and different keys of one secret) share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchKey {
    /// A Secrets Manager secret at a version.
    Aws(AwsRequest),
    /// A Vault path, optionally at a KV v2 version.
    Vault(VaultRequest),
}

impl FetchKey {
    /// The fetch a reference needs.
    pub fn of(reference: &Reference) -> FetchKey {
        match reference {
            Reference::Aws(r) => FetchKey::Aws(AwsRequest {
                secret_id: r.secret_id.clone(),
                region: r.region.clone(),
                version: r.version.clone(),
            }),
            Reference::Vault(r) => FetchKey::Vault(VaultRequest {
                path: r.path.clone(),
                version: r.version,
            }),
        }
    }

    /// Whether it is pinned to a version that never changes (and so is never polled).
    pub fn pinned(&self) -> bool {
        match self {
            FetchKey::Aws(r) => matches!(r.version, AwsVersion::Id(_)),
            FetchKey::Vault(r) => r.version.is_some(),
        }
    }
}

impl std::fmt::Display for FetchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchKey::Aws(r) => match &r.region {
                Some(region) => write!(f, "aws-sm://{}?region={region}", r.secret_id),
                None => write!(f, "aws-sm://{}", r.secret_id),
            },
            FetchKey::Vault(r) => write!(f, "vault://{}", r.path),
        }
    }
}

/// What envoke remembers of a fetched document: enough to detect a change, never the value.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// What was fetched: the secret and the version asked for.
    pub key: FetchKey,
    /// The version the backend answered with (AWS version id, KV v2 version), when it says.
    pub version: Option<String>,
    /// Which kind of document, so the watcher knows how to check it.
    pub kind: DocumentKind,
    /// A keyed hash of the whole document.
    pub digest: Digest,
    /// The Vault lease the document came with (dynamic credentials), if any.
    pub lease: Option<Lease>,
}

/// What became of one referenced variable.
#[derive(Debug)]
pub struct Outcome {
    /// The variable.
    pub name: String,
    /// The reference it was resolved from.
    pub reference: Reference,
    /// The version the value came from, when known.
    pub version: Option<String>,
    /// The value, or why there is none.
    pub result: Result<SecretValue, Failure>,
    /// Where the variable (or the expanded one it comes from) was defined.
    pub origin: Origin,
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
    /// An expanded secret (`#*`) cannot become variables.
    #[error("{0}")]
    Expand(String),
}

impl Failure {
    /// What the failure is about when it is not one variable alone (see
    /// [`VariableProblem::subject`]): the backend, for what fails the same way for every secret
    /// it serves (it cannot be reached, the credentials are refused or missing, no region); the
    /// secret, for what is wrong with it (not found, denied, unusable). A key that is missing
    /// or unusable is the variable's own.
    pub fn subject(&self, reference: &Reference) -> Option<String> {
        let backend = match reference {
            Reference::Aws(_) => "AWS",
            Reference::Vault(_) => "Vault",
        };
        match self {
            Failure::Fetch(
                FetchError::Unreachable { .. }
                | FetchError::BadCredentials(_)
                | FetchError::Other(_),
            ) => Some(backend.to_owned()),
            Failure::Fetch(
                FetchError::NotFound(_) | FetchError::AccessDenied(_) | FetchError::Invalid(_),
            ) => Some(redacted(&FetchKey::of(reference).to_string())),
            Failure::Select(_) | Failure::Expand(_) => None,
        }
    }

    /// The status word `envoke check` reports.
    pub fn status(&self) -> &'static str {
        match self {
            Failure::Fetch(error) => error.status(),
            Failure::Select(SelectError::KeyMissing { .. }) => "key missing",
            Failure::Select(_) | Failure::Expand(_) => "invalid",
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

    /// One audit event per variable that has a value: which version of which secret, fetched as
    /// whom, went to which process. `cause` is `start` for the first launch, or the
    /// `--on-change` action that a re-resolution after a change served (`restart`, `signal`,
    /// `none`, `exit`), or `check`; `pid` is the process that got the values (envoke's own with
    /// `--exec`), `None` when none did (`none`, `exit`, `check`). Never a value.
    pub fn audit(&self, backends: &Backends, cause: &str, pid: Option<u32>) {
        for outcome in self.outcomes.iter().filter(|o| o.result.is_ok()) {
            let key = FetchKey::of(&outcome.reference);
            let lease = self
                .fetched
                .iter()
                .find(|f| f.key == key)
                .and_then(|f| f.lease.as_ref())
                .map(|lease| one_line(&lease.id));
            let backend = match outcome.reference {
                Reference::Aws(_) => "aws",
                Reference::Vault(_) => "vault",
            };
            tracing::info!(
                target: "envoke::audit",
                event = "secret.resolve",
                variable = escaped(&outcome.name).as_str(),
                reference = redacted(&outcome.reference.to_string()).as_str(),
                backend,
                version = outcome.version.as_deref().map(one_line).as_deref(),
                lease = lease.as_deref(),
                identity = backends.identity(&outcome.reference).as_str(),
                pid,
                cause,
                "secret resolved for the command"
            );
        }
    }

    /// What the command got, in a few words for a person: `7 secrets: 3 from AWS us-east-1, 4
    /// from Vault` (the variables that have a value, by backend and AWS region), or `no
    /// secrets`.
    pub fn summary(&self, backends: &Backends) -> String {
        let default_region = backends.aws().map(|aws| aws.region().to_owned()).ok();
        let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
        for outcome in self.outcomes.iter().filter(|o| o.result.is_ok()) {
            let source = match &outcome.reference {
                Reference::Aws(r) => match r.region.as_ref().or(default_region.as_ref()) {
                    Some(region) => format!("AWS {}", escaped(region)),
                    None => "AWS".to_owned(),
                },
                Reference::Vault(_) => "Vault".to_owned(),
            };
            *by_source.entry(source).or_default() += 1;
        }
        let total: usize = by_source.values().sum();
        match total {
            0 => "no secrets".to_owned(),
            _ => {
                let sources: Vec<String> = by_source
                    .iter()
                    .map(|(source, count)| format!("{count} from {source}"))
                    .collect();
                let plural = if total == 1 { "" } else { "s" };
                format!("{total} secret{plural}: {}", sources.join(", "))
            }
        }
    }

    /// The variables that have no value, and why.
    pub fn failures(&self) -> Vec<VariableProblem> {
        self.outcomes
            .iter()
            .filter_map(|outcome| {
                let failure = outcome.result.as_ref().err()?;
                let problem = VariableProblem::new(
                    &outcome.name,
                    Some(&outcome.reference.to_string()),
                    failure.to_string(),
                );
                Some(match failure.subject(&outcome.reference) {
                    Some(subject) => problem.about(subject),
                    None => problem,
                })
            })
            .collect()
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
    let plan = Plan::new(config, wanted, pins);
    let documents = fetch(backends, plan.requests()).await;
    plan.assemble(config, &documents)
}

/// Which fetches a resolution makes: the wanted references' keys, each once.
struct Plan<'a, W> {
    wanted: W,
    pins: &'a HashMap<FetchKey, String>,
    /// Each wanted fetch key once, in key order.
    keys: BTreeSet<FetchKey>,
}

impl<'a, W: Fn(&FetchKey) -> bool> Plan<'a, W> {
    fn new(config: &Config, wanted: W, pins: &'a HashMap<FetchKey, String>) -> Self {
        let keys = config
            .references()
            .map(|(_, reference)| FetchKey::of(reference))
            .filter(|key| wanted(key))
            .collect();
        Plan { wanted, pins, keys }
    }

    /// The request actually sent for a key: an AWS secret the watcher pinned is fetched by the
    /// version id its stage moved to.
    fn effective(&self, key: &FetchKey) -> FetchKey {
        match (self.pins.get(key), key) {
            (Some(version_id), FetchKey::Aws(request)) => FetchKey::Aws(AwsRequest {
                version: AwsVersion::Id(version_id.clone()),
                ..request.clone()
            }),
            (_, key) => key.clone(),
        }
    }

    /// The distinct requests, per backend.
    fn requests(&self) -> (Vec<AwsRequest>, Vec<VaultRequest>) {
        let mut aws = BTreeSet::new();
        let mut vault = BTreeSet::new();
        for key in &self.keys {
            match self.effective(key) {
                FetchKey::Aws(request) => aws.insert(request),
                FetchKey::Vault(request) => vault.insert(request),
            };
        }
        (aws.into_iter().collect(), vault.into_iter().collect())
    }

    /// What was fetched, and each wanted variable's outcome, from the documents.
    fn assemble(
        &self,
        config: &Config,
        documents: &HashMap<FetchKey, Result<Document, FetchError>>,
    ) -> Resolution {
        let document = |key: &FetchKey| documents.get(&self.effective(key));
        let fetched = self
            .keys
            .iter()
            .filter_map(|key| {
                let document = document(key)?.as_ref().ok()?;
                Some(Fetched {
                    key: key.clone(),
                    version: document.version.clone(),
                    kind: document.kind.clone(),
                    digest: document.value.keyed_digest(),
                    lease: document.lease.clone(),
                })
            })
            .collect();
        let explicit = config.by_name();
        let outcomes = config
            .references()
            .filter(|(_, reference)| (self.wanted)(&FetchKey::of(reference)))
            .flat_map(|(variable, reference)| {
                let document = document(&FetchKey::of(reference));
                match &variable.expand {
                    Some(expansion) => expand(variable, reference, expansion, document, &explicit),
                    None => {
                        let (version, result) = select(document, reference.key(), !variable.file);
                        vec![Outcome {
                            name: variable.name.clone(),
                            reference: reference.clone(),
                            version,
                            result,
                            origin: variable.origin,
                        }]
                    }
                }
            })
            .collect();
        Resolution { outcomes, fetched }
    }
}

/// Asks both backends at once; a backend that could not be set up answers every request of its
/// own with why.
async fn fetch(
    backends: &Backends,
    (aws_requests, vault_requests): (Vec<AwsRequest>, Vec<VaultRequest>),
) -> HashMap<FetchKey, Result<Document, FetchError>> {
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
    aws_documents
        .into_iter()
        .map(|(request, document)| (FetchKey::Aws(request), document))
        .chain(
            vault_documents
                .into_iter()
                .map(|(request, document)| (FetchKey::Vault(request), document)),
        )
        .collect()
}

/// An expanded reference (`#*`): an outcome per key of the document, named by the expansion;
/// or one failed outcome, under the entry's own name, when the document is not there or not a
/// JSON object. A key whose variable is also defined explicitly fails, naming both.
fn expand(
    variable: &Variable,
    reference: &Reference,
    expansion: &Expansion,
    document: Option<&Result<Document, FetchError>>,
    explicit: &BTreeMap<&str, &Variable>,
) -> Vec<Outcome> {
    let keys = match keys_to_expand(document) {
        Ok(keys) => keys,
        Err(failure) => {
            return vec![Outcome {
                name: variable.name.clone(),
                reference: reference.clone(),
                version: None,
                result: Err(failure),
                origin: variable.origin,
            }];
        }
    };
    let keys: Vec<String> = match &expansion.keys {
        Some(wanted) => wanted.clone(),
        None => keys,
    };
    keys.into_iter()
        .map(|key| {
            let name = expansion.name(&key);
            let reference = reference.with_key(KeyPath::Key(key));
            let (version, result) = match unusable_name(&name, &variable.name, explicit) {
                Some(failure) => (None, Err(failure)),
                None => select(document, reference.key(), true),
            };
            Outcome {
                name,
                reference,
                version,
                result,
                origin: variable.origin,
            }
        })
        .collect()
}

/// The top-level keys of an expanded document, or why it has none.
fn keys_to_expand(document: Option<&Result<Document, FetchError>>) -> Result<Vec<String>, Failure> {
    match document {
        Some(Ok(document)) => document.value.top_level_keys().ok_or_else(|| {
            Failure::Expand(
                "the secret is not a JSON object, so it has no keys to expand".to_owned(),
            )
        }),
        other => Err(select(other, None, false)
            .1
            .err()
            .unwrap_or_else(|| FetchError::Other("no answer from the backend".to_owned()).into())),
    }
}

/// Why the variable `name`, made from a key of the expanded entry `entry`, cannot be one.
fn unusable_name(name: &str, entry: &str, explicit: &BTreeMap<&str, &Variable>) -> Option<Failure> {
    if explicit.contains_key(name) {
        Some(Failure::Expand(format!(
            "{name}, from the keys of {entry}, is also defined on its own; rename one (`prefix` \
             under the expansion)"
        )))
    } else if !is_variable_name(name) {
        Some(Failure::Expand(format!(
            "the key makes `{}`, which is not a variable name; set a `prefix`",
            crate::sanitize::escaped(name)
        )))
    } else {
        None
    }
}

/// The value of one variable from its document; `environment` when it becomes an environment
/// variable (which cannot hold a NUL byte; a secret file can).
fn select(
    document: Option<&Result<Document, FetchError>>,
    key: Option<&KeyPath>,
    environment: bool,
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
        .and_then(|v| {
            if environment {
                v.check_environment_safe()?;
            }
            Ok(v)
        })
        .map_err(Failure::from);
    (document.version.clone(), result)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::config::{Flags, Purpose};

    fn config(manifest: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envoke.toml");
        std::fs::write(&path, manifest).unwrap();
        let flags = Flags {
            manifest: Some(path),
            ..Flags::default()
        };
        let environment = vec![(OsString::from("VAULT_TOKEN"), OsString::from("t"))];
        Config::load(&flags, Purpose::Check, environment, None, dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    type Documents = HashMap<FetchKey, Result<Document, FetchError>>;

    fn key(reference: &str) -> FetchKey {
        FetchKey::of(&Reference::parse(reference).unwrap())
    }

    fn document(text: &str, version: &str) -> Result<Document, FetchError> {
        Ok(Document {
            value: SecretValue::new(text.to_owned()),
            version: Some(version.to_owned()),
            lease: None,
            kind: DocumentKind::VaultKv1,
        })
    }

    /// The documents most tests fetch: a JSON object at Vault's secret/rds (version 3) and a
    /// plain-text AWS secret `token` (version v1).
    fn documents() -> Documents {
        HashMap::from([
            (
                key("vault://secret/rds"),
                document(
                    r#"{"username": "app", "password": "pw", "port": 5432}"#,
                    "3",
                ),
            ),
            (key("aws-sm://token"), document("plain text", "v1")),
        ])
    }

    fn assemble(config: &Config, documents: &Documents) -> Resolution {
        Plan::new(config, |_| true, &HashMap::new()).assemble(config, documents)
    }

    /// Each outcome as `NAME=value@version` or `NAME: why`.
    fn shown(resolution: &Resolution) -> Vec<String> {
        resolution
            .outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(value) => format!(
                    "{}={}@{}",
                    o.name,
                    value.expose(),
                    o.version.as_deref().unwrap_or("-")
                ),
                Err(failure) => format!("{}: {failure}", o.name),
            })
            .collect()
    }

    #[test]
    fn keys_come_from_a_json_document_and_a_plain_text_one_is_taken_whole() {
        let config = config(
            r#"[env]
USER  = "vault://secret/rds#username"
PASS  = "vault://secret/rds#password"
PORT  = "vault://secret/rds#port"
TOKEN = "aws-sm://token"
"#,
        );
        let resolution = assemble(&config, &documents());
        assert_eq!(
            shown(&resolution),
            // The manifest's order: by name.
            [
                "PASS=pw@3",
                "PORT=5432@3",
                "TOKEN=plain text@v1",
                "USER=app@3",
            ]
        );
        // One fetch per document, however many variables name it.
        let fetched: Vec<String> = resolution
            .fetched
            .iter()
            .map(|f| f.key.to_string())
            .collect();
        assert_eq!(fetched, ["aws-sm://token", "vault://secret/rds"]);
    }

    #[test]
    fn a_missing_key_fails_naming_the_variable_the_reference_and_the_keys_there_are() {
        let config = config(
            "[env]\nDB_HOST = \"vault://secret/rds#host\"\nWORD = \"aws-sm://token#word\"\n",
        );
        let resolution = assemble(&config, &documents());
        let failures: Vec<String> = resolution
            .failures()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures[0].starts_with("DB_HOST (vault://secret/rds#host): key `host` missing;"),
            "{failures:?}"
        );
        assert!(failures[0].contains("username"), "{failures:?}");
        assert!(!failures[0].contains("app") && !failures[0].contains("pw"));
        assert_eq!(
            failures[1],
            "WORD (aws-sm://token#word): secret is not JSON, so it has no keys (drop the #KEY \
             to get the whole value)"
        );
        let statuses: Vec<_> = resolution
            .outcomes
            .iter()
            .map(|o| o.result.as_ref().unwrap_err().status())
            .collect();
        assert_eq!(statuses, ["key missing", "invalid"]);
    }

    #[test]
    fn an_expansion_makes_a_variable_per_key_with_its_prefix_or_only_the_keys_asked_for() {
        let config = config(
            r#"[env]
DB = "vault://secret/rds#*"
PG = { ref = "vault://secret/rds", expand = true, prefix = "PG", keys = ["port", "host"] }
"#,
        );
        let resolution = assemble(&config, &documents());
        let mut shown = shown(&resolution);
        // The document's keys come in the JSON parser's order; the asked-for keys in theirs.
        shown[..3].sort();
        assert_eq!(
            shown[..3],
            ["DB_PASSWORD=pw@3", "DB_PORT=5432@3", "DB_USERNAME=app@3"]
        );
        assert_eq!(shown[3], "PGPORT=5432@3");
        assert!(
            shown[4].starts_with("PGHOST: key `host` missing;"),
            "{shown:?}"
        );
        let reference = resolution.outcomes[4].reference.to_string();
        assert_eq!(reference, "vault://secret/rds#host");
    }

    #[test]
    fn an_expansion_refuses_a_clash_a_bad_name_and_a_document_without_keys() {
        let config = config(
            r#"[env]
DB_USERNAME = "mine"
DB  = "vault://secret/rds#*"
ODD = { ref = "vault://secret/odd", expand = true, prefix = "" }
TXT = "aws-sm://token#*"
"#,
        );
        let mut documents = documents();
        documents.insert(key("vault://secret/odd"), document(r#"{"1st": "x"}"#, "1"));
        let shown = shown(&assemble(&config, &documents));
        assert!(
            shown.contains(
                &"DB_USERNAME: DB_USERNAME, from the keys of DB, is also defined on its own; \
                  rename one (`prefix` under the expansion)"
                    .to_owned()
            ),
            "{shown:?}"
        );
        assert!(
            shown.contains(
                &"1ST: the key makes `1ST`, which is not a variable name; set a `prefix`"
                    .to_owned()
            ),
            "{shown:?}"
        );
        assert!(
            shown.contains(
                &"TXT: the secret is not a JSON object, so it has no keys to expand".to_owned()
            ),
            "{shown:?}"
        );
    }

    #[test]
    fn a_failed_fetch_or_no_answer_fails_each_variable_of_that_document() {
        let config = config(
            "[env]\nA = \"vault://secret/rds#username\"\nB = \"vault://secret/rds\"\nC = \
             \"aws-sm://token\"\nD = \"aws-sm://token#*\"\n",
        );
        let documents = HashMap::from([(
            key("vault://secret/rds"),
            Err(FetchError::AccessDenied(String::new())),
        )]);
        let resolution = assemble(&config, &documents);
        assert_eq!(
            shown(&resolution),
            [
                "A: access denied",
                "B: access denied",
                "C: no answer from the backend",
                "D: no answer from the backend"
            ]
        );
        assert!(resolution.fetched.is_empty());
    }

    #[test]
    fn a_nul_byte_is_refused_in_a_variable_and_kept_in_a_file() {
        let config = config(
            r#"[env]
AS_VARIABLE = "vault://secret/bin#blob"
AS_FILE     = { ref = "vault://secret/bin#blob", file = true }
"#,
        );
        let documents = HashMap::from([(
            key("vault://secret/bin"),
            document(r#"{"blob": "a\u0000b"}"#, "1"),
        )]);
        let resolution = assemble(&config, &documents);
        assert_eq!(
            shown(&resolution),
            [
                "AS_FILE=a\0b@1",
                "AS_VARIABLE: value contains a NUL byte, which an environment variable cannot \
                 hold (`file = true` can)",
            ]
        );
    }

    #[test]
    fn only_wanted_fetches_are_assembled_and_a_pinned_one_is_read_at_its_version() {
        let config =
            config("[env]\nUSER = \"vault://secret/rds#username\"\nTOKEN = \"aws-sm://token\"\n");
        let token = key("aws-sm://token");
        let pins = HashMap::from([(token.clone(), "vid-2".to_owned())]);
        let plan = Plan::new(&config, |k| matches!(k, FetchKey::Aws(_)), &pins);
        let (aws, vault) = plan.requests();
        assert!(vault.is_empty());
        assert_eq!(aws.len(), 1);
        assert_eq!(aws[0].version, AwsVersion::Id("vid-2".to_owned()));
        // The pinned document answers for the reference's own key.
        let documents =
            HashMap::from([(FetchKey::Aws(aws[0].clone()), document("rotated", "vid-2"))]);
        let resolution = plan.assemble(&config, &documents);
        assert_eq!(shown(&resolution), ["TOKEN=rotated@vid-2"]);
        assert_eq!(resolution.fetched.len(), 1);
        assert_eq!(resolution.fetched[0].key, token);
    }
}
