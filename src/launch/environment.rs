//! The child's environment, built in exactly one place ([`ChildEnvironment::build`]): the
//! inherited environment, the manifest's literals, the resolved values and the composed
//! templates, with the secret files' paths in place of their values.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use zeroize::Zeroizing;

use super::files::{self, SecretFiles};
use crate::config::template::{MAX_COMPOSED, Template};
use crate::config::{Config, Origin, Variable};
use crate::resolve::Resolution;

/// The child's environment. Values sit in zeroizing buffers, cleared when this is dropped.
pub struct ChildEnvironment {
    pub(super) entries: Vec<(OsString, Zeroizing<Vec<u8>>)>,
    /// With `--mask`: each resolved variable's value (also one given as a file), to be masked
    /// in the child's output. Empty without `--mask`.
    pub(super) masked: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for ChildEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Why the child's environment cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// A template's value cannot be composed.
    #[error(transparent)]
    Template(#[from] ComposeError),
    /// A secret file cannot be written.
    #[error("cannot write secret files: {0}")]
    Files(#[from] std::io::Error),
}

/// A template whose value cannot be composed: which variable, and why. Names only, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot compose {name} from its template: {problem}")]
pub struct ComposeError {
    /// The variable whose template could not be composed.
    pub name: String,
    /// Why not; never a value.
    pub problem: ComposeProblem,
}

/// What is wrong with a composed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeProblem {
    /// A variable it names has no value (an expanded secret without that key).
    #[error("it names {0}, which has no value (a key the expanded secret does not have?)")]
    NoValue(String),
    /// The value would be larger than [`MAX_COMPOSED`].
    #[error("the value would be longer than {MAX_COMPOSED} bytes")]
    TooLong,
    /// The value would hold a NUL byte; `from` is the variable whose value brought it, `None`
    /// when the template's own text did.
    #[error(
        "the value would hold a NUL byte ({}), which an environment variable cannot hold \
         (`file = true` gives the command a file instead)",
        match .from { Some(name) => format!("from the value of {name}"), None => "from the template's own text".to_owned() }
    )]
    NulByte { from: Option<String> },
}

impl ChildEnvironment {
    /// The inherited environment, with the manifest's literals and the resolved values on top.
    /// Warns (naming only the variable) for each inherited variable the manifest overrides.
    /// Variables marked `file = true` get the path of a file in `files` holding the value.
    ///
    /// `resolution` must be complete (every outcome a value); failed outcomes are skipped.
    pub fn build(
        config: &Config,
        resolution: &Resolution,
        files: Option<&SecretFiles>,
    ) -> Result<ChildEnvironment, EnvironmentError> {
        let mut values = given_values(config, resolution);
        let origins = config.by_name();
        let composed = compose(config, &origins, &mut values)?;
        let masked = if config.mask {
            masked_values(resolution, composed, &values)
        } else {
            Vec::new()
        };
        for (name, value) in values.iter_mut() {
            let Some(variable) = origins.get(name) else {
                continue;
            };
            if let Some(path) = files::write_if_file(files, variable, value)? {
                *value = Zeroizing::new(path.into_os_string().into_vec());
            }
        }
        let entries = over_inherited(config, &origins, values);
        Ok(ChildEnvironment { entries, masked })
    }

    /// The child's PATH, if it has one.
    pub(super) fn path(&self) -> Option<&OsStr> {
        self.entries
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| OsStr::from_bytes(value))
    }
}

/// The manifest's literals and the resolved values, by name.
fn given_values<'a>(
    config: &'a Config,
    resolution: &'a Resolution,
) -> BTreeMap<&'a str, Zeroizing<Vec<u8>>> {
    let mut values: BTreeMap<&str, Zeroizing<Vec<u8>>> = config
        .literals()
        .map(|(name, text)| (name, Zeroizing::new(text.as_bytes().to_vec())))
        .collect();
    for outcome in &resolution.outcomes {
        if let Ok(value) = &outcome.result {
            values.insert(
                outcome.name.as_str(),
                Zeroizing::new(value.expose().as_bytes().to_vec()),
            );
        }
    }
    values
}

/// What `--mask` hides: each resolved value, and each composed one.
fn masked_values(
    resolution: &Resolution,
    composed: Vec<String>,
    values: &BTreeMap<&str, Zeroizing<Vec<u8>>>,
) -> Vec<(String, Zeroizing<Vec<u8>>)> {
    resolution
        .outcomes
        .iter()
        .filter_map(|o| Some((o.name.clone(), o.result.as_ref().ok()?)))
        .map(|(name, v)| (name, Zeroizing::new(v.expose().as_bytes().to_vec())))
        .chain(composed.into_iter().filter_map(|name| {
            let value = values.get(name.as_str())?.clone();
            Some((name, value))
        }))
        .collect()
}

/// The inherited environment in its order, each variable `values` defines replaced, then the
/// rest of `values`.
fn over_inherited(
    config: &Config,
    origins: &BTreeMap<&str, &Variable>,
    mut values: BTreeMap<&str, Zeroizing<Vec<u8>>>,
) -> Vec<(OsString, Zeroizing<Vec<u8>>)> {
    let mut entries = Vec::with_capacity(config.inherited.len() + values.len());
    for (name, inherited) in &config.inherited {
        let replacement = name.to_str().and_then(|n| values.remove(n));
        match replacement {
            Some(value) => {
                let origin = name.to_str().and_then(|n| origins.get(n)).map(|v| v.origin);
                if matches!(origin, Some(Origin::Manifest | Origin::Profile)) {
                    tracing::warn!(
                        variable = %crate::sanitize::escaped(&name.to_string_lossy()),
                        "the manifest overrides an inherited environment variable"
                    );
                }
                entries.push((name.clone(), value));
            }
            None => entries.push((name.clone(), Zeroizing::new(inherited.as_bytes().to_vec()))),
        }
    }
    entries.extend(
        values
            .into_iter()
            .map(|(name, value)| (OsString::from(name), value)),
    );
    entries
}

/// Composes the templates' values from the others in `values` (literals and resolved values),
/// each once every variable it names has a value; returns the names composed. The manifest's
/// templates were checked when it was loaded: every name exists and none is part of a circle.
fn compose<'a>(
    config: &'a Config,
    by_name: &BTreeMap<&str, &Variable>,
    values: &mut BTreeMap<&'a str, Zeroizing<Vec<u8>>>,
) -> Result<Vec<String>, ComposeError> {
    let mut pending: Vec<_> = config.templates().collect();
    let mut composed = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<(&str, Zeroizing<Vec<u8>>)> = pending
            .iter()
            .filter_map(|(name, template)| {
                let value = template.render(|n| values.get(n).map(|v| v.as_slice()))?;
                Some((*name, value))
            })
            .collect();
        if ready.is_empty() {
            let (name, template) = pending[0];
            let problem = match template.names().find(|n| !values.contains_key(n)) {
                Some(missing) => ComposeProblem::NoValue(missing.to_owned()),
                None => ComposeProblem::TooLong,
            };
            return Err(ComposeError {
                name: name.to_owned(),
                problem,
            });
        }
        for (name, value) in ready {
            let as_file = by_name.get(name).is_some_and(|v| v.file);
            if value.contains(&0) && !as_file {
                return Err(nul_byte(name, &pending, values));
            }
            pending.retain(|(pending, _)| *pending != name);
            values.insert(name, value);
            composed.push(name.to_owned());
        }
    }
    Ok(composed)
}

/// A composed value with a NUL byte, which an environment variable cannot hold: the first
/// variable the template names whose value has one brought it, or else the template's text.
fn nul_byte(
    name: &str,
    templates: &[(&str, &Template)],
    values: &BTreeMap<&str, Zeroizing<Vec<u8>>>,
) -> ComposeError {
    let from = templates
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, t)| {
            t.names()
                .find(|n| values.get(n).is_some_and(|v| v.contains(&0)))
        });
    ComposeError {
        name: name.to_owned(),
        problem: ComposeProblem::NulByte {
            from: from.map(str::to_owned),
        },
    }
}
