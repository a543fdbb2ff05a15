//! Rotation metadata, for the watcher: which version holds the followed stage, and when
//! Secrets Manager will rotate next. No value is read.
//!
//! Watching many secrets with a DescribeSecret each would cost a call per secret per sweep, so
//! [`AwsProvider::list`] asks ListSecrets instead, [`LIST_NAMES`] name prefixes a call, and the
//! watcher describes only what the listing did not answer. A listing is bounded
//! ([`LIST_PAGES`]), because a prefix that many other secrets share, or a server that never
//! stops paging, must not make a sweep endless.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::list_secrets::{ListSecretsError, ListSecretsOutput};
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, RotationRulesType, SecretListEntry,
};
use futures::future::join_all;

use super::errors::Call;
use super::{AwsProvider, AwsRequest, answers};
use crate::provider::FetchError;

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
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

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
    /// The requests the answers accounted for, and what they say of each.
    pub states: HashMap<AwsRequest, SecretState>,
    /// Why calls failed, one error a failed call.
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
    /// Its rotation schedule.
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

impl AwsProvider {
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
            let output = match self.list_page(region, &filter, token.take()).await {
                Ok(output) => output,
                Err(error) => {
                    return (
                        found,
                        ListOutcome::Failed(self.map_sdk_error(&error, &call)),
                    );
                }
            };
            for entry in output.secret_list.unwrap_or_default() {
                let states = states_of(&entry, &wanted);
                if states.is_empty() {
                    // Another secret whose name starts like ours: the prefix that found it.
                    crowding.extend(prefixes_of(&prefixes, entry.name.as_deref()));
                }
                found.extend(states);
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
        (found, ListOutcome::Crowded(crowded(wanted, &crowding)))
    }

    /// One page of ListSecrets' answer to `filter` in `region`, from `token` on.
    async fn list_page(
        &self,
        region: Option<&str>,
        filter: &Filter,
        token: Option<String>,
    ) -> Result<ListSecretsOutput, SdkError<ListSecretsError, HttpResponse>> {
        self.client(region)
            .list_secrets()
            .filters(filter.clone())
            .max_results(LIST_PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
    }
}

/// The states of the `wanted` requests that a ListSecrets `entry` answers; none when it is
/// another secret.
fn states_of(entry: &SecretListEntry, wanted: &[&AwsRequest]) -> Vec<(AwsRequest, SecretState)> {
    let (arn, name) = (entry.arn.as_deref(), entry.name.as_deref());
    let answered: Vec<&&AwsRequest> = wanted
        .iter()
        .filter(|r| answers(&r.secret_id, arn, name))
        .collect();
    if answered.is_empty() {
        return Vec::new();
    }
    let schedule = RotationSchedule::from_api(
        entry.rotation_enabled,
        entry.next_rotation_date.as_ref(),
        entry.rotation_rules.as_ref(),
    );
    answered
        .into_iter()
        .map(|request| {
            let state = SecretState {
                version: holding(
                    entry.secret_versions_to_stages.clone(),
                    request.followed_stage(),
                ),
                schedule: schedule.clone(),
            };
            ((*request).clone(), state)
        })
        .collect()
}

/// The `prefixes` that a secret named `name` starts with (ignoring case): what found it.
fn prefixes_of<'p>(prefixes: &[&'p str], name: Option<&str>) -> Vec<&'p str> {
    let name = name.unwrap_or_default().to_ascii_lowercase();
    prefixes
        .iter()
        .filter(|p| name.starts_with(&p.to_ascii_lowercase()))
        .copied()
        .collect()
}

/// The `wanted` requests that other secrets crowd out of a listing, by their name prefix;
/// all of them when the listing's entries matched none (a server that answers what it likes).
/// The others of the call were only starved, and are found once the crowded ones are
/// described instead.
fn crowded(wanted: Vec<&AwsRequest>, crowding: &BTreeSet<&str>) -> Vec<AwsRequest> {
    wanted
        .into_iter()
        .filter(|r| {
            crowding.is_empty() || name_prefix(&r.secret_id).is_some_and(|p| crowding.contains(p))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
