//! Fetching values: every reference in as few calls as the API allows, all in flight at once.
//!
//! BatchGetSecretValue reads up to [`BATCH_LIMIT`] current versions a call; a reference pinned
//! to a stage or a version id needs GetSecretValue of its own. A batch is an optimisation, never
//! a verdict: whatever its answer does not account for, and every id of a batch that is
//! throttled or denied, is fetched again on its own. Also `envoke import`'s writes.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::batch_get_secret_value::{
    BatchGetSecretValueError, BatchGetSecretValueOutput,
};
use futures::future::join_all;
use zeroize::Zeroize;

use super::Created;
use super::errors::{Call, is_denied, is_throttling, map_code};
use super::{AwsProvider, AwsRequest, answers};
use crate::provider::{Document, DocumentKind, FetchError};
use crate::reference::AwsVersion;
use crate::secret::SecretValue;

/// BatchGetSecretValue takes at most 20 ids in `SecretIdList`.
const BATCH_LIMIT: usize = 20;

/// What a batch says of each of its ids: `None` for an id to fetch on its own.
type BatchResults = Vec<(AwsRequest, Option<Result<Document, FetchError>>)>;

impl AwsProvider {
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
    async fn batch(&self, region: Option<&str>, ids: Vec<String>) -> BatchResults {
        tracing::debug!(count = ids.len(), region, "aws: BatchGetSecretValue");
        let sent = self
            .client(region)
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .send()
            .await;
        match sent {
            Ok(output) => self.batch_answers(region, ids, output),
            Err(error) => self.batch_failed(region, ids, &error),
        }
    }

    /// What a failed BatchGetSecretValue means for its ids: fetch each on its own when the
    /// batch was throttled or denied, else the call's error for all of them.
    fn batch_failed(
        &self,
        region: Option<&str>,
        ids: Vec<String>,
        error: &SdkError<BatchGetSecretValueError, HttpResponse>,
    ) -> BatchResults {
        // BatchGetSecretValue has a quota of 100 calls a second per account and region, far
        // below GetSecretValue's 10,000: when a fleet starting at once is throttled (after
        // the SDK's own retries), fall back to fetching each id on its own.
        if is_throttling(error.code()) {
            tracing::warn!(
                count = ids.len(),
                "BatchGetSecretValue is throttled; fetching the secrets one by one"
            );
            return ids
                .into_iter()
                .map(|id| (current_request(region, id), None))
                .collect();
        }
        // A policy may allow GetSecretValue and not BatchGetSecretValue (the usual ECS task
        // role): a denied batch is not a verdict on its secrets.
        if is_denied(error) {
            tracing::debug!(
                count = ids.len(),
                "BatchGetSecretValue is denied; fetching the secrets one by one with GetSecretValue"
            );
            return ids
                .into_iter()
                .map(|id| (current_request(region, id), None))
                .collect();
        }
        let call = Call {
            operation: "BatchGetSecretValue",
            secret_id: None,
            region: region.unwrap_or(&self.region),
        };
        let error = self.map_sdk_error(error, &call);
        ids.into_iter()
            .map(|id| (current_request(region, id), Some(Err(error.clone()))))
            .collect()
    }

    /// Each id's part of a BatchGetSecretValue answer: its value, its error, or `None` when the
    /// answer has neither.
    fn batch_answers(
        &self,
        region: Option<&str>,
        ids: Vec<String>,
        output: BatchGetSecretValueOutput,
    ) -> BatchResults {
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
                    return (current_request(region, id), Some(document));
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
                    return (current_request(region, id), Some(Err(error)));
                }
                (current_request(region, id), None)
            })
            .collect()
    }

    /// The current value of secret `name` (in the configured region) and its version id, or
    /// `None` when there is no such secret. For `envoke import`, which merges into it.
    pub async fn read_current(
        &self,
        name: &str,
    ) -> Result<Option<(SecretValue, String)>, FetchError> {
        match self.single(&current_request(None, name.to_owned())).await {
            Ok(document) => {
                let version = document.version.unwrap_or_default();
                Ok(Some((document.value, version)))
            }
            Err(FetchError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The version id `AWSCURRENT` is on now (DescribeSecret: no value is read).
    pub async fn current_version(&self, name: &str) -> Result<Option<String>, FetchError> {
        let request = current_request(None, name.to_owned());
        Ok(self.describe(&request).await?.version)
    }

    /// Creates secret `name` holding `value` (CreateSecret); never writes over a secret that
    /// exists already.
    pub async fn create(&self, name: &str, value: &SecretValue) -> Result<Created, FetchError> {
        tracing::debug!(secret_id = name, "aws: CreateSecret");
        let created = self
            .client(None)
            .create_secret()
            .name(name)
            .secret_string(value.expose())
            .send()
            .await;
        match created {
            Ok(_) => Ok(Created::Yes),
            Err(error) if error.code() == Some("ResourceExistsException") => {
                Ok(Created::AlreadyExists)
            }
            Err(error) => Err(self.map_sdk_error(&error, &self.call("CreateSecret", name))),
        }
    }

    /// Puts `value` as the new current version of secret `name` (PutSecretValue).
    pub async fn put(&self, name: &str, value: &SecretValue) -> Result<(), FetchError> {
        tracing::debug!(secret_id = name, "aws: PutSecretValue");
        self.client(None)
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose())
            .send()
            .await
            .map(drop)
            .map_err(|e| self.map_sdk_error(&e, &self.call("PutSecretValue", name)))
    }

    /// The description of a call on secret `name` in the configured region, for its errors.
    fn call<'a>(&'a self, operation: &'static str, name: &'a str) -> Call<'a> {
        Call {
            operation,
            secret_id: Some(name),
            region: &self.region,
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
}

/// The request for the current version of `secret_id` in `region`, as a batch reads it.
fn current_request(region: Option<&str>, secret_id: String) -> AwsRequest {
    AwsRequest {
        secret_id,
        region: region.map(str::to_owned),
        version: AwsVersion::Current,
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
