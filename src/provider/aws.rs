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
//!
//! The work is split by concern: [`connect`] sets the clients up and says what is wrong with
//! the settings when the credentials fail, [`fetch`] reads values, [`rotation`] reads the
//! metadata the watcher follows (no value), [`errors`] turns the SDK's failures into
//! [`FetchError`](super::FetchError)s, and [`http`] is the HTTP client underneath them all. Each
//! adds its own `impl AwsProvider`.

mod connect;
mod errors;
mod fetch;
mod http;
mod rotation;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;

pub use self::rotation::{RotationSchedule, SecretState};

use self::connect::ProfileProblem;
use crate::reference::AwsVersion;

/// One distinct fetch: a secret id, its region and the version wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AwsRequest {
    /// Name or ARN.
    pub secret_id: String,
    /// `?region=`; `None` is the configured region.
    pub region: Option<String>,
    /// The version wanted: the current one, a staging label or a version id.
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

/// What [`AwsProvider::create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The secret is made.
    Yes,
    /// A secret of that name exists already; nothing was written.
    AlreadyExists,
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
    /// `connect::identity`).
    identity: String,
    /// The configured region's client, and the others' as they are first needed.
    clients: Mutex<HashMap<String, Client>>,
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
}
