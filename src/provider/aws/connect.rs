//! Connecting: from the settings and envoke's environment to Secrets Manager clients, and what
//! to say when that cannot work.
//!
//! Everything that can be found wrong before the first call is found here, so that the error
//! names the setting rather than the SDK's symptom: a control character in a setting (the SDK
//! panics on it in a header), no region, a profile that does not exist or whose SSO session is
//! what fails. The clients cap every answer's body ([`CapBody`]) and bound every call's time.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::sync::Mutex;
use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;

use super::{AwsProvider, http};
use crate::config::OwnEnvironment;
use crate::config::aws::{AssumeRole, AwsSettings};
use crate::provider::FetchError;
use crate::sanitize::one_line;

/// The largest answer envoke reads: a BatchGetSecretValue of 20 secrets of Secrets Manager's
/// maximum 64 KiB, JSON-escaped, stays well below it.
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;

/// Caps every Secrets Manager answer at [`MAX_BODY`]: refused at once when its Content-Length is
/// larger, and as soon as more bytes arrive otherwise (the SDK reads a whole body into memory
/// before parsing it, and has no limit of its own). The whole exchange, body included, is bounded
/// by the operation timeout set in [`AwsProvider::connect`].
#[derive(Debug)]
struct CapBody;

/// The error of an answer refused by [`CapBody`] for its Content-Length.
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {} MiB", MAX_BODY / (1024 * 1024))]
pub(super) struct BodyTooLarge;

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

impl AwsProvider {
    /// Checks the settings, loads the AWS configuration and, with `role_arn`, sets up the role's
    /// credentials. Fails when a setting has a control character or no region is configured.
    /// `environment` is envoke's own, which aws-config reads.
    pub async fn connect(
        settings: &AwsSettings,
        environment: &[(OsString, OsString)],
    ) -> Result<AwsProvider, FetchError> {
        check_control_characters(settings, environment)?;
        let mut sdk_config = loader(settings, environment).load().await;
        let profile = ProfileProblem::find(settings, environment).await;
        let Some(region) = sdk_config.region().map(ToString::to_string) else {
            return Err(no_region(profile.as_ref()));
        };
        if let Some(role) = &settings.assume_role {
            sdk_config = assume_role(sdk_config, role).await;
        }
        let address = secrets_manager_address(settings, environment, &sdk_config, &region);
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

    /// The configured region: where a reference without `?region=` is read.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whose credentials the calls are signed with, for the audit events.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The client for `region` (`None`: the configured one), built on first use from the shared
    /// SdkConfig with the region overridden.
    pub(super) fn client(&self, region: Option<&str>) -> Client {
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
}

/// aws-config's loader, with envoke's HTTP client and timeouts and the settings that override
/// its chains.
fn loader(settings: &AwsSettings, environment: &[(OsString, OsString)]) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http::client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
    let env = OwnEnvironment(environment);
    // aws-config's default chains look at the environment first and stop there when it has
    // what they need; building the rest of them costs an STS client (web identity) and an
    // IMDS client whether or not they are asked, about 6% of a launch's CPU. So a region or
    // keys the environment gives are handed over directly: the same values, from the same
    // place the chains would take them.
    let region = settings.region_in(&env);
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
    loader
}

/// The error for a configuration without a region.
fn no_region(profile: Option<&ProfileProblem>) -> FetchError {
    // A profile that does not exist gives no region: that is the error to report.
    if let Some(problem @ ProfileProblem::Missing { .. }) = profile {
        return FetchError::Other(problem.message(""));
    }
    FetchError::Other(
        "no AWS region configured: set AWS_REGION or `region` under [aws] in the manifest"
            .to_owned(),
    )
}

/// `sdk_config` with credentials that assume `role` (STS AssumeRole) with its own.
async fn assume_role(sdk_config: SdkConfig, role: &AssumeRole) -> SdkConfig {
    // STS is asked with the chain's credentials, at its own endpoint (AWS_ENDPOINT_URL_STS
    // or AWS_ENDPOINT_URL), never at `[aws] endpoint`, which is Secrets Manager's.
    let mut builder = AssumeRoleProvider::builder(&role.role_arn)
        .configure(&sdk_config)
        .session_name(&role.session_name);
    if let Some(external_id) = &role.external_id {
        builder = builder.external_id(external_id);
    }
    let provider = builder.build().await;
    sdk_config
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// Where the configured region's Secrets Manager requests go, for error messages (without an
/// endpoint's userinfo).
fn secrets_manager_address(
    settings: &AwsSettings,
    environment: &[(OsString, OsString)],
    sdk_config: &SdkConfig,
    region: &str,
) -> String {
    let address = settings
        .endpoint
        .clone()
        .or_else(|| OwnEnvironment(environment).get("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
        .or_else(|| sdk_config.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
    // For messages: an endpoint's userinfo is no one's business.
    crate::sanitize::redacted(&address)
}

/// What is wrong, or may be, with the shared-config profile in use.
#[derive(Debug, Clone)]
pub(super) enum ProfileProblem {
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
            OwnEnvironment(environment).get("AWS_PROFILE"),
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
                let file = |variable, default: &str| match OwnEnvironment(environment).get(variable)
                {
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
    pub(super) fn message(&self, root: &str) -> String {
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

/// Whose credentials envoke uses, from the settings alone: the role it assumes; otherwise the
/// first source of aws-config's default chain that is configured (environment keys, a profile,
/// web identity, the ECS container endpoint), or the rest of the chain (the default profile, the
/// instance role). No value of a credential, not even an access key id. STS GetCallerIdentity
/// would name the caller exactly, at the cost of a call and a dependency; the role ARN or the
/// profile is what a policy is written against anyway.
fn identity(settings: &AwsSettings, environment: &[(OsString, OsString)]) -> String {
    let env = |name| OwnEnvironment(environment).get(name);
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

#[cfg(test)]
mod tests {
    use super::*;

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
