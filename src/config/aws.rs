//! `[aws]`: what overrides aws-config's default chain (environment, profiles, roles).

use super::OwnEnvironment;
use super::layer::{Given, Layers, Place};
use crate::manifest::AwsSection;

/// The role session name when the manifest gives none.
pub const DEFAULT_SESSION_NAME: &str = "envoke";

/// AWS settings from the manifest; unset fields fall back to aws-config's chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// `[aws] region`; when absent, [`AwsSettings::region_in`] looks in the environment.
    pub region: Option<String>,
    /// Endpoint URL (a local server, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Shared config profile name.
    pub profile: Option<String>,
    /// A role to assume with the default chain's credentials before anything else.
    pub assume_role: Option<AssumeRole>,
}

/// `role_arn`, `external_id` and `session_name`: STS AssumeRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// `[aws] role_arn`: the role whose credentials envoke reads the secrets with.
    pub role_arn: String,
    /// What the role's trust policy asks for (`sts:ExternalId`), when it asks.
    pub external_id: Option<String>,
    /// The session name CloudTrail shows for envoke's calls.
    pub session_name: String,
}

/// A manifest key of `[aws]` that only means something with `role_arn`, given without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeyWithoutRole(pub &'static str);

impl AwsSettings {
    /// The settings of `section`, where the environment does not override them: AWS_PROFILE
    /// wins over `[aws] profile`, and AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL over
    /// `[aws] endpoint`, as in the AWS SDKs' own order (a difference is a warning naming both);
    /// aws-config then reads the variable itself.
    pub(super) fn load(
        section: AwsSection,
        layers: &Layers<'_>,
    ) -> Result<AwsSettings, RoleKeyWithoutRole> {
        let AwsSection {
            region,
            endpoint,
            profile,
            role_arn,
            external_id,
            session_name,
        } = section;
        let assume_role = match role_arn {
            Some(role_arn) => Some(AssumeRole {
                role_arn,
                external_id,
                session_name: session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
            }),
            None if external_id.is_some() => return Err(RoleKeyWithoutRole("external_id")),
            None if session_name.is_some() => return Err(RoleKeyWithoutRole("session_name")),
            None => None,
        };
        let manifest_unless = |variables: &[&'static str], key, value: Option<String>| {
            let mut order: Vec<Given<'_, String>> = variables
                .iter()
                .map(|name| Given::Environment(name))
                .collect();
            order.push(Given::Manifest("aws", key, value.as_deref()));
            layers
                .first_text(order)
                .filter(|found| matches!(found.place, Place::Manifest(..)))
                .map(|found| found.value)
        };
        Ok(AwsSettings {
            region,
            endpoint: manifest_unless(
                &["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"],
                "endpoint",
                endpoint,
            ),
            profile: manifest_unless(&["AWS_PROFILE"], "profile", profile),
            assume_role,
        })
    }

    /// The region envoke asks: `[aws] region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (of
    /// envoke's own environment); `None` leaves it to the AWS profile, if any.
    pub fn region_in(&self, environment: &OwnEnvironment<'_>) -> Option<String> {
        self.region.clone().or_else(|| {
            environment
                .get("AWS_REGION")
                .or_else(|| environment.get("AWS_DEFAULT_REGION"))
        })
    }

    /// Each `[aws]` value with its setting's name, for the checks made before connecting.
    pub fn named_values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let role = self.assume_role.as_ref();
        [
            ("[aws] region", self.region.as_deref()),
            ("[aws] endpoint", self.endpoint.as_deref()),
            ("[aws] profile", self.profile.as_deref()),
            ("[aws] role_arn", role.map(|r| r.role_arn.as_str())),
            (
                "[aws] external_id",
                role.and_then(|r| r.external_id.as_deref()),
            ),
            ("[aws] session_name", role.map(|r| r.session_name.as_str())),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }
}
