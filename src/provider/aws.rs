//! AWS Secrets Manager.
//!
//! Connection settings come from aws-config's default chain (AWS_REGION, AWS_PROFILE,
//! AWS_ENDPOINT_URL[_SECRETS_MANAGER], environment keys, profiles, SSO, web identity, ECS and EC2
//! roles), overridden by the manifest's `[aws]` table. With `role_arn`, the chain's credentials
//! only assume that role (STS AssumeRole); every Secrets Manager call uses the role's.
//!
//! The settings that end up in HTTP headers and host names (regions, keys, tokens, profiles,
//! endpoints) are checked for control characters before the SDK sees them: the SDK panics on a
//! header value with a newline in it, and a trailing newline is what a mounted Kubernetes secret
//! or `echo` into a file gives.
//!
//! Fetching is batched: references to the current version go through BatchGetSecretValue, 20 ids
//! a call (the API's limit for `SecretIdList`), per region, every call in flight at once.
//! References pinned to a stage or version id need GetSecretValue, one call each, also
//! concurrent. An id that a batch answer does not account for (neither a value nor an error
//! matches it) is fetched again on its own rather than reported missing, and so is every id of a
//! batch that is throttled or denied (a policy may allow GetSecretValue but not
//! BatchGetSecretValue, the usual ECS task role).

mod http;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType};
use aws_smithy_types::body::SdkBody;
use futures::future::join_all;
use zeroize::Zeroize;

use super::{Document, DocumentKind, FetchError, body_excerpt, root_cause};
use crate::config::Environment;
use crate::config::aws::AwsSettings;
use crate::reference::AwsVersion;
use crate::sanitize::one_line;
use crate::secret::SecretValue;

/// The largest answer envoke reads: a BatchGetSecretValue of 20 secrets of Secrets Manager's
/// maximum 64 KiB, JSON-escaped, stays well below it.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Caps every Secrets Manager answer at [`MAX_BODY`]: refused at once when its Content-Length is
/// larger, and as soon as more bytes arrive otherwise (the SDK reads a whole body into memory
/// before parsing it, and has no limit of its own). The whole exchange, body included, is bounded
/// by the operation timeout set in [`AwsProvider::connect`].
#[derive(Debug)]
struct CapBody;

/// The error of an answer refused by [`CapBody`] for its Content-Length.
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {} MiB", MAX_BODY / (1024 * 1024))]
struct BodyTooLarge;

impl Intercept for CapBody {
    fn name(&self) -> &'static str {
        "envoke::CapBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|length| length.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY as u64) {
            return Err(BodyTooLarge.into());
        }
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() =
            body.map(|body| SdkBody::from_body_1_x(http_body_util::Limited::new(body, MAX_BODY)));
        Ok(())
    }
}

/// BatchGetSecretValue takes at most 20 ids in `SecretIdList`.
pub const BATCH_LIMIT: usize = 20;

/// ListSecrets takes at most 10 values in a filter (they are OR'ed).
const LIST_NAMES: usize = 10;

/// ListSecrets' largest page.
const LIST_PAGE_SIZE: i32 = 100;

/// The most pages one ListSecrets filter is followed for: a name prefix that thousands of
/// other secrets share, or a server that hands out tokens forever, must not make a sweep
/// endless. What the pages read by then do not answer is described instead.
const LIST_PAGES: usize = 5;

/// The longest rotation window: without `RotationRules.Duration` it closes at the end of the
/// UTC day, and Secrets Manager accepts no longer one.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What Secrets Manager says of a secret's rotation schedule (DescribeSecret, ListSecrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationSchedule {
    /// `RotationEnabled`.
    pub enabled: bool,
    /// `NextRotationDate`: the latest time the next rotation happens; in the past while a failed
    /// rotation is retried. `None` when not given (or not a time this system can hold).
    pub next: Option<SystemTime>,
    /// The rotation window's length, which ends at `next`: `RotationRules.Duration` (`3h`),
    /// else [`MAX_WINDOW`]; never more than that.
    pub window: Duration,
}

impl RotationSchedule {
    fn from_api(
        enabled: Option<bool>,
        next: Option<&aws_smithy_types::DateTime>,
        rules: Option<&RotationRulesType>,
    ) -> RotationSchedule {
        RotationSchedule {
            enabled: enabled.unwrap_or(false),
            next: next.and_then(|date| SystemTime::try_from(*date).ok()),
            window: rules
                .and_then(|rules| rules.duration.as_deref())
                .and_then(window_hours)
                .unwrap_or(MAX_WINDOW),
        }
    }
}

/// `RotationRules.Duration`, `1h` to `24h`; `None` for anything else.
fn window_hours(text: &str) -> Option<Duration> {
    let hours: u64 = text.strip_suffix('h')?.parse().ok()?;
    (1..=24)
        .contains(&hours)
        .then(|| Duration::from_secs(hours * 3600))
}

/// What [`AwsProvider::list`] found.
#[derive(Debug, Default)]
pub struct Listed {
    pub states: HashMap<AwsRequest, SecretState>,
    pub errors: Vec<FetchError>,
    /// Not found within the pages read, among many other secrets the filter matched.
    pub crowded: Vec<AwsRequest>,
}

/// How one ListSecrets filter ended.
enum ListOutcome {
    Complete,
    Failed(FetchError),
    /// The page limit was reached; these were wanted.
    Crowded(Vec<AwsRequest>),
}

/// A secret as watching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretState {
    /// The version that holds the followed stage, if any does.
    pub version: Option<String>,
    pub schedule: RotationSchedule,
}

/// The version that `stage` is attached to.
fn holding(
    versions_to_stages: Option<HashMap<String, Vec<String>>>,
    stage: &str,
) -> Option<String> {
    versions_to_stages
        .unwrap_or_default()
        .into_iter()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(version, _)| version)
}

/// The name prefix a ListSecrets filter can find `secret_id` by: the name itself, or the name
/// part of an ARN without the 6-character suffix Secrets Manager appends (a partial ARN has
/// none, and a shorter prefix still finds it; [`answers`] matches exactly). `None` for what
/// the filter cannot take: characters outside a secret name's (a leading `!` negates a filter),
/// or an ARN that is not a secret's.
fn name_prefix(secret_id: &str) -> Option<&str> {
    if !secret_id.is_ascii() {
        return None;
    }
    let name = if secret_id.starts_with("arn:") {
        let parts: Vec<&str> = secret_id.splitn(7, ':').collect();
        let [_, _, "secretsmanager", _, _, "secret", name] = parts[..] else {
            return None;
        };
        match name.len().checked_sub(7).map(|at| name.split_at(at)) {
            Some((stem, suffix))
                if suffix.starts_with('-')
                    && suffix[1..].chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                stem
            }
            _ => name,
        }
    } else {
        secret_id
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    (!name.is_empty() && name.len() <= 512 && name.chars().all(allowed)).then_some(name)
}

/// One distinct fetch: a secret id, its region and the version wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AwsRequest {
    /// Name or ARN.
    pub secret_id: String,
    /// `?region=`; `None` is the configured region.
    pub region: Option<String>,
    pub version: AwsVersion,
}

impl AwsRequest {
    /// The staging label whose movement means a change: the one asked for, else `AWSCURRENT`
    /// (a version id is pinned, but a watch of it follows `AWSCURRENT` like a plain reference).
    pub fn followed_stage(&self) -> &str {
        match &self.version {
            AwsVersion::Stage(stage) => stage,
            AwsVersion::Current | AwsVersion::Id(_) => "AWSCURRENT",
        }
    }
}

/// Connected Secrets Manager clients: one for the configured region, and one for each other
/// region a reference names, all from one SdkConfig (so one set of credentials, one AssumeRole).
pub struct AwsProvider {
    sdk_config: SdkConfig,
    /// The configured region.
    region: String,
    /// `[aws] endpoint`, which serves every region.
    endpoint: Option<String>,
    /// Where the configured region's requests go, for error messages.
    address: String,
    /// The role assumed, for error messages.
    role_arn: Option<String>,
    /// What is wrong with the shared-config profile in use, if anything: said when the
    /// credentials fail, which is how the SDK reports it.
    profile: Option<ProfileProblem>,
    /// Whose credentials the calls are signed with, as far as the settings tell (see
    /// [`identity`]).
    identity: String,
    /// The configured region's client, and the others' as they are first needed.
    clients: Mutex<HashMap<String, Client>>,
}

/// The operation a call made, and on which secret, for error messages.
struct Call<'a> {
    operation: &'static str,
    secret_id: Option<&'a str>,
    region: &'a str,
}

impl AwsProvider {
    /// Checks the settings, loads the AWS configuration and, with `role_arn`, sets up the role's
    /// credentials. Fails when a setting has a control character or no region is configured.
    /// `environment` is envoke's own, which aws-config reads.
    pub async fn connect(
        settings: &AwsSettings,
        environment: &[(OsString, OsString)],
    ) -> Result<AwsProvider, FetchError> {
        check_control_characters(settings, environment)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http::client())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        let env = Environment(environment);
        // aws-config's default chains look at the environment first and stop there when it has
        // what they need; building the rest of them costs an STS client (web identity) and an
        // IMDS client whether or not they are asked, about 6% of a launch's CPU. So a region or
        // keys the environment gives are handed over directly: the same values, from the same
        // place the chains would take them.
        let region = settings.region.clone().or_else(|| {
            env.get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
        });
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if env.get("AWS_ACCESS_KEY_ID").is_some() && env.get("AWS_SECRET_ACCESS_KEY").is_some() {
            loader = loader.credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        let mut sdk_config = loader.load().await;
        let profile = ProfileProblem::find(settings, environment).await;
        let Some(region) = sdk_config.region().map(ToString::to_string) else {
            // A profile that does not exist gives no region: that is the error to report.
            if let Some(problem @ ProfileProblem::Missing { .. }) = &profile {
                return Err(FetchError::Other(problem.message("")));
            }
            return Err(FetchError::Other(
                "no AWS region configured: set AWS_REGION or `region` under [aws] in the manifest"
                    .to_owned(),
            ));
        };
        if let Some(role) = &settings.assume_role {
            // STS is asked with the chain's credentials, at its own endpoint (AWS_ENDPOINT_URL_STS
            // or AWS_ENDPOINT_URL), never at `[aws] endpoint`, which is Secrets Manager's.
            let mut builder = AssumeRoleProvider::builder(&role.role_arn)
                .configure(&sdk_config)
                .session_name(&role.session_name);
            if let Some(external_id) = &role.external_id {
                builder = builder.external_id(external_id);
            }
            let provider = builder.build().await;
            sdk_config = sdk_config
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build();
        }
        let address = settings
            .endpoint
            .clone()
            .or_else(|| Environment(environment).get("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
            .or_else(|| sdk_config.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        // For messages: an endpoint's userinfo is no one's business.
        let address = crate::sanitize::redacted(&address);
        Ok(AwsProvider {
            sdk_config,
            endpoint: settings.endpoint.clone(),
            address,
            role_arn: settings.assume_role.as_ref().map(|r| r.role_arn.clone()),
            profile,
            identity: identity(settings, environment),
            clients: Mutex::default(),
            region,
        })
    }

    /// Whose credentials the calls are signed with, for the audit events.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The client for `region` (`None`: the configured one), built on first use from the shared
    /// SdkConfig with the region overridden.
    fn client(&self, region: Option<&str>) -> Client {
        let region = region.unwrap_or(&self.region);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk_config)
                    .region(Region::new(region.to_owned()));
                if let Some(endpoint) = &self.endpoint {
                    config = config.endpoint_url(endpoint);
                }
                Client::from_conf(config.interceptor(CapBody).build())
            })
            .clone()
    }

    /// Fetches every request, concurrently, batching what can be batched.
    pub async fn fetch_all(
        &self,
        requests: Vec<AwsRequest>,
    ) -> HashMap<AwsRequest, Result<Document, FetchError>> {
        let (current, pinned): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| r.version == AwsVersion::Current);
        let mut by_region: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for request in current {
            by_region
                .entry(request.region)
                .or_default()
                .push(request.secret_id);
        }
        let batches = by_region.iter().flat_map(|(region, ids)| {
            ids.chunks(BATCH_LIMIT)
                .map(|ids| self.batch(region.as_deref(), ids.to_vec()))
        });
        let (batch_results, single_results) =
            futures::join!(join_all(batches), self.singles(pinned));

        let mut results: HashMap<_, _> = single_results.into_iter().collect();
        let mut retry = Vec::new();
        for (request, result) in batch_results.into_iter().flatten() {
            match result {
                Some(result) => {
                    results.insert(request, result);
                }
                None => retry.push(request),
            }
        }
        results.extend(self.singles(retry).await);
        results
    }

    /// GetSecretValue for each request, all at once.
    async fn singles(
        &self,
        requests: Vec<AwsRequest>,
    ) -> Vec<(AwsRequest, Result<Document, FetchError>)> {
        join_all(requests.into_iter().map(|request| async move {
            let result = self.single(&request).await;
            (request, result)
        }))
        .await
    }

    /// One BatchGetSecretValue call in `region`. `None` for an id the answer does not account
    /// for, or that must be fetched on its own.
    async fn batch(
        &self,
        region: Option<&str>,
        ids: Vec<String>,
    ) -> Vec<(AwsRequest, Option<Result<Document, FetchError>>)> {
        let request = |secret_id| AwsRequest {
            secret_id,
            region: region.map(str::to_owned),
            version: AwsVersion::Current,
        };
        tracing::debug!(count = ids.len(), region, "aws: BatchGetSecretValue");
        let output = match self
            .client(region)
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .send()
            .await
        {
            Ok(output) => output,
            // BatchGetSecretValue has a quota of 100 calls a second per account and region, far
            // below GetSecretValue's 10,000: when a fleet starting at once is throttled (after
            // the SDK's own retries), fall back to fetching each id on its own.
            Err(error) if is_throttling(error.code()) => {
                tracing::warn!(
                    count = ids.len(),
                    "BatchGetSecretValue is throttled; fetching the secrets one by one"
                );
                return ids.into_iter().map(|id| (request(id), None)).collect();
            }
            // A policy may allow GetSecretValue and not BatchGetSecretValue (the usual ECS task
            // role): a denied batch is not a verdict on its secrets.
            Err(error) if is_denied(&error) => {
                tracing::debug!(
                    count = ids.len(),
                    "BatchGetSecretValue is denied; fetching the secrets one by one with GetSecretValue"
                );
                return ids.into_iter().map(|id| (request(id), None)).collect();
            }
            Err(error) => {
                let call = Call {
                    operation: "BatchGetSecretValue",
                    secret_id: None,
                    region: region.unwrap_or(&self.region),
                };
                let error = self.map_sdk_error(&error, &call);
                return ids
                    .into_iter()
                    .map(|id| (request(id), Some(Err(error.clone()))))
                    .collect();
            }
        };
        let mut values = output.secret_values.unwrap_or_default();
        let errors = output.errors.unwrap_or_default();
        ids.into_iter()
            .map(|id| {
                if let Some(index) = values
                    .iter()
                    .position(|v| answers(&id, v.arn.as_deref(), v.name.as_deref()))
                {
                    let entry = values.swap_remove(index);
                    let document =
                        document(entry.secret_string, entry.secret_binary, entry.version_id);
                    return (request(id), Some(document));
                }
                if let Some(error) = errors.iter().find(|e| e.secret_id.as_deref() == Some(&id)) {
                    let call = Call {
                        // Batch answers are GetSecretValue's, secret by secret.
                        operation: "GetSecretValue",
                        secret_id: Some(&id),
                        region: region.unwrap_or(&self.region),
                    };
                    let error = map_code(
                        error.error_code.as_deref().unwrap_or_default(),
                        error.message.as_deref().unwrap_or_default(),
                        &call,
                    );
                    return (request(id), Some(Err(error)));
                }
                (request(id), None)
            })
            .collect()
    }

    /// What DescribeSecret (metadata only, no value) says of the secret of `request`: the
    /// version that holds the stage it follows, and the rotation schedule.
    pub async fn describe(&self, request: &AwsRequest) -> Result<SecretState, FetchError> {
        let secret_id = request.secret_id.as_str();
        let region = request.region.as_deref();
        let stage = request.followed_stage();
        tracing::debug!(secret_id, region, stage, "aws: DescribeSecret");
        let call = Call {
            operation: "DescribeSecret",
            secret_id: Some(secret_id),
            region: region.unwrap_or(&self.region),
        };
        let output = self
            .client(region)
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| self.map_sdk_error(&e, &call))?;
        Ok(SecretState {
            version: holding(output.version_ids_to_stages, stage),
            schedule: RotationSchedule::from_api(
                output.rotation_enabled,
                output.next_rotation_date.as_ref(),
                output.rotation_rules.as_ref(),
            ),
        })
    }

    /// What ListSecrets says of the secrets of `requests`, [`LIST_NAMES`] names a call, per
    /// region, all calls at once. A request the answers do not account for (another account's
    /// ARN, a name ListSecrets cannot filter on, more matches than [`LIST_PAGES`] pages hold, a
    /// failed call) is missing from `states`; `errors` say why calls failed, and `crowded` are
    /// the requests of a filter whose pages ran out before they were found (listing them with
    /// fewer other names may find them). ListSecrets is eventually consistent: an answer may be
    /// minutes old.
    pub async fn list(&self, requests: &[AwsRequest]) -> Listed {
        let mut by_region: BTreeMap<Option<&str>, BTreeMap<&str, Vec<&AwsRequest>>> =
            BTreeMap::new();
        for request in requests {
            if let Some(prefix) = name_prefix(&request.secret_id) {
                by_region
                    .entry(request.region.as_deref())
                    .or_default()
                    .entry(prefix)
                    .or_default()
                    .push(request);
            }
        }
        let calls = by_region.iter().flat_map(|(region, by_prefix)| {
            let prefixes: Vec<&str> = by_prefix.keys().copied().collect();
            prefixes
                .chunks(LIST_NAMES)
                .map(|chunk| {
                    let wanted: Vec<&AwsRequest> = chunk
                        .iter()
                        .flat_map(|prefix| by_prefix[prefix].iter().copied())
                        .collect();
                    self.list_call(*region, chunk.to_vec(), wanted)
                })
                .collect::<Vec<_>>()
        });
        let mut listed = Listed::default();
        for (found, outcome) in join_all(calls).await {
            match outcome {
                ListOutcome::Complete => {}
                ListOutcome::Failed(error) => listed.errors.push(error),
                ListOutcome::Crowded(wanted) => listed.crowded.extend(
                    wanted
                        .into_iter()
                        .filter(|r| !found.iter().any(|(f, _)| f == r)),
                ),
            }
            listed.states.extend(found);
        }
        listed
    }

    /// One ListSecrets filter of up to [`LIST_NAMES`] name prefixes in `region`, followed for
    /// at most [`LIST_PAGES`] pages; the states of the `wanted` requests it found.
    async fn list_call(
        &self,
        region: Option<&str>,
        prefixes: Vec<&str>,
        wanted: Vec<&AwsRequest>,
    ) -> (Vec<(AwsRequest, SecretState)>, ListOutcome) {
        let call = Call {
            operation: "ListSecrets",
            secret_id: None,
            region: region.unwrap_or(&self.region),
        };
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .set_values(Some(prefixes.iter().map(|p| (*p).to_owned()).collect()))
            .build();
        let mut found = Vec::new();
        let mut crowding: BTreeSet<&str> = BTreeSet::new();
        let mut token: Option<String> = None;
        for page in 1..=LIST_PAGES {
            tracing::debug!(names = prefixes.len(), region, page, "aws: ListSecrets");
            let output = match self
                .client(region)
                .list_secrets()
                .filters(filter.clone())
                .max_results(LIST_PAGE_SIZE)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(output) => output,
                Err(error) => {
                    return (
                        found,
                        ListOutcome::Failed(self.map_sdk_error(&error, &call)),
                    );
                }
            };
            for entry in output.secret_list.unwrap_or_default() {
                let (arn, name) = (entry.arn.as_deref(), entry.name.as_deref());
                let answered: Vec<&&AwsRequest> = wanted
                    .iter()
                    .filter(|r| answers(&r.secret_id, arn, name))
                    .collect();
                if answered.is_empty() {
                    // Another secret whose name starts like ours: the prefix that found it.
                    let name = name.unwrap_or_default().to_ascii_lowercase();
                    crowding.extend(
                        prefixes
                            .iter()
                            .filter(|p| name.starts_with(&p.to_ascii_lowercase())),
                    );
                    continue;
                }
                let schedule = RotationSchedule::from_api(
                    entry.rotation_enabled,
                    entry.next_rotation_date.as_ref(),
                    entry.rotation_rules.as_ref(),
                );
                for request in answered {
                    let state = SecretState {
                        version: holding(
                            entry.secret_versions_to_stages.clone(),
                            request.followed_stage(),
                        ),
                        schedule: schedule.clone(),
                    };
                    found.push(((*request).clone(), state));
                }
            }
            match output.next_token.filter(|t| !t.is_empty()) {
                Some(next) if found.len() < wanted.len() => token = Some(next),
                // Every request answered, or no page left.
                _ => return (found, ListOutcome::Complete),
            }
        }
        // A prefix that many other secrets share: what was not found by now is described.
        tracing::debug!(
            names = prefixes.len(),
            region,
            pages = LIST_PAGES,
            "ListSecrets has more pages than envoke reads; the rest is described"
        );
        // The names that other secrets crowd out; all of them when the entries matched none
        // (a server that answers what it likes). The others of the call were only starved, and
        // are found once the crowded ones are described instead.
        let crowded = wanted
            .into_iter()
            .filter(|r| {
                crowding.is_empty()
                    || name_prefix(&r.secret_id).is_some_and(|p| crowding.contains(p))
            })
            .cloned()
            .collect();
        (found, ListOutcome::Crowded(crowded))
    }

    /// Stores `value` as the current version of secret `name` (in the configured region):
    /// CreateSecret, or PutSecretValue when the secret exists. For `envoke import`.
    pub async fn store(&self, name: &str, value: &SecretValue) -> Result<(), FetchError> {
        tracing::debug!(secret_id = name, "aws: CreateSecret");
        let client = self.client(None);
        let call = |operation| Call {
            operation,
            secret_id: Some(name),
            region: &self.region,
        };
        let created = client
            .create_secret()
            .name(name)
            .secret_string(value.expose())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ResourceExistsException") => {
                tracing::debug!(secret_id = name, "aws: PutSecretValue");
                client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| self.map_sdk_error(&e, &call("PutSecretValue")))
            }
            Err(error) => Err(self.map_sdk_error(&error, &call("CreateSecret"))),
        }
    }

    /// One GetSecretValue call.
    async fn single(&self, request: &AwsRequest) -> Result<Document, FetchError> {
        let region = request.region.as_deref();
        tracing::debug!(secret_id = %request.secret_id, region, "aws: GetSecretValue");
        let mut call = self
            .client(region)
            .get_secret_value()
            .secret_id(&request.secret_id);
        match &request.version {
            AwsVersion::Current => {}
            AwsVersion::Stage(stage) => call = call.version_stage(stage),
            AwsVersion::Id(id) => call = call.version_id(id),
        }
        match call.send().await {
            Ok(output) => document(
                output.secret_string,
                output.secret_binary,
                output.version_id,
            ),
            Err(error) => Err(self.map_sdk_error(
                &error,
                &Call {
                    operation: "GetSecretValue",
                    secret_id: Some(&request.secret_id),
                    region: region.unwrap_or(&self.region),
                },
            )),
        }
    }

    /// Where requests for `region` go.
    fn address(&self, region: &str) -> String {
        if region == self.region || self.endpoint.is_some() {
            self.address.clone()
        } else {
            format!("https://secretsmanager.{region}.amazonaws.com")
        }
    }

    fn map_sdk_error<E>(&self, error: &SdkError<E, HttpResponse>, call: &Call<'_>) -> FetchError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if is_denied(error) {
            return map_code("AccessDenied", error.message().unwrap_or_default(), call);
        }
        if std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .any(|e| e.is::<BodyTooLarge>() || e.is::<http_body_util::LengthLimitError>())
        {
            return FetchError::Other(format!(
                "Secrets Manager at {} answered with a body larger than {} MiB; refused",
                self.address(call.region),
                MAX_BODY / (1024 * 1024)
            ));
        }
        // An answer the protocol could not read an error code from (an HTML page from a proxy
        // or a load balancer, an empty 5xx): its status and the start of its body are all
        // there is to say. Only for error statuses: a successful answer's body may hold values.
        if error.code().is_none()
            && let Some(response) = error.raw_response()
            && !response.status().is_success()
        {
            return FetchError::Other(format!(
                "Secrets Manager at {} answered HTTP {} without an error code: {}",
                self.address(call.region),
                response.status().as_u16(),
                body_excerpt(response.body().bytes().unwrap_or_default())
            ));
        }
        match error {
            SdkError::ServiceError(_) => map_code(
                error.code().unwrap_or_default(),
                error.message().unwrap_or_default(),
                call,
            ),
            SdkError::TimeoutError(_) => FetchError::Unreachable {
                address: self.address(call.region),
                detail: "timed out".to_owned(),
            },
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                FetchError::Unreachable {
                    address: self.address(call.region),
                    detail: crate::provider::connection_failure(root_cause(error), None),
                }
            }
            _ => {
                let root = root_cause(error);
                let credentials = is_credentials_failure(error);
                match &self.role_arn {
                    _ if credentials && self.profile.is_some() => FetchError::Other(
                        self.profile
                            .as_ref()
                            .map(|p| p.message(&root))
                            .unwrap_or_default(),
                    ),
                    Some(role_arn) if credentials => FetchError::Other(format!(
                        "cannot assume role {role_arn} ({root}): check that the credentials \
                         envoke starts with may call sts:AssumeRole on it, and the role's trust \
                         policy (and external_id)"
                    )),
                    _ if credentials || root.contains("credentials") => FetchError::Other(format!(
                        "no usable AWS credentials ({root}): set AWS_ACCESS_KEY_ID and \
                             AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available"
                    )),
                    _ => FetchError::Other(format!(
                        "request to {} failed: {root}",
                        self.address(call.region)
                    )),
                }
            }
        }
    }
}

/// What is wrong, or may be, with the shared-config profile in use.
#[derive(Debug, Clone)]
enum ProfileProblem {
    /// The profile named (`[aws] profile` or AWS_PROFILE) is in neither shared file.
    Missing {
        name: String,
        /// The setting that named it.
        from: &'static str,
        /// The files looked at, as the user would name them.
        files: String,
    },
    /// The profile's credentials come from an SSO session, whose cached token is missing or
    /// expired when they fail.
    Sso { name: String },
}

impl ProfileProblem {
    /// Reads the shared config and credentials files as aws-config does (AWS_CONFIG_FILE,
    /// AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and ~/.aws/credentials).
    async fn find(
        settings: &AwsSettings,
        environment: &[(OsString, OsString)],
    ) -> Option<ProfileProblem> {
        let (name, from) = match (
            &settings.profile,
            Environment(environment).get("AWS_PROFILE"),
        ) {
            (Some(name), _) => (name.clone(), Some("`profile` under [aws]")),
            (None, Some(name)) => (name, Some("AWS_PROFILE")),
            (None, None) => ("default".to_owned(), None),
        };
        let profiles = aws_config::profile::load(
            &aws_types::os_shim_internal::Fs::real(),
            &aws_types::os_shim_internal::Env::real(),
            &aws_runtime::env_config::file::EnvConfigFiles::default(),
            Some(Cow::Owned(name.clone())),
        )
        .await
        .ok()?;
        match (profiles.get_profile(&name), from) {
            (None, Some(from)) => {
                let file = |variable, default: &str| match Environment(environment).get(variable) {
                    Some(path) => format!("{path} ({variable})"),
                    None => default.to_owned(),
                };
                Some(ProfileProblem::Missing {
                    name,
                    from,
                    files: format!(
                        "{} or {}",
                        file("AWS_CONFIG_FILE", "~/.aws/config"),
                        file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
                    ),
                })
            }
            (Some(profile), _)
                if profile.get("sso_session").is_some()
                    || profile.get("sso_start_url").is_some() =>
            {
                Some(ProfileProblem::Sso { name })
            }
            _ => None,
        }
    }

    /// The message, with the SDK's own reason (`root`) where it helps.
    fn message(&self, root: &str) -> String {
        match self {
            ProfileProblem::Missing { name, from, files } => format!(
                "AWS profile `{}` (from {from}) does not exist in {files}: check the name, or \
                 set AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE to the files that have it",
                one_line(name)
            ),
            ProfileProblem::Sso { name } => format!(
                "the SSO session of AWS profile `{name}` is not logged in or has expired \
                 ({root}): run `aws sso login --profile {name}`",
                name = one_line(name)
            ),
        }
    }
}

/// The environment variables aws-config reads that end up in a header, a host name or a
/// signature: a control character in one makes the SDK panic (a header value) or fail
/// obscurely. `AWS_ENDPOINT_URL_*` are checked by prefix.
const CHECKED_VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// A clear error naming the first setting that has a control character (never its value).
fn check_control_characters(
    settings: &AwsSettings,
    environment: &[(OsString, OsString)],
) -> Result<(), FetchError> {
    let checked = |name: &OsStr| {
        name.to_str().is_some_and(|name| {
            CHECKED_VARIABLES.contains(&name) || name.starts_with("AWS_ENDPOINT_URL")
        })
    };
    let variables = environment
        .iter()
        .filter(|(name, value)| checked(name) && has_control_character(value))
        .map(|(name, _)| name.to_string_lossy().into_owned());
    let manifest = settings
        .named_values()
        .filter(|(_, value)| has_control_character(OsStr::new(value)))
        .map(|(name, _)| name.to_owned());
    match variables.chain(manifest).next() {
        Some(name) => Err(FetchError::Other(format!(
            "invalid {name}: contains a control character"
        ))),
        None => Ok(()),
    }
}

/// Control characters, C0, DEL and C1 (a value that is not UTF-8 is checked byte by byte).
fn has_control_character(value: &OsStr) -> bool {
    match value.to_str() {
        Some(text) => text.chars().any(char::is_control),
        None => value.as_encoded_bytes().iter().any(u8::is_ascii_control),
    }
}

/// envoke's own environment variable `name`, when set and not empty.
/// Whose credentials envoke uses, from the settings alone: the role it assumes; otherwise the
/// first source of aws-config's default chain that is configured (environment keys, a profile,
/// web identity, the ECS container endpoint), or the rest of the chain (the default profile, the
/// instance role). No value of a credential, not even an access key id. STS GetCallerIdentity
/// would name the caller exactly, at the cost of a call and a dependency; the role ARN or the
/// profile is what a policy is written against anyway.
fn identity(settings: &AwsSettings, environment: &[(OsString, OsString)]) -> String {
    let env = |name| Environment(environment).get(name);
    let text = if let Some(role) = &settings.assume_role {
        format!("role {}", role.role_arn)
    } else if env("AWS_ACCESS_KEY_ID").is_some() {
        "environment keys".to_owned()
    } else if let Some(profile) = settings.profile.clone().or_else(|| env("AWS_PROFILE")) {
        format!("profile {profile}")
    } else if let (Some(role), Some(_)) = (env("AWS_ROLE_ARN"), env("AWS_WEB_IDENTITY_TOKEN_FILE"))
    {
        format!("web identity role {role}")
    } else if env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        "container credentials (ECS task role)".to_owned()
    } else {
        "default credential chain".to_owned()
    };
    one_line(&text)
}

/// Whether the call was refused for lack of permission: an access-denied code, or an HTTP 403
/// with no code at all (moto's IAM enforcement answers 403 with an XML body that a JSON protocol
/// cannot read).
fn is_denied<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error.code() {
        Some(code) => is_access_denied_code(code),
        None => error
            .raw_response()
            .is_some_and(|response| response.status().as_u16() == 403),
    }
}

fn is_access_denied_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation"
    )
}

/// Whether the error (or one it wraps) is the credential chain's: the last provider tried (often
/// the EC2 instance metadata service) has the root cause, which rarely says "credentials".
fn is_credentials_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<CredentialsError>())
}

/// Whether a batch answer (ARN and name) is the answer for the requested id, which may be a
/// name, a full ARN, or a partial ARN (without the 6-character suffix Secrets Manager adds).
fn answers(requested: &str, arn: Option<&str>, name: Option<&str>) -> bool {
    if name == Some(requested) || arn == Some(requested) {
        return true;
    }
    match arn.and_then(|arn| arn.strip_prefix(requested)) {
        Some(suffix) => {
            requested.starts_with("arn:") && suffix.len() == 7 && suffix.starts_with('-')
        }
        None => false,
    }
}

fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
        )
    )
}

fn map_code(code: &str, message: &str, call: &Call<'_>) -> FetchError {
    let message = one_line(message);
    match code {
        "ResourceNotFoundException" => FetchError::NotFound(message),
        // A secret scheduled for deletion can still be restored until its deletion date.
        "InvalidRequestException"
            if message.contains("marked for deletion") || message.contains("marked deleted") =>
        {
            FetchError::NotFound(format!(
                "the secret is scheduled for deletion: restore it with `aws secretsmanager \
                 restore-secret --secret-id {}` ({message})",
                call.secret_id.unwrap_or("SECRET")
            ))
        }
        code if is_access_denied_code(code) => {
            // Name what is missing: the action, and on which secret.
            let mut text = format!("secretsmanager:{}", call.operation);
            if let Some(secret_id) = call.secret_id {
                text.push_str(&format!(" on {secret_id}"));
            }
            text.push_str(&format!(" in {}", call.region));
            if !message.is_empty() {
                text.push_str(&format!(" ({message})"));
            }
            FetchError::AccessDenied(text)
        }
        "DecryptionFailure" => FetchError::AccessDenied(format!(
            "cannot decrypt with the secret's KMS key: {message}"
        )),
        "InvalidRequestException" | "InvalidParameterException" => FetchError::Invalid(message),
        "" => FetchError::Other(message),
        other => FetchError::Other(format!("{}: {message}", one_line(other))),
    }
}

/// Wraps a Secrets Manager payload. A binary secret is accepted when it is UTF-8 text.
fn document(
    secret_string: Option<String>,
    secret_binary: Option<aws_sdk_secretsmanager::primitives::Blob>,
    version_id: Option<String>,
) -> Result<Document, FetchError> {
    let value = match (secret_string, secret_binary) {
        (Some(text), _) => SecretValue::new(text),
        (None, Some(blob)) => match String::from_utf8(blob.into_inner()) {
            Ok(text) => SecretValue::new(text),
            Err(error) => {
                error.into_bytes().zeroize();
                return Err(FetchError::Invalid(
                    "binary secret (SecretBinary) is not UTF-8 text, so it cannot be an environment variable".to_owned(),
                ));
            }
        },
        (None, None) => return Err(FetchError::Invalid("secret has no value".to_owned())),
    };
    Ok(Document {
        value,
        version: version_id,
        lease: None,
        kind: DocumentKind::Aws,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_match_names_and_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        assert!(answers("prod/db", Some(arn), Some("prod/db")));
        assert!(answers(arn, Some(arn), Some("prod/db")));
        assert!(answers(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
            Some(arn),
            Some("prod/db")
        ));
        assert!(!answers("prod/d", Some(arn), Some("prod/db")));
        assert!(!answers("prod", Some(arn), Some("prod/db")));
    }

    #[test]
    fn list_filters_take_the_name_of_an_id() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        assert_eq!(name_prefix("prod/db"), Some("prod/db"));
        assert_eq!(name_prefix(arn), Some("prod/db"));
        assert_eq!(
            name_prefix("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"),
            Some("prod/db")
        );
        assert_eq!(name_prefix("!prod"), None, "a leading ! negates a filter");
        assert_eq!(name_prefix("pröd"), None);
        assert_eq!(name_prefix("arn:aws:s3:::bucket"), None);
        assert_eq!(name_prefix(""), None);
        assert_eq!(name_prefix(&"a".repeat(513)), None);
    }

    #[test]
    fn rotation_windows() {
        assert_eq!(window_hours("3h"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(window_hours("24h"), Some(MAX_WINDOW));
        assert_eq!(window_hours("25h"), None);
        assert_eq!(window_hours("0h"), None);
        assert_eq!(window_hours("3d"), None);
        let rules = RotationRulesType::builder().duration("1000h").build();
        let schedule = RotationSchedule::from_api(Some(true), None, Some(&rules));
        assert_eq!(schedule.window, MAX_WINDOW);
        assert!(schedule.enabled && schedule.next.is_none());
        let far = aws_smithy_types::DateTime::from_secs(i64::MAX);
        assert!(
            RotationSchedule::from_api(Some(true), Some(&far), None)
                .next
                .is_some(),
            "the end of time is a date (a quiet one)"
        );
    }

    #[test]
    fn throttling_is_recognised() {
        assert!(is_throttling(Some("ThrottlingException")));
        assert!(!is_throttling(Some("ResourceNotFoundException")));
        assert!(!is_throttling(None));
    }

    #[test]
    fn error_codes() {
        let call = Call {
            operation: "GetSecretValue",
            secret_id: Some("prod/db"),
            region: "eu-west-1",
        };
        assert_eq!(
            map_code("ResourceNotFoundException", "", &call).status(),
            "not found"
        );
        let denied = map_code("AccessDeniedException", "", &call);
        assert_eq!(denied.status(), "access denied");
        assert_eq!(
            denied.to_string(),
            "access denied: secretsmanager:GetSecretValue on prod/db in eu-west-1"
        );
        assert_eq!(
            map_code("InvalidRequestException", "", &call).status(),
            "invalid"
        );
    }

    #[test]
    fn control_characters_name_the_setting_never_the_value() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
        };
        let settings = AwsSettings::default();
        let check = |pairs: &[(&str, &str)]| {
            check_control_characters(&settings, &env(pairs)).map_err(|e| e.to_string())
        };
        assert_eq!(check(&[("AWS_REGION", "us-east-1")]), Ok(()));
        assert_eq!(
            check(&[("AWS_REGION", "us-east-1\n")]),
            Err("invalid AWS_REGION: contains a control character".to_owned())
        );
        let error = check(&[("AWS_SECRET_ACCESS_KEY", "s3cr3t\r")]).unwrap_err();
        assert!(error.contains("AWS_SECRET_ACCESS_KEY") && !error.contains("s3cr3t"));
        assert!(
            check(&[("AWS_ENDPOINT_URL_STS", "http://x\t")])
                .unwrap_err()
                .contains("AWS_ENDPOINT_URL_STS")
        );
        assert!(
            check(&[("AWS_SESSION_TOKEN", "a\u{85}b")]).is_err(),
            "C1 too"
        );
        assert_eq!(check(&[("OTHER", "x\n")]), Ok(()), "only AWS settings");

        let settings = AwsSettings {
            profile: Some("prod\n".to_owned()),
            ..AwsSettings::default()
        };
        assert_eq!(
            check_control_characters(&settings, &[]).map_err(|e| e.to_string()),
            Err("invalid [aws] profile: contains a control character".to_owned())
        );
    }
}
