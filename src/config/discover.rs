//! Finding the manifest and reading it: `-m FILE`, else `envoke.toml` here or in the nearest
//! directory above (up to the repository's root), and whether a found one can be trusted.

use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::manifest::Manifest;
use crate::untrusted_file::{self, Guard};

/// The manifest file looked for in the working directory.
const DEFAULT_MANIFEST: &str = "envoke.toml";

/// The largest manifest envoke reads (docs/manifest.md): far above any real one, and small
/// enough that input like `-m /dev/zero` cannot grow envoke's memory.
pub(super) const MANIFEST_CAP: u64 = 4 * 1024 * 1024;

/// How the manifest was chosen, which decides how far it is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Named with `-m` or ENVOKE_MANIFEST: the user's choice, trusted as named.
    Named,
    /// Found by searching: read only if it passes the checks of [`Guard::FoundManifest`], and
    /// its connection and credential settings need the user's consent.
    Searched,
}

/// The manifest named by `-m`, else ./envoke.toml when there is one, else an empty manifest;
/// with its text and how it was chosen.
pub(super) fn read_manifest(
    flag: Option<&Path>,
    working_dir: &Path,
) -> Result<Option<(PathBuf, Found, String, Manifest)>, ConfigError> {
    let (path, found) = match flag {
        Some(path) => (path.to_path_buf(), Found::Named),
        None => match find_manifest(working_dir) {
            Some(path) => (path, Found::Searched),
            None => return Ok(None),
        },
    };
    let text = read_manifest_text(&path, found)?;
    let manifest = Manifest::parse(&text).map_err(|source| ConfigError::ParseManifest {
        path: path.clone(),
        source,
    })?;
    Ok(Some((path, found, text, manifest)))
}

/// `envoke.toml` in `working_dir` or the nearest directory above it, as a path relative to
/// `working_dir` (`envoke.toml`, `../../envoke.toml`). The search stops at the filesystem root,
/// at a directory holding `.git` once it has looked there (a manifest outside the repository
/// belongs to something else), and before a directory another user may write or owns (`/tmp`, a
/// shared directory): whatever others put there is not looked at, so it can neither be used nor
/// stop a run. Whatever has the name is the manifest: a FIFO, a directory or a link there is
/// reported when it is read, not skipped.
fn find_manifest(working_dir: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for dir in working_dir.ancestors() {
        match dir.metadata() {
            Ok(metadata) if untrusted_file::only_user_can_write(&metadata).is_ok() => {}
            Ok(_) | Err(_) => {
                tracing::debug!(dir = %dir.display(), "not looking for envoke.toml in a directory others may write");
                return None;
            }
        }
        let candidate = dir.join(DEFAULT_MANIFEST);
        if candidate.symlink_metadata().is_ok() {
            return Some(relative.join(DEFAULT_MANIFEST));
        }
        if dir.join(".git").symlink_metadata().is_ok() {
            return None;
        }
        relative.push("..");
    }
    None
}

/// Reads a manifest that is a regular file of at most [`MANIFEST_CAP`] bytes of UTF-8 text
/// ([`untrusted_file::read_guarded`]); a found one is opened once, without following a link,
/// and its owner and mode are checked on that descriptor before it is read from it.
fn read_manifest_text(path: &Path, found: Found) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::ReadManifest {
        path: path.to_path_buf(),
        source,
    };
    let guard = match found {
        Found::Named => Guard::None,
        Found::Searched => Guard::FoundManifest,
    };
    let bytes =
        untrusted_file::read_guarded(path, MANIFEST_CAP, guard).map_err(|error| match error {
            untrusted_file::ReadError::Unsafe(reason) => ConfigError::UntrustedManifest {
                path: path.to_path_buf(),
                reason,
            },
            untrusted_file::ReadError::NotRegular(kind) => ConfigError::ManifestNotAFile {
                path: path.to_path_buf(),
                kind,
            },
            untrusted_file::ReadError::TooLarge(_) => ConfigError::ManifestTooLarge {
                path: path.to_path_buf(),
            },
            untrusted_file::ReadError::Io(source) => read_error(source),
        })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })
}
