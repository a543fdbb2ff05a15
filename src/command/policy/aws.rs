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
use crate::reference::{AwsRef, AwsVersion, Reference};

/// In IAM resource ARNs, `*` and `?` are wildcards and `$` starts a policy variable
/// (`${aws:username}`); none of them is in a secret's name, an account or a region.
const IAM_WILDCARDS: &str = "*?$";

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
    let needs = Needs::of(config, watch)?;
    let document = needs.document();
    let notes = needs.notes(config);
    let text = serde_json::to_string_pretty(&document).expect("a policy serializes") + "\n";
    Ok(Policy { text, notes })
}

/// What the references need granted, and what the notes must say about it.
#[derive(Default)]
struct Needs {
    /// GetSecretValue on these.
    read: BTreeSet<String>,
    /// DescribeSecret on these (watching).
    describe: BTreeSet<String>,
    /// A reference follows the current version: batched.
    batch: bool,
    /// An ARN was built from a name.
    by_name: bool,
    /// An ARN was built without a region.
    region_unknown: bool,
}

impl Needs {
    /// The needs of `config`'s AWS references; refused when there are none, or when one would
    /// widen the policy.
    fn of(config: &Config, watch: bool) -> Result<Needs, PolicyError> {
        let environment = OwnEnvironment(&config.inherited);
        let configured_region = config.aws.region_in(&environment);
        if let Some(region) = &configured_region
            && region.contains(|c| IAM_WILDCARDS.contains(c))
        {
            let setting = if config.aws.region.is_some() {
                "[aws] region"
            } else if environment.get("AWS_REGION").is_some() {
                "AWS_REGION"
            } else {
                "AWS_DEFAULT_REGION"
            };
            return Err(PolicyError::Widening(
                format!("{setting} (`{}`)", crate::sanitize::escaped(region)),
                IAM_WILDCARDS,
            ));
        }
        let mut needs = Needs::default();
        for (_, reference) in config.references() {
            let Reference::Aws(r) = reference else {
                continue;
            };
            refuse_widening(reference, IAM_WILDCARDS)?;
            let resource = needs.arn(r, configured_region.as_ref());
            match r.version {
                AwsVersion::Current => needs.batch = true,
                AwsVersion::Stage(_) => {}
                // A pinned version never changes: nothing to describe.
                AwsVersion::Id(_) => {
                    needs.read.insert(resource);
                    continue;
                }
            }
            if watch {
                needs.describe.insert(resource.clone());
            }
            needs.read.insert(resource);
        }
        let recheck_on = config.watch.as_ref().and_then(|w| w.recheck_on.as_ref());
        if let Some(reference @ Reference::Aws(r)) = recheck_on.filter(|_| watch) {
            refuse_widening(reference, IAM_WILDCARDS)?;
            // Only its version is asked: DescribeSecret, no GetSecretValue.
            let resource = needs.arn(r, configured_region.as_ref());
            needs.describe.insert(resource);
        }
        if needs.read.is_empty() && needs.describe.is_empty() {
            return Err(PolicyError::NothingToGrant("AWS"));
        }
        Ok(needs)
    }

    /// The resource ARN of the secret `r` names: its ARN, or a pattern built from its name
    /// (noting that, and a region that is not known).
    fn arn(&mut self, r: &AwsRef, configured_region: Option<&String>) -> String {
        if r.secret_id.starts_with("arn:") {
            return r.secret_id.clone();
        }
        self.by_name = true;
        let region = r.region.as_ref().or(configured_region);
        self.region_unknown |= region.is_none();
        let region = region.map_or("*", String::as_str);
        format!(
            "arn:{}:secretsmanager:{region}:*:secret:{}-??????",
            partition(region),
            r.secret_id
        )
    }

    /// Whether watching sweeps (and so describes and lists) any secret.
    fn sweeps(&self) -> bool {
        !self.describe.is_empty()
    }

    /// The policy document.
    fn document(&self) -> IamDocument {
        let statement = |sid, action, resource| IamStatement {
            sid,
            effect: "Allow",
            action: vec![action],
            resource,
        };
        let mut statements = vec![statement(
            "EnvokeGetSecretValue",
            "secretsmanager:GetSecretValue",
            IamResource::These(self.read.iter().cloned().collect()),
        )];
        if self.batch {
            statements.push(statement(
                "EnvokeBatchGetSecretValue",
                "secretsmanager:BatchGetSecretValue",
                IamResource::Every("*"),
            ));
        }
        if self.sweeps() {
            statements.push(statement(
                "EnvokeDescribeSecret",
                "secretsmanager:DescribeSecret",
                IamResource::These(self.describe.iter().cloned().collect()),
            ));
            statements.push(statement(
                "EnvokeListSecrets",
                "secretsmanager:ListSecrets",
                IamResource::Every("*"),
            ));
        }
        IamDocument {
            version: "2012-10-17",
            statement: statements,
        }
    }

    /// What the document cannot say.
    fn notes(&self, config: &Config) -> Vec<String> {
        let mut notes = Vec::new();
        if self.by_name {
            notes.push(
                "ARNs built from secret names match any account (*) and the 6 characters Secrets \
                 Manager appends to a name (-??????); put your account id in place of the *"
                    .to_owned(),
            );
        }
        if self.region_unknown {
            notes.push(
                "no region configured (?region=, [aws] region, AWS_REGION): ARNs built from names \
                 match every region"
                    .to_owned(),
            );
        }
        if self.batch {
            notes.push(
                "secretsmanager:BatchGetSecretValue has no resource-level permissions in IAM, hence \
                 Resource \"*\"; Secrets Manager still checks GetSecretValue on each secret of a batch"
                    .to_owned(),
            );
        }
        if self.sweeps() {
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
        notes
    }
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
