//! Secret files: `NAME = { ref = "...", file = true }` gives the child a path instead of a value.
//!
//! The files live in a private directory (0700) on a tmpfs — `$XDG_RUNTIME_DIR` when set, else
//! `/dev/shm` — one file per variable (0600). A rotation rewrites a file atomically (write a
//! temporary file, then rename), so a reader sees the old or the new content, never half. Dropping
//! [`SecretFiles`] overwrites each file with zeros and removes the directory; envoke drops it on
//! every exit path it controls (not when killed by SIGKILL).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::config::Variable;

/// The private directory of secret files.
#[derive(Debug)]
pub struct SecretFiles {
    dir: PathBuf,
}

impl SecretFiles {
    /// Creates the private directory.
    pub fn create() -> std::io::Result<SecretFiles> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "envoke-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(SecretFiles { dir })
    }

    /// Writes (or atomically replaces) the file for variable `name`; returns its path.
    fn write(&self, name: &str, value: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir.join(name);
        let temporary = self.dir.join(format!(".{name}.new"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(value)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(path)
    }
}

/// For a variable given to the child as a file (`file = true`): writes (or atomically replaces)
/// its file and returns the path. `None` for any other variable. Used at launch and when a
/// rotation rewrites the files.
pub fn write_if_file(
    files: Option<&SecretFiles>,
    variable: &Variable,
    value: &[u8],
) -> std::io::Result<Option<PathBuf>> {
    if !variable.file {
        return Ok(None);
    }
    let files =
        files.ok_or_else(|| std::io::Error::other("secret files need a private directory"))?;
    files.write(&variable.name, value).map(Some)
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if let Ok(metadata) = entry.metadata()
                    && let Ok(mut file) = OpenOptions::new().write(true).open(&path)
                {
                    let _ = file.write_all(&vec![0u8; metadata.len() as usize]);
                }
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove the secret files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_replaced_and_removed() {
        let files = SecretFiles::create().unwrap();
        let dir = files.dir.clone();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let path = files.write("TOKEN", b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        files.write("TOKEN", b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        drop(files);
        assert!(!dir.exists());
    }
}
