//! Error mapping: what a failed Secrets Manager call means, in the words of [`FetchError`].
//!
//! The SDK reports a refused permission, a missing secret, a throttled call, an unreachable
//! endpoint and a failing credential chain as the same `SdkError`, often with a root cause that
//! names none of them (the last credential provider tried, an XML body a JSON protocol cannot
//! read). The user needs to know which of these it is and what to do, so each message names the
//! action and the secret, the address, or the setting to fix, and never a value.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use super::AwsProvider;
use super::connect::{BodyTooLarge, MAX_BODY};
use crate::provider::{FetchError, body_excerpt, root_cause};
use crate::sanitize::one_line;

/// The operation a call made, and on which secret, for error messages.
pub(super) struct Call<'a> {
    /// The API action, as a policy names it after `secretsmanager:`.
    pub(super) operation: &'static str,
    /// The secret the call was about; `None` for one about several.
    pub(super) secret_id: Option<&'a str>,
    /// The region the call went to.
    pub(super) region: &'a str,
}

impl AwsProvider {
    /// Where requests for `region` go.
    fn address(&self, region: &str) -> String {
        if region == self.region || self.endpoint.is_some() {
            self.address.clone()
        } else {
            format!("https://secretsmanager.{region}.amazonaws.com")
        }
    }

    /// The error to report for a failed call: what was refused, what is missing, what did not
    /// answer, or what is wrong with the credentials.
    pub(super) fn map_sdk_error<E>(
        &self,
        error: &SdkError<E, HttpResponse>,
        call: &Call<'_>,
    ) -> FetchError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if is_denied(error) {
            return map_code("AccessDenied", error.message().unwrap_or_default(), call);
        }
        if is_too_large(error) {
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
            _ => self.failed_before_answer(error, call),
        }
    }

    /// A call that got no answer to map, for a reason other than the network: most often the
    /// credentials (a profile that is missing or whose SSO session expired, a role that cannot
    /// be assumed, none at all).
    fn failed_before_answer(
        &self,
        error: &(dyn std::error::Error + 'static),
        call: &Call<'_>,
    ) -> FetchError {
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

/// Whether the answer was refused for its size (by [`BodyTooLarge`]'s Content-Length check or
/// the body's limit as it was read).
fn is_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.is::<BodyTooLarge>() || e.is::<http_body_util::LengthLimitError>())
}

/// Whether the call was refused for lack of permission: an access-denied code, or an HTTP 403
/// with no code at all (moto's IAM enforcement answers 403 with an XML body that a JSON protocol
/// cannot read).
pub(super) fn is_denied<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error.code() {
        Some(code) => is_access_denied_code(code),
        None => error
            .raw_response()
            .is_some_and(|response| response.status().as_u16() == 403),
    }
}

/// The error codes that AWS services answer a missing permission with.
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

/// Whether `code` says the call was throttled (after the SDK's own retries).
pub(super) fn is_throttling(code: Option<&str>) -> bool {
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

/// The error for a `code` and `message` that Secrets Manager answered `call` with.
pub(super) fn map_code(code: &str, message: &str, call: &Call<'_>) -> FetchError {
    let message = one_line(message);
    match code {
        "ResourceNotFoundException" => FetchError::NotFound(not_found(&message, call)),
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

/// What a not-found answer was about: the secret, the region it was looked for in, and the
/// account when the id names one (an ARN) — a secret in another region or account is the usual
/// cause. Secrets Manager's own message is kept when it says more than that it found nothing
/// (a version or a stage that is not there).
fn not_found(message: &str, call: &Call<'_>) -> String {
    let mut text = match call.secret_id {
        Some(secret_id) => format!("no secret {} in {}", one_line(secret_id), call.region),
        None => format!("in {}", call.region),
    };
    let account = call
        .secret_id
        .and_then(|id| id.strip_prefix("arn:"))
        .and_then(|arn| arn.split(':').nth(3))
        .filter(|account| !account.is_empty());
    if let Some(account) = account {
        text.push_str(&format!(", account {}", one_line(account)));
    }
    let generic = message.is_empty() || message.ends_with("can't find the specified secret.");
    if !generic {
        text.push_str(&format!(" ({message})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let missing = map_code(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
            &call,
        );
        assert_eq!(missing.status(), "not found");
        assert_eq!(
            missing.to_string(),
            "not found: no secret prod/db in eu-west-1"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db";
        let by_arn = Call {
            secret_id: Some(arn),
            ..call
        };
        let stage = "Secrets Manager can't find the specified secret value for staging label: X";
        assert_eq!(
            map_code("ResourceNotFoundException", stage, &by_arn).to_string(),
            format!("not found: no secret {arn} in eu-west-1, account 123456789012 ({stage})")
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
}
