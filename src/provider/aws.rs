//! AWS Secrets Manager.
//!
//! Connection settings come from aws-config's default chain (AWS_REGION, AWS_PROFILE,
//! AWS_ENDPOINT_URL[_SECRETS_MANAGER], environment keys, profiles, SSO, web identity, ECS and EC2
//! roles), overridden by the manifest's `[aws]` table.
//!
//! Fetching is batched: references to the current version go through BatchGetSecretValue, 20 ids
//! a call (the API's limit for `SecretIdList`), every call in flight at once. References pinned
//! to a stage or version id need GetSecretValue, one call each, also concurrent. An id that a
//! batch answer does not account for (neither a value nor an error matches it) is fetched again
//! on its own rather than reported missing.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, timeout::TimeoutConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use futures::future::join_all;
use zeroize::Zeroize;

use super::{Document, DocumentKind, FetchError, root_cause};
use crate::config::aws::AwsSettings;
use crate::reference::AwsVersion;
use crate::secret::SecretValue;

/// BatchGetSecretValue takes at most 20 ids in `SecretIdList`.
pub const BATCH_LIMIT: usize = 20;

/// One distinct fetch: a secret id and the version wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AwsRequest {
    /// Name or ARN.
    pub secret_id: String,
    pub version: AwsVersion,
}

/// A connected Secrets Manager client.
pub struct AwsProvider {
    client: Client,
    address: String,
}

impl AwsProvider {
    /// Loads the AWS configuration and builds a client. Fails when no region is configured.
    pub async fn connect(settings: &AwsSettings) -> Result<AwsProvider, FetchError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        let sdk_config = loader.load().await;
        let Some(region) = sdk_config.region() else {
            return Err(FetchError::Other(
                "no AWS region configured: set AWS_REGION or `region` under [aws] in the manifest"
                    .to_owned(),
            ));
        };
        let address = settings
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok())
            .or_else(|| sdk_config.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        Ok(AwsProvider {
            client: Client::new(&sdk_config),
            address,
        })
    }

    /// Fetches every request, concurrently, batching what can be batched.
    pub async fn fetch_all(
        &self,
        requests: Vec<AwsRequest>,
    ) -> HashMap<AwsRequest, Result<Document, FetchError>> {
        let (current, pinned): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| r.version == AwsVersion::Current);
        let current_ids: Vec<String> = current.into_iter().map(|r| r.secret_id).collect();

        let batches = current_ids
            .chunks(BATCH_LIMIT)
            .map(|ids| self.batch(ids.to_vec()));
        let (batch_results, single_results) =
            futures::join!(join_all(batches), self.singles(pinned));

        let mut results: HashMap<_, _> = single_results.into_iter().collect();
        let mut retry = Vec::new();
        for batch in batch_results {
            for (secret_id, result) in batch {
                let request = AwsRequest {
                    secret_id,
                    version: AwsVersion::Current,
                };
                match result {
                    Some(result) => {
                        results.insert(request, result);
                    }
                    None => retry.push(request),
                }
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

    /// One BatchGetSecretValue call. `None` for an id the answer does not account for.
    async fn batch(&self, ids: Vec<String>) -> Vec<(String, Option<Result<Document, FetchError>>)> {
        tracing::debug!(count = ids.len(), "aws: BatchGetSecretValue");
        let output = match self
            .client
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
                return ids.into_iter().map(|id| (id, None)).collect();
            }
            Err(error) => {
                let error = self.map_sdk_error(&error);
                return ids
                    .into_iter()
                    .map(|id| (id, Some(Err(error.clone()))))
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
                    return (id, Some(document));
                }
                if let Some(error) = errors.iter().find(|e| e.secret_id.as_deref() == Some(&id)) {
                    let error = map_code(
                        error.error_code.as_deref().unwrap_or_default(),
                        error.message.as_deref().unwrap_or_default(),
                    );
                    return (id, Some(Err(error)));
                }
                (id, None)
            })
            .collect()
    }

    /// The id of the version that holds `stage` now (DescribeSecret: metadata only, no value).
    pub async fn version_holding(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Option<String>, FetchError> {
        tracing::debug!(secret_id, stage, "aws: DescribeSecret");
        let output = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| self.map_sdk_error(&e))?;
        Ok(output
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(version, _)| version))
    }

    /// One GetSecretValue call.
    async fn single(&self, request: &AwsRequest) -> Result<Document, FetchError> {
        tracing::debug!(secret_id = %request.secret_id, "aws: GetSecretValue");
        let mut call = self.client.get_secret_value().secret_id(&request.secret_id);
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
            Err(error) => Err(self.map_sdk_error(&error)),
        }
    }

    fn map_sdk_error<E, R>(&self, error: &SdkError<E, R>) -> FetchError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match error {
            SdkError::ServiceError(_) => map_code(
                error.code().unwrap_or_default(),
                error.message().unwrap_or_default(),
            ),
            SdkError::TimeoutError(_) => FetchError::Unreachable {
                address: self.address.clone(),
                detail: "timed out".to_owned(),
            },
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                FetchError::Unreachable {
                    address: self.address.clone(),
                    detail: root_cause(error),
                }
            }
            _ => {
                let root = root_cause(error);
                if is_credentials_failure(error) || root.contains("credentials") {
                    FetchError::Other(format!(
                        "no usable AWS credentials ({root}): set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available"
                    ))
                } else {
                    FetchError::Other(format!("request to {} failed: {root}", self.address))
                }
            }
        }
    }
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

fn map_code(code: &str, message: &str) -> FetchError {
    let message = message.to_owned();
    match code {
        "ResourceNotFoundException" => FetchError::NotFound(message),
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
            FetchError::AccessDenied(message)
        }
        "DecryptionFailure" => FetchError::AccessDenied(format!(
            "cannot decrypt with the secret's KMS key: {message}"
        )),
        "InvalidRequestException" | "InvalidParameterException" => FetchError::Invalid(message),
        "" => FetchError::Other(message),
        other => FetchError::Other(format!("{other}: {message}")),
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
    fn throttling_is_recognised() {
        assert!(is_throttling(Some("ThrottlingException")));
        assert!(!is_throttling(Some("ResourceNotFoundException")));
        assert!(!is_throttling(None));
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            map_code("ResourceNotFoundException", "").status(),
            "not found"
        );
        assert_eq!(
            map_code("AccessDeniedException", "").status(),
            "access denied"
        );
        assert_eq!(map_code("InvalidRequestException", "").status(), "invalid");
    }
}
