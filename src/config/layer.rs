//! The one precedence mechanism: every setting is looked up with [`Layers::first`], which
//! consults the places the setting can be given in the order the table in [`crate::config`]
//! lists, takes the first place that gives it, parses it there, and names that place in any
//! error. A later check of the value ([`Found::check`]) names the same place.

use std::path::Path;
use std::time::Duration;

use super::ConfigError;
use super::own_env::OwnEnvironment;

/// Where a setting's value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A command-line flag, or the `ENVOKE_*` variable clap reads in its place, as errors name
    /// it: `--watch (ENVOKE_WATCH)`.
    Flag(&'static str),
    /// A key of the manifest: the table (`watch`) and the key (`interval`).
    Manifest(&'static str, &'static str),
    /// A variable of envoke's own environment (`VAULT_ADDR`).
    Environment(&'static str),
}

impl Place {
    /// The place as errors name it.
    pub fn name(&self) -> String {
        match *self {
            Place::Flag(name) | Place::Environment(name) => name.to_owned(),
            Place::Manifest("vault", key) => format!("`{key}` in [vault]"),
            Place::Manifest(table, key) => format!("[{table}] {key}"),
        }
    }
}

/// One place a setting may be given, with what is there.
pub enum Given<'a, T> {
    /// A flag's value, already parsed by clap.
    Flag(&'static str, Option<T>),
    /// A manifest key's text: table, key, text.
    Manifest(&'static str, &'static str, Option<&'a str>),
    /// A variable of envoke's own environment, read when no earlier place gives the setting.
    Environment(&'static str),
}

/// A setting's value and the place it came from.
#[derive(Debug)]
pub struct Found<T> {
    /// The value, parsed.
    pub value: T,
    /// Where it was given.
    pub place: Place,
}

/// The places settings come from besides the flags: the manifest (for errors that name it) and
/// envoke's own environment.
pub struct Layers<'a> {
    /// The manifest's path, when one was read.
    pub manifest: Option<&'a Path>,
    /// envoke's own environment.
    pub environment: OwnEnvironment<'a>,
}

impl Layers<'_> {
    /// The first of `order` that gives the setting, its text parsed with `parse`; `None` when no
    /// place gives it.
    pub fn first<T>(
        &self,
        order: Vec<Given<'_, T>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Found<T>>, ConfigError> {
        for given in order {
            let (text, place) = match given {
                Given::Flag(name, Some(value)) => {
                    return Ok(Some(Found {
                        value,
                        place: Place::Flag(name),
                    }));
                }
                Given::Manifest(table, key, Some(text)) => {
                    (text.to_owned(), Place::Manifest(table, key))
                }
                Given::Environment(name) => match self.environment.get(name) {
                    Some(text) => (text, Place::Environment(name)),
                    None => continue,
                },
                Given::Flag(_, None) | Given::Manifest(_, _, None) => continue,
            };
            return parse(&text)
                .map(|value| Some(Found { value, place }))
                .map_err(|reason| self.invalid(place, reason));
        }
        Ok(None)
    }

    /// Like [`Layers::first`] for a text setting, and when a manifest key that the winner
    /// overrides gives a different text, a warning that names both places (never the values:
    /// some are credentials). The connection and credential settings take the environment
    /// before the manifest, as the vault CLI and the AWS SDKs do; a user who set VAULT_ADDR
    /// hears that the manifest says otherwise.
    pub fn first_text(&self, order: Vec<Given<'_, String>>) -> Option<Found<String>> {
        let mut given = order.into_iter().filter_map(|given| match given {
            Given::Flag(name, value) => value.map(|text| (text, Place::Flag(name))),
            Given::Manifest(table, key, text) => {
                text.map(|text| (text.to_owned(), Place::Manifest(table, key)))
            }
            Given::Environment(name) => self
                .environment
                .get(name)
                .map(|text| (text, Place::Environment(name))),
        });
        let (value, place) = given.next()?;
        for (other, other_place) in given {
            if matches!(other_place, Place::Manifest(..)) && other != value {
                tracing::warn!(
                    "{} and {} in {} differ: using {}",
                    place.name(),
                    other_place.name(),
                    self.manifest
                        .map_or_else(|| "the manifest".to_owned(), |p| p.display().to_string()),
                    place.name(),
                );
            }
        }
        Some(Found { value, place })
    }

    /// The error for a value given at `place` that cannot be used. `[vault]` keys are named the
    /// way the vault settings always named them (`` `address` in [vault] ``); the other tables'
    /// keys name the manifest's path.
    pub fn invalid(&self, place: Place, reason: String) -> ConfigError {
        match place {
            Place::Manifest(table, _) if table != "vault" => ConfigError::InvalidSetting {
                path: self.manifest.map(Path::to_path_buf).unwrap_or_default(),
                setting: place.name(),
                reason,
            },
            Place::Flag(_) | Place::Manifest(..) | Place::Environment(_) => ConfigError::BadValue {
                setting: place.name(),
                reason,
            },
        }
    }
}

impl<T> Found<T> {
    /// The value passed through `check`, whose error is told naming the place.
    pub fn check<U>(
        self,
        layers: &Layers<'_>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        let place = self.place;
        check(self.value).map_err(|reason| layers.invalid(place, reason))
    }
}

/// Parses a duration as the manifest writes it.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 500ms, 30s, 5m)"))
}
