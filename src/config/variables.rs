//! The child's variables: the manifest's `[env]` entries and the references in envoke's own
//! environment, each turned into a [`Variable`] (a literal, a reference or a template), or into
//! a [`VariableProblem`] that says what is wrong with it. Templates that name a variable that
//! does not exist, or that name each other in a circle, are refused here.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use super::VariableProblem;
use super::template::Template;
use crate::manifest::{EnvEntry, LongEntry, Manifest, is_variable_name};
use crate::reference::{Reference, ReferenceError};

/// One variable for the child.
#[derive(Debug, Clone)]
pub struct Variable {
    /// The name the child sees, as written in `[env]` or in envoke's environment.
    pub name: String,
    /// Where the value comes from: a literal, a secret to fetch, or a template.
    pub source: Source,
    /// Where the variable was defined; a launch warns when a manifest's variable overrides an
    /// inherited one.
    pub origin: Origin,
    /// Whether the child gets the path of a private file holding the value instead.
    pub file: bool,
    /// For a reference ending in `#*` (or `expand = true`): the secret's keys become variables.
    pub expand: Option<Expansion>,
}

/// `NAME = "aws-sm://ID#*"` or `{ ref = "...", expand = true, prefix = "DB_", keys = [...] }`:
/// each top-level key of a JSON secret becomes a variable named `prefix` + the key in upper
/// case, every character but letters and digits made `_` (RDS- and Redshift-managed secrets
/// hold `username`, `password`, `host`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// Put before each key's name: `prefix` in the entry, else the variable's name and `_`.
    pub prefix: String,
    /// Only these keys; all of them when `None`.
    pub keys: Option<Vec<String>>,
}

impl Expansion {
    /// The variable a key becomes.
    pub fn name(&self, key: &str) -> String {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}{key}", self.prefix)
    }
}

/// Where a variable's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A value written in the manifest.
    Literal(String),
    /// A secret to fetch.
    Reference(Reference),
    /// A value composed of other variables' values.
    Template(Template),
}

/// Where a variable was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The manifest's `[env]` table (inherited, when a profile is applied).
    Manifest,
    /// The applied profile's `[profiles.NAME.env]`.
    Profile,
    /// envoke's own environment (`NAME=aws-sm://...`).
    Environment,
}

/// The child's variables from the manifest's `[env]` and (with `env_refs`) from references in
/// envoke's own environment, and the problems of those that cannot be used, unusable templates
/// among them.
pub(super) fn collect(
    manifest: &Manifest,
    environment: &[(OsString, OsString)],
    env_refs: bool,
) -> (Vec<Variable>, Vec<VariableProblem>) {
    let (mut variables, mut problems) = manifest_variables(manifest);
    if env_refs {
        let (found, invalid) = environment_references(manifest, environment);
        variables.extend(found);
        problems.extend(invalid);
    }
    let unusable: Vec<VariableProblem> = unusable_templates(&variables, &problems)
        .into_iter()
        .map(
            |problem| match variables.iter().find(|v| v.name == problem.name) {
                Some(template) => problem.from(template.origin),
                None => problem,
            },
        )
        .collect();
    variables.retain(|v| !unusable.iter().any(|p| p.name == v.name));
    problems.extend(unusable);
    (variables, problems)
}

/// The manifest's `[env]`: the variables it defines, and the entries that cannot be used.
fn manifest_variables(manifest: &Manifest) -> (Vec<Variable>, Vec<VariableProblem>) {
    let mut variables = Vec::new();
    let mut problems = Vec::new();
    for (name, entry) in &manifest.env {
        let origin = match &manifest.applied {
            Some(profile) if profile.defined.contains(name) => Origin::Profile,
            _ => Origin::Manifest,
        };
        match manifest_variable(name, entry) {
            Ok(variable) => variables.push(Variable { origin, ..variable }),
            Err(problem) => problems.push(problem.from(origin)),
        }
    }
    (variables, problems)
}

/// References in envoke's own environment (`NAME=aws-sm://...`) that the manifest does not
/// define; the manifest's definition wins.
fn environment_references(
    manifest: &Manifest,
    environment: &[(OsString, OsString)],
) -> (Vec<Variable>, Vec<VariableProblem>) {
    let defined: BTreeSet<&str> = manifest.env.keys().map(String::as_str).collect();
    let mut variables = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in environment {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        // envoke's own settings hold references too (ENVOKE_RECHECK_ON): not the child's.
        if defined.contains(name) || super::own_env::is_envokes_own(name) {
            continue;
        }
        match Reference::parse_environment_value(value) {
            None => {}
            Some(Ok(reference)) => variables.push(Variable {
                name: name.to_owned(),
                expand: expands(&reference).then(|| Expansion {
                    prefix: format!("{name}_"),
                    keys: None,
                }),
                source: Source::Reference(reference),
                origin: Origin::Environment,
                file: false,
            }),
            Some(Err(error)) => problems.push(
                VariableProblem::new(
                    name,
                    Some(value),
                    format!("invalid reference in the environment: {error}"),
                )
                .from(Origin::Environment),
            ),
        }
    }
    (variables, problems)
}

/// Templates that name a variable that does not exist, or that name each other in a circle.
fn unusable_templates(
    variables: &[Variable],
    problems: &[VariableProblem],
) -> Vec<VariableProblem> {
    let templates: BTreeMap<&str, &Template> = variables
        .iter()
        .filter_map(|v| match &v.source {
            Source::Template(t) => Some((v.name.as_str(), t)),
            _ => None,
        })
        .collect();
    // A name an expansion may make (its keys are known only once the secret is fetched).
    let known = |name: &str| {
        variables.iter().any(|v| {
            v.name == name
                || v.expand
                    .as_ref()
                    .is_some_and(|e| name.starts_with(&e.prefix) && name.len() > e.prefix.len())
        }) || problems.iter().any(|p| p.name == name)
    };
    let mut unusable = Vec::new();
    for (&name, template) in &templates {
        if let Some(unknown) = template.names().find(|n| !known(n)) {
            unusable.push(VariableProblem::new(
                name,
                None,
                format!("the template names `{unknown}`, which is not a variable of the manifest"),
            ));
        } else if let Some(cycle) = cycle_from(name, &templates) {
            unusable.push(VariableProblem::new(
                name,
                None,
                format!(
                    "templates name each other in a circle: {}",
                    cycle.join(" → ")
                ),
            ));
        }
    }
    unusable
}

/// A path of template names from `start` back to `start`, if there is one.
fn cycle_from<'a>(
    start: &'a str,
    templates: &BTreeMap<&'a str, &'a Template>,
) -> Option<Vec<&'a str>> {
    // Depth-first, remembering the path; each template is expanded once.
    let mut stack: Vec<(Vec<&'a str>, &'a str)> = vec![(vec![start], start)];
    let mut seen = BTreeSet::new();
    while let Some((path, name)) = stack.pop() {
        let Some(template) = templates.get(name) else {
            continue;
        };
        for next in template.names() {
            let mut longer = path.clone();
            longer.push(next);
            if next == start {
                return Some(longer);
            }
            if seen.insert(next) {
                stack.push((longer, next));
            }
        }
    }
    None
}

/// One `[env]` entry as a variable, or what is wrong with it.
fn manifest_variable(name: &str, entry: &EnvEntry) -> Result<Variable, VariableProblem> {
    let problem =
        |reference: Option<&str>, reason: String| VariableProblem::new(name, reference, reason);
    if !is_variable_name(name) {
        return Err(problem(
            None,
            "invalid variable name (use letters, digits and `_`, not starting with a digit)"
                .to_owned(),
        ));
    }
    let source = source_of(name, entry)?;
    let file = matches!(entry, EnvEntry::Long(LongEntry { file: true, .. }));
    // A file holds bytes; only an environment variable cannot hold a NUL.
    if let Source::Literal(text) = &source
        && text.contains('\0')
        && !file
    {
        return Err(problem(
            None,
            "value contains a NUL byte, which an environment variable cannot hold (`file = true` \
             can)"
                .to_owned(),
        ));
    }
    let expand = expansion_of(name, entry, &source)?;
    if expand.is_some() && file {
        return Err(problem(
            None,
            "an expanded secret cannot be given as a file".to_owned(),
        ));
    }
    Ok(Variable {
        name: name.to_owned(),
        source,
        origin: Origin::Manifest,
        file,
        expand,
    })
}

/// Where an `[env]` entry's value comes from: its reference, literal or template, parsed.
fn source_of(name: &str, entry: &EnvEntry) -> Result<Source, VariableProblem> {
    let problem =
        |reference: Option<&str>, reason: String| VariableProblem::new(name, reference, reason);
    Ok(match entry {
        EnvEntry::Short(text) if Reference::looks_like_reference(text) => {
            Source::Reference(Reference::parse(text).map_err(|e| reference_problem(name, text, e))?)
        }
        EnvEntry::Short(text) => Source::Literal(text.clone()),
        EnvEntry::Long(LongEntry {
            reference: Some(text),
            value: None,
            template: None,
            ..
        }) => {
            Source::Reference(Reference::parse(text).map_err(|e| reference_problem(name, text, e))?)
        }
        EnvEntry::Long(LongEntry {
            reference: None,
            value: Some(text),
            template: None,
            ..
        }) => Source::Literal(text.clone()),
        EnvEntry::Long(LongEntry {
            reference: None,
            value: None,
            template: Some(text),
            ..
        }) => Source::Template(
            Template::parse(text).map_err(|e| problem(None, format!("invalid template: {e}")))?,
        ),
        EnvEntry::Long(_) => {
            return Err(problem(
                None,
                "give exactly one of `ref`, `value` and `template`".to_owned(),
            ));
        }
    })
}

/// Whether an `[env]` entry's secret is expanded into a variable per key (`#*`, or
/// `expand = true` with its `prefix` and `keys`), and which keys.
fn expansion_of(
    name: &str,
    entry: &EnvEntry,
    source: &Source,
) -> Result<Option<Expansion>, VariableProblem> {
    let problem =
        |reference: Option<&str>, reason: String| VariableProblem::new(name, reference, reason);
    Ok(match (entry, source) {
        (
            EnvEntry::Long(LongEntry {
                expand: true,
                prefix,
                keys,
                ..
            }),
            Source::Reference(reference),
        ) if reference.key().is_none() || expands(reference) => Some(Expansion {
            prefix: prefix.clone().unwrap_or_else(|| format!("{name}_")),
            keys: keys.clone(),
        }),
        (EnvEntry::Long(LongEntry { expand: true, .. }), _) => {
            return Err(problem(
                None,
                "`expand = true` goes with a `ref` to a whole secret (no #key)".to_owned(),
            ));
        }
        (EnvEntry::Long(LongEntry { prefix, keys, .. }), _)
            if prefix.is_some() || keys.is_some() =>
        {
            return Err(problem(
                None,
                "`prefix` and `keys` go with `expand = true`".to_owned(),
            ));
        }
        (_, Source::Reference(reference)) if expands(reference) => Some(Expansion {
            prefix: format!("{name}_"),
            keys: None,
        }),
        _ => None,
    })
}

/// Whether a reference asks for every key (`#*`).
fn expands(reference: &Reference) -> bool {
    matches!(reference.key(), Some(crate::reference::KeyPath::Key(key)) if key == "*")
}

fn reference_problem(name: &str, text: &str, error: ReferenceError) -> VariableProblem {
    VariableProblem::new(name, Some(text), format!("invalid reference: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_variable_name("DB_PASSWORD"));
        assert!(is_variable_name("_x1"));
        assert!(!is_variable_name("1X"));
        assert!(!is_variable_name("A-B"));
        assert!(!is_variable_name(""));
        assert!(!is_variable_name("A B"));
    }

    #[test]
    fn long_form_needs_exactly_one_field() {
        let entry = EnvEntry::Long(LongEntry {
            reference: Some("vault://a/b".into()),
            value: Some("x".into()),
            template: None,
            file: false,
            ..LongEntry::default()
        });
        assert!(manifest_variable("A", &entry).is_err());
        let entry = EnvEntry::Long(LongEntry {
            reference: None,
            value: Some("vault://a/b".into()),
            template: None,
            file: false,
            ..LongEntry::default()
        });
        assert!(matches!(
            manifest_variable("A", &entry).unwrap().source,
            Source::Literal(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_manifest_text_is_accepted_or_refused_never_a_panic(text in "\\PC{0,200}") {
            let _ = Manifest::parse(&text);
        }

        #[test]
        fn any_entry_becomes_a_variable_or_a_problem_that_prints_safely(
            name in "\\PC{0,20}",
            value in "\\PC{0,60}",
            control in "[\\x00-\\x1f]{0,2}",
        ) {
            let name = format!("{name}{control}");
            let value = format!("{value}{control}");
            for entry in [
                EnvEntry::Short(value.clone()),
                EnvEntry::Long(LongEntry { reference: Some(value.clone()), ..LongEntry::default() }),
                EnvEntry::Long(LongEntry { template: Some(value.clone()), ..LongEntry::default() }),
            ] {
                if let Err(problem) = manifest_variable(&name, &entry) {
                    let shown = problem.to_string();
                    proptest::prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
                }
            }
        }
    }
}
