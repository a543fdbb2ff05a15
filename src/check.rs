//! `envoke check`: a per-variable report of what resolves, as a table or as JSON. Values never
//! appear; only names, references, providers, versions and statuses.

use serde::Serialize;

use crate::config::Config;
use crate::resolve::Resolution;
use crate::sanitize::{escaped, one_line};

/// One row of the report.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    /// The reference as written (canonical form when it parsed).
    pub reference: String,
    /// `aws`, `vault`, or `-` when the reference did not parse.
    pub provider: String,
    /// AWS VersionId or Vault version, when known.
    pub version: Option<String>,
    /// `ok`, `not found`, `access denied`, `unreachable`, `bad credentials`, `key missing`, `invalid`, `error`.
    pub status: &'static str,
    /// Why it is not `ok`.
    pub error: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether every variable resolves.
    pub ok: bool,
    /// One row per referenced variable.
    pub variables: Vec<Row>,
}

impl Report {
    /// Builds the report from the configuration's problems and the resolution.
    pub fn new(config: &Config, resolution: &Resolution) -> Report {
        let mut variables: Vec<Row> = config
            .problems
            .iter()
            .map(|problem| Row {
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
            })
            .collect();
        variables.extend(resolution.outcomes.iter().map(|outcome| Row {
            name: outcome.name.clone(),
            reference: outcome.reference.to_string(),
            provider: outcome.reference.provider().to_owned(),
            version: outcome.version.clone(),
            status: match &outcome.result {
                Ok(_) => "ok",
                Err(failure) => failure.status(),
            },
            error: outcome.result.as_ref().err().map(ToString::to_string),
        }));
        variables.sort_by(|a, b| a.name.cmp(&b.name));
        Report {
            ok: variables.iter().all(|row| row.status == "ok"),
            variables,
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// The report as a table.
    pub fn to_text(&self) -> String {
        let headers = ["NAME", "PROVIDER", "VERSION", "STATUS", "REFERENCE"];
        let rows: Vec<[String; 5]> = self
            .variables
            .iter()
            .map(|row| {
                [
                    escaped(&row.name),
                    row.provider.clone(),
                    row.version.clone().unwrap_or_else(|| "-".to_owned()),
                    row.status.to_owned(),
                    row.reference.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: [&str; 5]| {
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
        line(headers);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        for row in &self.variables {
            if let Some(error) = &row.error {
                out.push_str(&format!("{}: {}\n", escaped(&row.name), one_line(error)));
            }
        }
        let failed = self.variables.iter().filter(|r| r.status != "ok").count();
        out.push_str(&if failed == 0 {
            format!("all {} variables resolve\n", self.variables.len())
        } else {
            format!(
                "{failed} of {} variables do not resolve\n",
                self.variables.len()
            )
        });
        out
    }
}
