//! Consent for a found manifest's connection and credential settings.
//!
//! A manifest envoke found by searching (not named with `-m` or ENVOKE_MANIFEST) came with the
//! directory: a `git clone`, an unpacked archive. Where it sends credentials (`[vault] address`,
//! `[aws] endpoint`), which credentials it reads (`token_file`, `secret_id_file`) and who envoke
//! logs in or assumes a role as are the user's to decide, so such a manifest may set them only
//! once the user has said they trust it: `envoke trust [FILE]`, as direnv's `allow` and git's
//! `safe.directory`. The consent is kept outside every repository, in
//! `$XDG_CONFIG_HOME/envoke/trusted` (`~/.config/envoke/trusted` without it), one line per
//! manifest: the SHA-256 of its content and its canonical path. A changed manifest asks again.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{ConfigError, OwnEnvironment};
use crate::manifest::Manifest;
use crate::untrusted_file::{self, Guard};

/// The largest trust store envoke reads: tens of thousands of manifests.
const STORE_CAP: u64 = 4 * 1024 * 1024;

/// The manifest keys that choose where credentials go and which ones are used, as errors name
/// them, when `manifest` sets any.
pub fn restricted_settings(manifest: &Manifest) -> Vec<&'static str> {
    let v = &manifest.vault;
    let a = &manifest.aws;
    let given: [(&'static str, bool); 19] = [
        ("[vault] address", v.address.is_some()),
        ("[vault] namespace", v.namespace.is_some()),
        ("[vault] ca_cert", v.ca_cert.is_some()),
        ("[vault] skip_verify", v.skip_verify.is_some()),
        ("[vault] auth", v.auth.is_some()),
        ("[vault] mount", v.mount.is_some()),
        ("[vault] role", v.role.is_some()),
        ("[vault] token_file", v.token_file.is_some()),
        ("[vault] role_id", v.role_id.is_some()),
        ("[vault] secret_id", v.secret_id.is_some()),
        ("[vault] secret_id_file", v.secret_id_file.is_some()),
        ("[vault] jwt_file", v.jwt_file.is_some()),
        ("[vault] client_cert", v.client_cert.is_some()),
        ("[vault] client_key", v.client_key.is_some()),
        ("[aws] endpoint", a.endpoint.is_some()),
        ("[aws] profile", a.profile.is_some()),
        ("[aws] role_arn", a.role_arn.is_some()),
        ("[aws] external_id", a.external_id.is_some()),
        ("[aws] session_name", a.session_name.is_some()),
    ];
    given
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
}

/// Where the consent is kept: `$XDG_CONFIG_HOME/envoke/trusted` (an absolute XDG_CONFIG_HOME
/// only, as the XDG spec says), else `HOME/.config/envoke/trusted`; `None` without either.
pub fn store_path(environment: &OwnEnvironment<'_>, home: Option<&Path>) -> Option<PathBuf> {
    let config_home = environment
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.map(|home| home.join(".config")))?;
    Some(config_home.join("envoke").join("trusted"))
}

/// The SHA-256 of a manifest's text, in hex.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The store's lines as (digest, path); empty when there is no store. A store that others may
/// write is not believed (they could trust their own manifest for the user).
fn entries(store: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let bytes = match untrusted_file::read_guarded(store, STORE_CAP, Guard::FoundManifest) {
        Ok(bytes) => bytes,
        Err(untrusted_file::ReadError::Io(error))
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(Vec::new());
        }
        Err(untrusted_file::ReadError::Unsafe(reason)) => {
            return Err(format!("{}: {reason}", store.display()));
        }
        Err(_) => return Err(format!("{}: cannot be read", store.display())),
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(digest, path)| (digest.to_owned(), PathBuf::from(path)))
        .collect())
}

/// Whether the user trusts the manifest at `canonical` with this content.
pub fn is_trusted(store: &Path, canonical: &Path, text: &str) -> Result<bool, String> {
    let digest = digest(text);
    Ok(entries(store)?
        .iter()
        .any(|(d, p)| *d == digest && p == canonical))
}

/// Records that the user trusts the manifest at `canonical` with this content, replacing what
/// was recorded for that path. The store and its directory are the user's alone (0600, 0700);
/// it is replaced by a rename, never rewritten in place.
pub fn trust(store: &Path, canonical: &Path, text: &str) -> Result<(), String> {
    let shown = canonical.to_string_lossy();
    if shown.contains('\n') || !canonical.is_absolute() {
        return Err(format!("cannot record the path {shown:?}"));
    }
    let mut kept: Vec<(String, PathBuf)> = entries(store)?
        .into_iter()
        .filter(|(_, path)| path != canonical)
        .collect();
    kept.push((digest(text), canonical.to_path_buf()));
    let dir = store.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = dir.join(format!(".trusted.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        for (digest, path) in &kept {
            writeln!(file, "{digest} {}", path.to_string_lossy())?;
        }
        file.sync_all()?;
        std::fs::rename(&temporary, store)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {e}", store.display())
    })
}

/// What [`record`] trusted.
pub struct Recorded {
    /// The manifest's canonical path.
    pub path: PathBuf,
    /// The SHA-256 of its content.
    pub digest: String,
    /// The connection and credential settings it sets.
    pub settings: Vec<&'static str>,
}

/// Trusts `file`, or the manifest a search from `working_dir` finds (read as the search reads
/// it: a link or a file others may write is refused), with its present content.
pub fn record(
    file: Option<&Path>,
    environment: &[(std::ffi::OsString, std::ffi::OsString)],
    home: Option<&Path>,
    working_dir: &Path,
) -> Result<Recorded, ConfigError> {
    let Some((path, _, text, manifest)) = super::discover::read_manifest(file, working_dir)? else {
        return Err(ConfigError::TrustStore {
            reason: "no envoke.toml here or in a directory above to trust; name one".to_owned(),
        });
    };
    let canonical =
        working_dir
            .join(&path)
            .canonicalize()
            .map_err(|source| ConfigError::ReadManifest {
                path: path.clone(),
                source,
            })?;
    let store =
        store_path(&OwnEnvironment(environment), home).ok_or_else(|| ConfigError::TrustStore {
            reason: "neither XDG_CONFIG_HOME nor HOME is set".to_owned(),
        })?;
    trust(&store, &canonical, &text).map_err(|reason| ConfigError::TrustStore { reason })?;
    Ok(Recorded {
        path: canonical,
        digest: digest(&text),
        settings: restricted_settings(&manifest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_manifest_is_trusted_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("config/envoke/trusted");
        let manifest = dir.path().join("envoke.toml");
        assert!(!is_trusted(&store, &manifest, "a").unwrap());
        trust(&store, &manifest, "a").unwrap();
        assert!(is_trusted(&store, &manifest, "a").unwrap());
        assert!(!is_trusted(&store, &manifest, "b").unwrap(), "changed");
        assert!(!is_trusted(&store, &dir.path().join("other.toml"), "a").unwrap());
        trust(&store, &manifest, "b").unwrap();
        assert!(is_trusted(&store, &manifest, "b").unwrap());
        assert!(!is_trusted(&store, &manifest, "a").unwrap(), "replaced");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            is_trusted(&store, &manifest, "b").is_err(),
            "others may write it"
        );
    }
}
