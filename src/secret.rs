//! Secret values: wrapped the moment they leave a backend's response, zeroized when dropped.
//!
//! [`SecretValue`] is the only type that holds a secret. Its `Debug` prints a placeholder and it
//! has no `Display`, so a secret cannot reach a log line or an error message by accident. The one
//! place that reads it is where the child's environment is built ([`SecretValue::expose`] is
//! crate-private).
//!
//! Selecting a key from a JSON secret parses the document into a `serde_json::Value`; every string
//! in that tree is zeroized before it is dropped ([`zeroize_json`]).
//!
//! The pages holding a value are locked in memory (mlock) while it lives, so that it is never
//! written to swap, where RLIMIT_MEMLOCK allows; where it does not, the value lives unlocked and
//! nothing else changes (no allocation ever fails for it). Locks do not nest (mlock(2)) and two
//! small values can share a page, so [`PageLocks`] counts the values on each locked page and
//! unlocks a page when its last value is gone.

use std::collections::BTreeMap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock, PoisonError};

use secrecy::{ExposeSecret, ExposeSecretMut, SecretString};
use zeroize::Zeroize;

use crate::reference::KeyPath;

/// A secret value (a SecretString, a JSON field of one, a Vault data map as JSON).
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a value; the `String` is moved in, not copied (but shrunk to fit: the zeroing
    /// allocator wipes the block it leaves), and its pages are locked when that is allowed.
    pub fn new(value: String) -> SecretValue {
        let value = SecretValue(SecretString::from(value));
        PageLocks::lock(value.expose().as_bytes());
        value
    }

    /// The value, for building the child's environment and for keyed hashes. Nothing else reads it.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Selects `key` from this value read as a JSON document. A string is given as it is; any
    /// other JSON value (number, bool, object, array, null) as its JSON text.
    pub fn select(&self, key: &KeyPath) -> Result<SecretValue, SelectError> {
        let mut document: serde_json::Value =
            serde_json::from_str(self.expose()).map_err(|_| SelectError::NotJson)?;
        let selected = match (key, &document) {
            (KeyPath::Key(name), serde_json::Value::Object(map)) => map.get(name),
            (KeyPath::Key(_), _) => {
                zeroize_json(&mut document);
                return Err(SelectError::NotAnObject);
            }
            (KeyPath::Pointer(pointer), _) => document.pointer(pointer),
        };
        let result = match selected {
            Some(serde_json::Value::String(text)) => Ok(SecretValue::new(text.clone())),
            Some(other) => Ok(SecretValue::new(other.to_string())),
            None => Err(SelectError::KeyMissing {
                key: key.to_string(),
                found: what_is_there(&document, key),
            }),
        };
        zeroize_json(&mut document);
        result
    }

    /// The names of the top-level keys, when the value is a JSON object (names only: the
    /// parsed document is zeroized before it is dropped).
    pub fn top_level_keys(&self) -> Option<Vec<String>> {
        let mut parsed: serde_json::Value = serde_json::from_str(self.0.expose_secret()).ok()?;
        let keys = parsed.as_object().map(|o| o.keys().cloned().collect());
        zeroize_json(&mut parsed);
        keys
    }

    /// An HMAC-SHA256 of the value under a per-process random key: lets envoke tell whether a
    /// value changed without keeping it, and means nothing outside this process.
    pub fn keyed_digest(&self) -> Digest {
        keyed_digest(self.expose().as_bytes())
    }

    /// Checks that the value can be put in an environment variable.
    pub fn check_environment_safe(&self) -> Result<(), SelectError> {
        if self.expose().contains('\0') {
            return Err(SelectError::NulByte);
        }
        Ok(())
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        // Zeroed before its pages are unlocked (secrecy zeroizes again when the box is dropped).
        self.0.expose_secret_mut().zeroize();
        PageLocks::unlock(self.expose().as_bytes());
    }
}

/// The pages locked for values, with the number of values on each.
struct PageLocks;

static LOCKED_PAGES: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

impl PageLocks {
    fn page_size() -> usize {
        static PAGE_SIZE: OnceLock<usize> = OnceLock::new();
        *PAGE_SIZE.get_or_init(|| {
            nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .map_or(4096, |size| size as usize)
        })
    }

    /// The addresses of the pages `bytes` spans (none when it is empty).
    fn pages(bytes: &[u8]) -> impl Iterator<Item = usize> {
        let size = Self::page_size();
        let start = bytes.as_ptr() as usize;
        let first = start - start % size;
        let end = if bytes.is_empty() {
            first
        } else {
            start + bytes.len()
        };
        (first..end).step_by(size)
    }

    fn lock(bytes: &[u8]) {
        let mut locked = LOCKED_PAGES.lock().unwrap_or_else(PoisonError::into_inner);
        for page in Self::pages(bytes) {
            if let Some(count) = locked.get_mut(&page) {
                *count += 1;
            } else if Self::call(nix::sys::mman::mlock, page) {
                locked.insert(page, 1);
            }
        }
    }

    fn unlock(bytes: &[u8]) {
        let mut locked = LOCKED_PAGES.lock().unwrap_or_else(PoisonError::into_inner);
        for page in Self::pages(bytes) {
            if let Some(count) = locked.get_mut(&page) {
                *count -= 1;
                if *count == 0 {
                    locked.remove(&page);
                    Self::call(nix::sys::mman::munlock, page);
                }
            }
        }
    }

    /// mlock or munlock one page; whether it worked (mlock fails past RLIMIT_MEMLOCK: then the
    /// page stays unlocked, quietly).
    fn call(
        operation: unsafe fn(NonNull<std::ffi::c_void>, usize) -> nix::Result<()>,
        page: usize,
    ) -> bool {
        let size = Self::page_size();
        let Some(address) = NonNull::new(page as *mut std::ffi::c_void) else {
            return false;
        };
        // SAFETY: `page` is the start of a page of a live heap allocation (the value's), and
        // mlock/munlock change only whether it may be swapped, never its contents or mapping.
        unsafe { operation(address, size) }.is_ok()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// A keyed hash (see [`SecretValue::keyed_digest`]).
pub type Digest = [u8; 32];

/// HMAC-SHA256 of `bytes` under the per-process key.
fn keyed_digest(bytes: &[u8]) -> Digest {
    use hmac::{Hmac, Mac};
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // Without OS randomness, fall back to a key that is still unknown outside this process.
        if getrandom::fill(&mut key).is_err() {
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            key[..seed.len().min(32)].copy_from_slice(&seed.as_bytes()[..seed.len().min(32)]);
        }
        key
    });
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// Why a value could not be taken from a secret. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The requested key is absent. `found` says what the secret has instead, by names only
    /// (the keys at the deepest level the key reached), never a value.
    #[error("key `{key}` missing; {found}")]
    KeyMissing {
        /// The key or JSON pointer asked for, as written after the reference's `#`.
        key: String,
        /// The keys there are where the key stopped matching, or what kind of value is there.
        found: String,
    },
    /// A key was requested but the secret is not JSON.
    #[error("secret is not JSON, so it has no keys (drop the #KEY to get the whole value)")]
    NotJson,
    /// A key was requested but the secret is a JSON value other than an object.
    #[error("secret is JSON but not an object, so it has no keys")]
    NotAnObject,
    /// Environment variables cannot hold NUL bytes.
    #[error(
        "value contains a NUL byte, which an environment variable cannot hold (`file = true` can)"
    )]
    NulByte,
}

/// At most this many key names are listed when a key is missing.
const LISTED_KEYS: usize = 20;

/// What a secret holds where `key` stopped matching: the names of the keys at the deepest level
/// the key reached (at most [`LISTED_KEYS`]), or the kind of value found there. Never a value.
fn what_is_there(document: &serde_json::Value, key: &KeyPath) -> String {
    let mut reached = document;
    let mut at = String::new();
    if let KeyPath::Pointer(pointer) = key {
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match reached {
                serde_json::Value::Object(map) => map.get(&token),
                serde_json::Value::Array(items) => {
                    token.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            let Some(next) = next else { break };
            reached = next;
            at.push('/');
            at.push_str(&token);
        }
    }
    let place = if at.is_empty() {
        "the secret".to_owned()
    } else {
        format!("`{at}`")
    };
    match reached {
        serde_json::Value::Object(map) if map.is_empty() => format!("{place} has no keys"),
        serde_json::Value::Object(map) => {
            let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
            names.sort_unstable();
            let more = names.len().saturating_sub(LISTED_KEYS);
            names.truncate(LISTED_KEYS);
            let mut text = format!("{place} has keys: {}", names.join(", "));
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            text
        }
        serde_json::Value::Array(items) => format!("{place} is an array of {} items", items.len()),
        _ => format!("{place} is a single value, with no keys"),
    }
}

/// Overwrites every string in a JSON tree (object keys excepted: those are names, not secrets).
pub fn zeroize_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => text.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(zeroize_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(zeroize_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(doc: &str, key: KeyPath) -> Result<String, SelectError> {
        SecretValue::new(doc.into())
            .select(&key)
            .map(|v| v.expose().to_owned())
    }

    #[test]
    fn debug_is_redacted() {
        let value = SecretValue::new("hunter2".into());
        assert_eq!(format!("{value:?}"), "SecretValue([redacted])");
        assert!(!format!("{:?}", Some(&value)).contains("hunter2"));
    }

    #[test]
    fn selects_keys_and_pointers() {
        let doc = r#"{"user":"app","port":5432,"tls":true,"nested":{"a":["x","y"]}}"#;
        assert_eq!(select(doc, KeyPath::Key("user".into())).unwrap(), "app");
        assert_eq!(select(doc, KeyPath::Key("port".into())).unwrap(), "5432");
        assert_eq!(select(doc, KeyPath::Key("tls".into())).unwrap(), "true");
        assert_eq!(
            select(doc, KeyPath::Key("nested".into())).unwrap(),
            r#"{"a":["x","y"]}"#
        );
        assert_eq!(
            select(doc, KeyPath::Pointer("/nested/a/1".into())).unwrap(),
            "y"
        );
        assert_eq!(
            select(doc, KeyPath::Key("nope".into())),
            Err(SelectError::KeyMissing {
                key: "nope".into(),
                found: "the secret has keys: nested, port, tls, user".into()
            })
        );
        assert_eq!(
            select("plain", KeyPath::Key("a".into())),
            Err(SelectError::NotJson)
        );
        assert_eq!(
            select("[1]", KeyPath::Key("a".into())),
            Err(SelectError::NotAnObject)
        );
    }

    #[test]
    fn a_missing_key_names_the_keys_there_never_a_value() {
        let missing = |doc: &str, key| select(doc, key).unwrap_err().to_string();
        let doc = r#"{"password":"hunter2","username":"app","nested":{"a":["x","y"],"b":"z"}}"#;
        assert_eq!(
            missing(doc, KeyPath::Key("pasword".into())),
            "key `pasword` missing; the secret has keys: nested, password, username"
        );
        assert_eq!(
            missing(doc, KeyPath::Pointer("/nested/c/d".into())),
            "key `/nested/c/d` missing; `/nested` has keys: a, b"
        );
        assert_eq!(
            missing(doc, KeyPath::Pointer("/nested/a/5".into())),
            "key `/nested/a/5` missing; `/nested/a` is an array of 2 items"
        );
        assert_eq!(
            missing(doc, KeyPath::Pointer("/username/x".into())),
            "key `/username/x` missing; `/username` is a single value, with no keys"
        );
        assert_eq!(
            missing("{}", KeyPath::Key("k".into())),
            "key `k` missing; the secret has no keys"
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..25)
            .map(|i| {
                (
                    format!("k{i:02}"),
                    serde_json::Value::String("secret".into()),
                )
            })
            .collect();
        let text = missing(
            &serde_json::Value::Object(many).to_string(),
            KeyPath::Key("x".into()),
        );
        assert!(text.ends_with("k19 and 5 more"), "{text}");
        assert!(!text.contains("secret\"") && !text.contains("hunter2"));
    }

    #[test]
    fn the_pages_of_a_value_are_locked_while_it_lives() {
        let size = PageLocks::page_size();
        let value = SecretValue::new("x".repeat(3 * size));
        // The second page a value of three pages spans holds nothing else.
        let interior = PageLocks::pages(value.expose().as_bytes()).nth(1).unwrap();
        let locked = |page| {
            LOCKED_PAGES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&page)
        };
        if !locked(interior) {
            // Not locked is a failure where the limit allows it: only a small RLIMIT_MEMLOCK
            // (under 1 MiB, which the tests running beside this one share) may explain it.
            let (soft, _) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
                    .unwrap();
            assert!(
                soft < 1024 * 1024,
                "RLIMIT_MEMLOCK is {soft} bytes, yet the value's page was not locked"
            );
            crate::cannot_run_here(
                "mlock is not allowed here (RLIMIT_MEMLOCK); values stay unlocked",
            );
            return;
        }
        drop(value);
        assert!(!locked(interior), "unlocked when the value is dropped");
    }

    #[test]
    fn zeroize_json_clears_strings() {
        let mut doc: serde_json::Value = serde_json::json!({"a": "secret", "b": ["x"]});
        zeroize_json(&mut doc);
        assert_eq!(doc, serde_json::json!({"a": "", "b": [""]}));
    }
}
