//! Finding the manifest and reading it: `-m FILE`, else `envoke.toml` here or in the nearest
//! directory above (up to the repository's root), and whether a found one can be trusted.

use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::manifest::Manifest;
use crate::untrusted_file;

/// The manifest file looked for in the working directory.
const DEFAULT_MANIFEST: &str = "envoke.toml";

/// The largest manifest envoke reads (docs/manifest.md): far above any real one, and small
/// enough that input like `-m /dev/zero` cannot grow envoke's memory.
pub(super) const MANIFEST_CAP: u64 = 4 * 1024 * 1024;

/// The manifest named by `-m`, else ./envoke.toml when there is one, else an empty manifest.
pub(super) fn read_manifest(
    flag: Option<&Path>,
    working_dir: &Path,
) -> Result<(Option<PathBuf>, Manifest), ConfigError> {
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => match find_manifest(working_dir)? {
            Some(path) => path,
            None => return Ok((None, Manifest::default())),
        },
    };
    let text = read_manifest_text(&path)?;
    let manifest = Manifest::parse(&text).map_err(|source| ConfigError::ParseManifest {
        path: path.clone(),
        source,
    })?;
    Ok((Some(path), manifest))
}

/// `envoke.toml` in `working_dir` or the nearest directory above it, as a path relative to
/// `working_dir` (`envoke.toml`, `../../envoke.toml`). The search stops at the filesystem root, or
/// at a directory holding `.git` once it has looked there: a manifest outside the repository
/// belongs to something else. Whatever has the name is the manifest: a FIFO or a directory there
/// is reported, not skipped.
fn find_manifest(working_dir: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let mut relative = PathBuf::new();
    for dir in working_dir.ancestors() {
        let candidate = dir.join(DEFAULT_MANIFEST);
        if candidate.symlink_metadata().is_ok() {
            let path = relative.join(DEFAULT_MANIFEST);
            check_found_manifest(&candidate, &path)?;
            return Ok(Some(path));
        }
        if dir.join(".git").symlink_metadata().is_ok() {
            return Ok(None);
        }
        relative.push("..");
    }
    Ok(None)
}

/// A manifest found by searching, not named with `-m`, decides where tokens are sent and what the
/// command's environment holds: one that another user could have planted (in `/tmp`, a shared
/// directory) is refused, as git refuses a repository another user owns. It must be owned by
/// this user or root, and writable by no one else.
fn check_found_manifest(candidate: &Path, shown: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = candidate.metadata() else {
        return Ok(()); // reading it reports what is wrong
    };
    let euid = nix::unistd::geteuid().as_raw();
    let owner_trusted = metadata.uid() == euid || metadata.uid() == 0;
    let writable_by_others = metadata.mode() & 0o022 != 0;
    if owner_trusted && !writable_by_others {
        return Ok(());
    }
    Err(ConfigError::UntrustedManifest {
        path: shown.to_path_buf(),
        reason: if owner_trusted {
            "it is writable by other users".to_owned()
        } else {
            format!("it belongs to another user (uid {})", metadata.uid())
        },
    })
}

/// Reads a manifest that is a regular file of at most [`MANIFEST_CAP`] bytes of UTF-8 text
/// ([`untrusted_file::read`]).
fn read_manifest_text(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::ReadManifest {
        path: path.to_path_buf(),
        source,
    };
    let bytes = untrusted_file::read(path, MANIFEST_CAP).map_err(|error| match error {
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
