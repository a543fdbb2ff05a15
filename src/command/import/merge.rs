//! What an import does to what is stored already: key by key, so that nothing stored is lost.
//!
//! A key of the `.env` that the secret lacks is added; a key it has with the same value is left
//! as it is; a key it has with another value is changed, but only with `--force`; a key the
//! `.env` does not have stays. A stored secret that is not a JSON object (a plain string) is
//! never turned into one without `--force`. Only names are ever reported.

use secrecy::{ExposeSecret, SecretString};

use crate::sanitize::escaped;
use crate::secret::{SecretValue, zeroize_json};

/// How one stored secret (a JSON object of keys) changes.
pub struct Merge {
    /// Keys the secret did not have.
    pub added: Vec<String>,
    /// Keys whose stored value differs from the `.env`'s.
    pub changed: Vec<String>,
    /// Keys whose stored value is the `.env`'s already.
    pub same: Vec<String>,
    /// Keys the secret has and the `.env` does not: left as they are.
    pub kept: Vec<String>,
    /// The stored secret is there but is not a JSON object; writing replaces it whole.
    pub replaces_non_object: bool,
    /// The document to write: the stored keys with the `.env`'s over them.
    pub document: SecretValue,
}

impl Merge {
    /// Merges `secrets` into `stored` (`None`: nothing stored yet).
    pub fn of(stored: Option<&SecretValue>, secrets: &[(String, SecretString)]) -> Merge {
        let mut parsed: serde_json::Value = match stored {
            Some(value) => serde_json::from_str(value.expose()).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        let replaces_non_object = !parsed.is_object();
        let mut object = match &mut parsed {
            serde_json::Value::Object(object) => std::mem::take(object),
            _ => serde_json::Map::new(),
        };
        zeroize_json(&mut parsed);
        let (mut added, mut changed, mut same) = (Vec::new(), Vec::new(), Vec::new());
        for (name, value) in secrets {
            let new = serde_json::Value::String(value.expose_secret().to_owned());
            match object.get_mut(name) {
                None => added.push(name.clone()),
                Some(old) if *old == new => same.push(name.clone()),
                Some(old) => {
                    zeroize_json(old);
                    changed.push(name.clone());
                }
            }
            object.insert(name.clone(), new);
        }
        // Stored key names are anybody's text: escaped before they can reach a terminal.
        let kept = object
            .keys()
            .filter(|key| !secrets.iter().any(|(name, _)| name == *key))
            .map(|key| escaped(key))
            .collect();
        let mut merged = serde_json::Value::Object(object);
        let document = SecretValue::new(merged.to_string());
        zeroize_json(&mut merged);
        Merge {
            added,
            changed,
            same,
            kept,
            replaces_non_object,
            document,
        }
    }

    /// Whether writing would change nothing stored.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && !self.replaces_non_object
    }

    /// What the merge does, in names: its keys.
    pub fn changes(&self) -> Changes<'_> {
        Changes {
            unit: "stored key",
            added: &self.added,
            changed: &self.changed,
            same: &self.same,
            kept: &self.kept,
            replaces_non_object: self.replaces_non_object,
        }
    }
}

/// What an import does at one destination, in names only: the keys of one merged secret, or the
/// secrets of `--split`.
pub struct Changes<'a> {
    /// What a name is: `stored key`, `stored secret`.
    pub unit: &'static str,
    /// Names that are not stored yet.
    pub added: &'a [String],
    /// Names stored with another value.
    pub changed: &'a [String],
    /// Names stored with this value already.
    pub same: &'a [String],
    /// Names stored and not in the `.env`: left as they are.
    pub kept: &'a [String],
    /// A stored value that is not a JSON object would be replaced whole.
    pub replaces_non_object: bool,
}

impl Changes<'_> {
    /// `adds A, B; changes C; leaves D (same value); keeps E (not in the .env)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.replaces_non_object {
            parts.push("replaces a value that is not a JSON object".to_owned());
        }
        for (names, how) in [
            (self.added, "adds {}"),
            (self.changed, "changes {}"),
            (self.same, "leaves {} (same value)"),
            (self.kept, "keeps {} (not in the .env)"),
        ] {
            if !names.is_empty() {
                parts.push(how.replace("{}", &names.join(", ")));
            }
        }
        if parts.is_empty() {
            return "nothing to store".to_owned();
        }
        parts.join("; ")
    }

    /// What `--force` would have to allow: names whose value changes, and a non-object
    /// replaced; `None` when nothing needs it.
    pub fn needs_force(&self) -> Option<String> {
        let mut needs = Vec::new();
        if self.replaces_non_object {
            needs.push("the stored value is not a JSON object and would be replaced".to_owned());
        }
        if !self.changed.is_empty() {
            needs.push(format!(
                "{} would change ({})",
                plural(self.changed.len(), self.unit, &format!("{}s", self.unit)),
                self.changed.join(", ")
            ));
        }
        (!needs.is_empty()).then(|| needs.join("; "))
    }
}

/// One `--split` secret: what storing the `.env`'s value there does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single {
    /// The secret does not exist yet.
    Added,
    /// It holds this value already: nothing to write.
    Same,
    /// It holds another value: changed only with `--force`.
    Changed,
}

impl Single {
    /// What storing `new` over `stored` (`None`: no such secret) does.
    pub fn of(stored: Option<&SecretValue>, new: &SecretString) -> Single {
        match stored {
            None => Single::Added,
            Some(value) if value.expose() == new.expose_secret() => Single::Same,
            Some(_) => Single::Changed,
        }
    }
}

/// `1 secret value`, `2 secret values`.
pub fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Vec<(String, SecretString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
            .collect()
    }

    fn stored(text: &str) -> SecretValue {
        SecretValue::new(text.to_owned())
    }

    #[test]
    fn keys_are_added_changed_left_and_kept_and_nothing_stored_is_lost() {
        let old = stored(r#"{"OTHER_APP_PASSWORD":"keepme","A":"1","B":"old"}"#);
        let merge = Merge::of(
            Some(&old),
            &secrets(&[("A", "1"), ("B", "new"), ("C", "3")]),
        );
        assert_eq!(merge.added, ["C"]);
        assert_eq!(merge.changed, ["B"]);
        assert_eq!(merge.same, ["A"]);
        assert_eq!(merge.kept, ["OTHER_APP_PASSWORD"]);
        assert!(!merge.replaces_non_object && !merge.is_noop());
        let written: serde_json::Value = serde_json::from_str(merge.document.expose()).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"OTHER_APP_PASSWORD": "keepme", "A": "1", "B": "new", "C": "3"})
        );
        let needs = merge.changes().needs_force().unwrap();
        assert!(needs.contains("1 stored key would change (B)"), "{needs}");
        let described = merge.changes().describe();
        assert_eq!(
            described,
            "adds C; changes B; leaves A (same value); keeps OTHER_APP_PASSWORD (not in the .env)"
        );
        for value in ["keepme", "old", "new"] {
            assert!(!described.contains(value) && !needs.contains(value));
        }
    }

    #[test]
    fn a_stored_key_name_cannot_reach_the_terminal_raw() {
        let old = stored("{\"\\u001b[31mRED\":\"x\"}");
        let merge = Merge::of(Some(&old), &secrets(&[("A", "1")]));
        assert!(
            !merge.changes().describe().contains('\u{1b}'),
            "{}",
            merge.changes().describe()
        );
    }

    #[test]
    fn nothing_stored_yet_adds_everything_and_needs_no_force() {
        let merge = Merge::of(None, &secrets(&[("A", "1")]));
        assert_eq!(merge.added, ["A"]);
        assert!(merge.changes().needs_force().is_none());
        let same = Merge::of(Some(&stored(r#"{"A":"1"}"#)), &secrets(&[("A", "1")]));
        assert!(same.is_noop(), "{}", same.changes().describe());
    }

    #[test]
    fn a_plain_string_is_not_turned_into_an_object_without_force() {
        let merge = Merge::of(Some(&stored("just a password")), &secrets(&[("A", "1")]));
        assert!(merge.replaces_non_object);
        assert!(
            merge
                .changes()
                .needs_force()
                .unwrap()
                .contains("not a JSON object")
        );
        let array = Merge::of(Some(&stored("[1,2]")), &secrets(&[("A", "1")]));
        assert!(array.replaces_non_object);
    }

    #[test]
    fn split_secrets_compare_whole_values() {
        let new = SecretString::from("v".to_owned());
        assert_eq!(Single::of(None, &new), Single::Added);
        assert_eq!(Single::of(Some(&stored("v")), &new), Single::Same);
        assert_eq!(Single::of(Some(&stored("w")), &new), Single::Changed);
        assert_eq!(plural(1, "secret value", "secret values"), "1 secret value");
        assert_eq!(
            plural(2, "secret value", "secret values"),
            "2 secret values"
        );
    }
}
