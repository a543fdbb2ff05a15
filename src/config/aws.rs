//! `[aws]`: what overrides aws-config's default chain (environment, profiles, roles).

use crate::manifest::AwsSection;

/// AWS settings from the manifest; unset fields fall back to aws-config's chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    /// Endpoint URL (a local server, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Shared config profile name.
    pub profile: Option<String>,
}

impl AwsSettings {
    pub(super) fn load(section: AwsSection) -> AwsSettings {
        let AwsSection {
            region,
            endpoint,
            profile,
        } = section;
        AwsSettings {
            region,
            endpoint,
            profile,
        }
    }
}
