//! `envoke check`: a per-variable report of what resolves, as a table or as JSON. Values never
//! appear; only names, references, providers, versions and statuses.
//!
//! With watching (`--watch`, ENVOKE_WATCH or the manifest's `[watch]`), each secret that resolved
//! is also asked what a watch will ask, with the provider functions the watcher uses: AWS
//! DescribeSecret, a KV v2 secret's metadata, a renewable lease's renewal. A denial is reported
//! as `watch denied`, naming the permission. KV v1 and lease-less secrets of other engines are
//! watched by reading them again, which the resolution has just proven.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde::Serialize;

use crate::cli::{CheckArgs, Format};
use crate::config::template::Template;
use crate::config::{Config, ConfigError, Flags, Origin, Purpose, Source, Variable};
use crate::error::{Error, Exit};
use crate::provider::{Backends, DocumentKind, FetchError};
use crate::resolve::{FetchKey, Fetched, Resolution, resolve};
use crate::sanitize::{escaped, one_line};

/// The status of a variable that resolves but whose watch would be denied.
const WATCH_DENIED: &str = "watch denied";

/// `envoke check`: resolves everything, gives back what it fetched, prints the report.
pub async fn check(args: CheckArgs) -> Result<Exit, Error> {
    let config = super::load_config(
        &Flags {
            profile: args.profile.clone(),
            ..args.manifest.flags()
        },
        Purpose::Check,
    )?;
    if config.found_nothing() && !args.allow_empty {
        return Err(ConfigError::NothingToCheck.into());
    }
    let backends = Backends::connect(&config).await;
    let resolution = resolve(&config, &backends).await;
    // What watching would ask, asked now (a lease renewal among it), before the leases go.
    let watch_denials = if args.watch || config.watch.is_some() {
        Some(watch_denials(&backends, &resolution).await)
    } else {
        None
    };
    resolution.audit(&backends, "check", None);
    // A check must not leave dynamic credentials, or a login, behind.
    backends.revoke_all(&resolution.leases()).await;
    backends.logout().await;
    let report = Report::new(&config, &resolution, watch_denials.as_ref());
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json() + "\n",
    };
    print!("{text}");
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Unresolved
    })
}

/// What watching would be denied, per fetched secret: the permission it needs. Pinned references
/// are never watched and not asked about.
async fn watch_denials(backends: &Backends, resolution: &Resolution) -> BTreeMap<FetchKey, String> {
    let probes = resolution
        .fetched
        .iter()
        .filter(|fetched| !fetched.key.pinned())
        .map(|fetched| async move { (fetched.key.clone(), watch_denial(backends, fetched).await) });
    join_all(probes)
        .await
        .into_iter()
        .filter_map(|(key, denial)| Some((key, denial?)))
        .collect()
}

/// Asks what the watcher would ask about `fetched`; the permission it lacks, if denied.
async fn watch_denial(backends: &Backends, fetched: &Fetched) -> Option<String> {
    let denied = |result: Result<(), FetchError>, permission: String| match result {
        Err(FetchError::AccessDenied(_)) => Some(format!("watching needs {permission}")),
        Err(error) => {
            tracing::warn!(secret = %fetched.key, %error, "cannot check what watching needs");
            None
        }
        Ok(()) => None,
    };
    match (&fetched.key, &fetched.kind, &fetched.lease) {
        (FetchKey::Vault(_), _, Some(lease)) if lease.renewable => {
            let vault = backends.vault().ok()?;
            let result = vault.renew(lease, lease.duration_secs).await.map(drop);
            denied(result, "update on sys/leases/renew".to_owned())
        }
        // Replaced near its end by fresh credentials: a read, which resolving just proved.
        (_, _, Some(_)) => None,
        (FetchKey::Aws(request), DocumentKind::Aws, None) => {
            let aws = backends.aws().ok()?;
            match aws.describe(request).await {
                // The denial names the action, the secret and the region already.
                Err(FetchError::AccessDenied(what)) => Some(format!("watching needs {what}")),
                result => denied(result.map(drop), String::new()),
            }
        }
        (FetchKey::Vault(_), DocumentKind::VaultKv2 { mount, rest }, None) => {
            let vault = backends.vault().ok()?;
            let result = vault.kv2_current_version(mount, rest).await.map(drop);
            denied(result, format!("read on {mount}metadata/{rest}"))
        }
        _ => None,
    }
}

/// One row of the report.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The variable's name, as the child would get it; the rows are sorted by it.
    pub name: String,
    /// The reference as written (canonical form when it parsed); `(literal)` or `(template)`
    /// for those, whose values are never shown.
    pub reference: String,
    /// `aws`, `vault`, or `-` for a literal, a template or a reference that did not parse.
    pub provider: String,
    /// AWS VersionId or Vault version, when known.
    pub version: Option<String>,
    /// `ok`, `literal`, `not found`, `access denied`, `unreachable`, `bad credentials`,
    /// `key missing`, `invalid`, `error`, `watch denied` (it resolves, but watching it would be
    /// refused). A template's is `ok` or the status of a variable it names that has no value.
    pub status: &'static str,
    /// Why it is not `ok`.
    pub error: Option<String>,
    /// With a profile: where the variable was defined, `profile`, `env` (inherited from `[env]`)
    /// or `environment` (a reference in envoke's own environment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    /// With a profile: whether the variable comes from `[env]` rather than the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherited: Option<bool>,
    /// What the error is about beyond this variable (see
    /// [`crate::config::VariableProblem::subject`]): rows with the same subject and error share
    /// one line under the table.
    #[serde(skip)]
    subject: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether every variable resolves.
    pub ok: bool,
    /// One row per variable: references (one per key of an expanded secret), literals,
    /// templates, and the entries that are invalid.
    pub variables: Vec<Row>,
    /// Whether what watching needs was checked too.
    #[serde(skip)]
    watch: bool,
    /// The profile checked, if any.
    #[serde(skip)]
    profile: Option<String>,
}

/// The status of a literal: it has its value without asking anyone.
const LITERAL: &str = "literal";

/// Whether a row's variable gets a value (watching it may still be denied).
fn resolves(status: &str) -> bool {
    matches!(status, "ok" | LITERAL)
}

impl Row {
    /// The row of a literal or a template: no provider, no version, and the kind of value in
    /// place of the value.
    fn unfetched(
        variable: &Variable,
        status: &'static str,
        error: Option<String>,
        profile: Option<&str>,
    ) -> Row {
        let (from, inherited) = origin_cells(profile, Some(variable.origin));
        Row {
            name: variable.name.clone(),
            reference: match variable.source {
                Source::Template(_) => "(template)",
                _ => "(literal)",
            }
            .to_owned(),
            provider: "-".to_owned(),
            version: None,
            status,
            error,
            from,
            inherited,
            subject: None,
        }
    }
}

/// A template's status: `ok` when every variable it names gets a value, else the status of the
/// first that does not. `rows` holds the literals' and references' rows; templates that name
/// templates are followed (the configuration refused circles).
fn template_status(
    template: &Template,
    rows: &[Row],
    config: &Config,
) -> (&'static str, Option<String>) {
    let mut pending: Vec<&Template> = vec![template];
    let mut seen = BTreeSet::new();
    while let Some(template) = pending.pop() {
        for name in template.names() {
            if !seen.insert(name.to_owned()) {
                continue;
            }
            let named = config.variables.iter().find(|v| v.name == name);
            if let Some(Variable {
                source: Source::Template(inner),
                ..
            }) = named
            {
                pending.push(inner);
                continue;
            }
            let status = match rows.iter().find(|row| row.name == name) {
                Some(row) if resolves(row.status) || row.status == WATCH_DENIED => continue,
                Some(row) => row.status,
                // A name an expansion was expected to make, and did not.
                None => "key missing",
            };
            let error = format!("the template names `{}`, which has no value", escaped(name));
            return (status, Some(error));
        }
    }
    ("ok", None)
}

/// A row's `from` and `inherited`, shown only when a profile is applied.
fn origin_cells(
    profile: Option<&str>,
    origin: Option<Origin>,
) -> (Option<&'static str>, Option<bool>) {
    if profile.is_none() {
        return (None, None);
    }
    match origin {
        Some(Origin::Profile) => (Some("profile"), Some(false)),
        Some(Origin::Manifest) => (Some("env"), Some(true)),
        Some(Origin::Environment) => (Some("environment"), Some(false)),
        None => (Some("-"), Some(false)),
    }
}

impl Report {
    /// Builds the report from the configuration's problems and the resolution, and with
    /// `watch_denials` (when watching was checked) what watching would be denied.
    pub fn new(
        config: &Config,
        resolution: &Resolution,
        watch_denials: Option<&BTreeMap<FetchKey, String>>,
    ) -> Report {
        let profile = config.profile.as_deref();
        let mut variables: Vec<Row> = config
            .problems
            .iter()
            .map(|problem| {
                let (from, inherited) = origin_cells(profile, problem.origin);
                Row {
                    name: problem.name.clone(),
                    reference: problem.reference.clone().unwrap_or_default(),
                    provider: problem
                        .reference
                        .as_deref()
                        .and_then(|r| r.split_once("://").map(|(scheme, _)| scheme))
                        .map_or("-", |scheme| match scheme {
                            crate::reference::AWS_SCHEME => "aws",
                            crate::reference::VAULT_SCHEME => "vault",
                            _ => "-",
                        })
                        .to_owned(),
                    version: None,
                    status: "invalid",
                    error: Some(problem.reason.clone()),
                    from,
                    inherited,
                    subject: problem.subject.clone(),
                }
            })
            .collect();
        variables.extend(resolution.outcomes.iter().map(|outcome| {
            let denial = watch_denials
                .and_then(|denials| denials.get(&FetchKey::of(&outcome.reference)))
                .filter(|_| outcome.result.is_ok());
            let (from, inherited) = origin_cells(profile, Some(outcome.origin));
            Row {
                name: outcome.name.clone(),
                reference: outcome.reference.to_string(),
                provider: outcome.reference.provider().to_owned(),
                version: outcome.version.clone(),
                status: match (&outcome.result, denial) {
                    (Ok(_), None) => "ok",
                    (Ok(_), Some(_)) => WATCH_DENIED,
                    (Err(failure), _) => failure.status(),
                },
                error: match (&outcome.result, denial) {
                    (Err(failure), _) => Some(failure.to_string()),
                    (Ok(_), denial) => denial.cloned(),
                },
                from,
                inherited,
                subject: outcome
                    .result
                    .as_ref()
                    .err()
                    .and_then(|failure| failure.subject(&outcome.reference)),
            }
        }));
        let literals = config
            .variables
            .iter()
            .filter_map(|variable| match &variable.source {
                Source::Literal(_) => Some(Row::unfetched(variable, LITERAL, None, profile)),
                _ => None,
            });
        let literals: Vec<Row> = literals.collect();
        variables.extend(literals);
        let templates: Vec<Row> = config
            .variables
            .iter()
            .filter_map(|variable| match &variable.source {
                Source::Template(template) => {
                    let (status, error) = template_status(template, &variables, config);
                    Some(Row::unfetched(variable, status, error, profile))
                }
                _ => None,
            })
            .collect();
        variables.extend(templates);
        variables.sort_by(|a, b| a.name.cmp(&b.name));
        Report {
            ok: variables.iter().all(|row| resolves(row.status)),
            variables,
            watch: watch_denials.is_some(),
            profile: config.profile.clone(),
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// The report as a table.
    pub fn to_text(&self) -> String {
        let mut out = self.table();
        // An error shared by several rows (a failed login, say) is said once, naming them.
        let mut notes: Vec<(Vec<&str>, &Option<String>, &str)> = Vec::new();
        for row in &self.variables {
            let Some(error) = &row.error else { continue };
            match notes.iter_mut().find(|(_, subject, shared)| {
                row.subject.is_some() && **subject == row.subject && *shared == error
            }) {
                Some((names, _, _)) => names.push(&row.name),
                None => notes.push((vec![&row.name], &row.subject, error)),
            }
        }
        for (names, _, error) in notes {
            let names: Vec<String> = names.into_iter().map(escaped).collect();
            out.push_str(&format!("{}: {}\n", names.join(", "), one_line(error)));
        }
        out.push_str(&self.summary());
        out
    }

    /// The table: a line per variable, columns padded to their widest cell. With a profile, a
    /// FROM column says where each variable was defined.
    fn table(&self) -> String {
        let mut headers = vec!["NAME", "PROVIDER", "VERSION", "STATUS"];
        if self.profile.is_some() {
            headers.push("FROM");
        }
        headers.push("REFERENCE");
        let rows: Vec<Vec<String>> = self
            .variables
            .iter()
            .map(|row| {
                let mut cells = vec![
                    escaped(&row.name),
                    row.provider.clone(),
                    row.version
                        .as_deref()
                        .map_or_else(|| "-".to_owned(), escaped),
                    row.status.to_owned(),
                ];
                if let Some(from) = row.from {
                    cells.push(match row.inherited {
                        Some(true) => format!("{from} (inherited)"),
                        _ => from.to_owned(),
                    });
                }
                cells.push(row.reference.clone());
                cells
            })
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&headers);
        for row in &rows {
            line(&row.iter().map(String::as_str).collect::<Vec<_>>());
        }
        out
    }

    /// The last lines: how many variables resolve (and can be watched), how many do not.
    fn summary(&self) -> String {
        let mut out = String::new();
        let total = self.variables.len();
        let count =
            |wanted: fn(&str) -> bool| self.variables.iter().filter(|r| wanted(r.status)).count();
        let failed = count(|status| !resolves(status) && status != WATCH_DENIED);
        let unwatchable = count(|status| status == WATCH_DENIED);
        if failed == 0 && unwatchable == 0 {
            let watched = if self.watch {
                " and can be watched"
            } else {
                ""
            };
            out.push_str(&format!("all {total} variables resolve{watched}\n"));
        }
        if failed > 0 {
            out.push_str(&format!("{failed} of {total} variables do not resolve\n"));
        }
        if unwatchable > 0 {
            out.push_str(&format!(
                "{unwatchable} of {total} variables resolve but cannot be watched\n"
            ));
        }
        let inherited = self
            .variables
            .iter()
            .filter(|r| r.inherited == Some(true))
            .count();
        if let (Some(profile), 1..) = (&self.profile, inherited) {
            out.push_str(&format!(
                "{inherited} of {total} variables are inherited from [env], not defined by profile \
                 {profile} (`inherit = false` in [profiles.{profile}] leaves them out)\n",
                profile = escaped(profile),
            ));
        }
        out
    }
}
