//! The IAM policy for the `aws-sm://` references:
//!
//! - `secretsmanager:GetSecretValue` on each secret: a name becomes the ARN pattern
//!   `arn:PARTITION:secretsmanager:REGION:*:secret:NAME-??????` (Secrets Manager appends six
//!   random characters to a name; the account is not knowable without credentials), a full ARN is
//!   taken as it is.
//! - `secretsmanager:BatchGetSecretValue` when a reference follows the current version (envoke
//!   batches those). IAM has no resource type for it, so it needs `Resource: "*"`; Secrets
//!   Manager still checks GetSecretValue on every secret of a batch, so this grants no secret.
//! - With watching, `secretsmanager:DescribeSecret` on each secret not pinned to a version id,
//!   and `secretsmanager:ListSecrets` on `*` (no resource-level permissions; optional: without
//!   it the sweep describes each quiet secret instead, see docs/rotation.md).

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Policy, PolicyError, refuse_problems, refuse_widening};
use crate::config::{Config, OwnEnvironment};
use crate::reference::{AwsVersion, Reference};

/// In IAM resource ARNs, `*` and `?` are wildcards.
const IAM_WILDCARDS: &str = "*?";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IamDocument {
    version: &'static str,
    statement: Vec<IamStatement>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IamStatement {
    sid: &'static str,
    effect: &'static str,
    action: Vec<&'static str>,
    resource: IamResource,
}

#[derive(Serialize)]
#[serde(untagged)]
enum IamResource {
    Every(&'static str),
    These(Vec<String>),
}

/// The IAM policy for the `aws-sm://` references of `config`.
pub fn policy(config: &Config, watch: bool) -> Result<Policy, PolicyError> {
    refuse_problems(config)?;
    let configured_region = config.aws.region_in(&OwnEnvironment(&config.inherited));
    let mut read = BTreeSet::new();
    let mut describe = BTreeSet::new();
    let mut batch = false;
    let mut by_name = false;
    let mut region_unknown = false;
    for (_, reference) in config.references() {
        let Reference::Aws(r) = reference else {
            continue;
        };
        refuse_widening(reference, IAM_WILDCARDS)?;
        let resource = if r.secret_id.starts_with("arn:") {
            r.secret_id.clone()
        } else {
            by_name = true;
            let region = r.region.as_ref().or(configured_region.as_ref());
            region_unknown |= region.is_none();
            let region = region.map_or("*", String::as_str);
            format!(
                "arn:{}:secretsmanager:{region}:*:secret:{}-??????",
                partition(region),
                r.secret_id
            )
        };
        match r.version {
            AwsVersion::Current => batch = true,
            AwsVersion::Stage(_) => {}
            AwsVersion::Id(_) => {
                read.insert(resource);
                continue;
            }
        }
        if watch {
            describe.insert(resource.clone());
        }
        read.insert(resource);
    }
    if read.is_empty() {
        return Err(PolicyError::NothingToGrant("AWS"));
    }
    let mut statement = vec![IamStatement {
        sid: "EnvokeGetSecretValue",
        effect: "Allow",
        action: vec!["secretsmanager:GetSecretValue"],
        resource: IamResource::These(read.into_iter().collect()),
    }];
    if batch {
        statement.push(IamStatement {
            sid: "EnvokeBatchGetSecretValue",
            effect: "Allow",
            action: vec!["secretsmanager:BatchGetSecretValue"],
            resource: IamResource::Every("*"),
        });
    }
    let sweeps = !describe.is_empty();
    if sweeps {
        statement.push(IamStatement {
            sid: "EnvokeDescribeSecret",
            effect: "Allow",
            action: vec!["secretsmanager:DescribeSecret"],
            resource: IamResource::These(describe.into_iter().collect()),
        });
        statement.push(IamStatement {
            sid: "EnvokeListSecrets",
            effect: "Allow",
            action: vec!["secretsmanager:ListSecrets"],
            resource: IamResource::Every("*"),
        });
    }
    let document = IamDocument {
        version: "2012-10-17",
        statement,
    };
    let mut notes = Vec::new();
    if by_name {
        notes.push(
            "ARNs built from secret names match any account (*) and the 6 characters Secrets \
             Manager appends to a name (-??????); put your account id in place of the *"
                .to_owned(),
        );
    }
    if region_unknown {
        notes.push(
            "no region configured (?region=, [aws] region, AWS_REGION): ARNs built from names \
             match every region"
                .to_owned(),
        );
    }
    if batch {
        notes.push(
            "secretsmanager:BatchGetSecretValue has no resource-level permissions in IAM, hence \
             Resource \"*\"; Secrets Manager still checks GetSecretValue on each secret of a batch"
                .to_owned(),
        );
    }
    if sweeps {
        notes.push(
            "secretsmanager:ListSecrets is optional and has no resource-level permissions, hence \
             Resource \"*\": the watch's sweep asks it about 10 secrets a call; without it, each \
             secret whose rotation is not due costs a DescribeSecret per sweep instead \
             (docs/rotation.md). It shows the names and metadata of every secret in the \
             account, never a value"
                .to_owned(),
        );
    }
    notes.push(
        "kms:Decrypt: a secret encrypted with a customer-managed KMS key also needs kms:Decrypt \
         on that key (the default aws/secretsmanager key needs nothing)"
            .to_owned(),
    );
    if let Some(role) = &config.aws.assume_role {
        notes.push(format!(
            "sts:AssumeRole: this policy belongs to the role {}; the credentials envoke starts \
             with need sts:AssumeRole on it, and its trust policy must allow them",
            role.role_arn
        ));
    }
    let text = serde_json::to_string_pretty(&document).expect("a policy serializes") + "\n";
    Ok(Policy { text, notes })
}

/// The partition of a region's ARNs.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("*"), "aws");
    }
}
