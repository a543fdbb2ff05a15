//! Secret files: `NAME = { ref = "...", file = true }` gives the child a path instead of a value.
//!
//! The files live in a private directory (0700) — under `$XDG_RUNTIME_DIR` when set, else
//! `/dev/shm`, else the temporary directory — one file per variable (0600). That base must be on
//! a tmpfs or ramfs (checked with statfs, in `platform`), so that no value reaches a disk; any
//! other filesystem is refused unless `--allow-disk-files` says otherwise.
//!
//! The directory is opened once, and every later operation is relative to that descriptor
//! (openat, renameat, unlinkat) and never follows a symlink (O_NOFOLLOW, O_EXCL): a symlink or a
//! hard link planted in place of a file is replaced or removed, never written through, so its
//! target is never overwritten or zeroed. A FIFO planted there cannot block envoke (O_NONBLOCK).
//!
//! A rotation rewrites a file atomically (write a temporary file, then rename), so a reader sees
//! the old or the new content, never half. Dropping [`SecretFiles`] overwrites each file with
//! zeros and removes the directory; envoke drops it on every exit path it controls (not when
//! killed by SIGKILL). Files hold bytes: a value with a NUL byte is fine here.

use std::ffi::{CStr, CString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::config::Variable;

/// Why secret files cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The directory for them is not on a filesystem in memory.
    #[error(
        "secret files would be written under {}, which is not on a tmpfs or ramfs, so the values \
         would reach a disk; {}, or pass --allow-disk-files (ENVOKE_ALLOW_DISK_FILES=1) to \
         accept a disk",
        .dir.display(),
        crate::platform::IN_MEMORY_HINT
    )]
    OnDisk {
        /// The directory the files would go to.
        dir: PathBuf,
    },
    /// Making the directory or writing a file failed.
    #[error("cannot write secret files: {0}")]
    Io(#[from] std::io::Error),
}

/// The private directory of secret files.
#[derive(Debug)]
pub struct SecretFiles {
    path: PathBuf,
    /// The directory, opened once: every file operation is relative to it.
    dir: OwnedFd,
}

impl SecretFiles {
    /// Creates the private directory; refuses a base directory that is not on a tmpfs or ramfs
    /// unless `allow_disk`.
    pub fn create(allow_disk: bool) -> Result<SecretFiles, FilesError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        SecretFiles::create_in(&base, allow_disk)
    }

    fn create_in(base: &Path, allow_disk: bool) -> Result<SecretFiles, FilesError> {
        if !crate::platform::is_in_memory(base)? {
            if !allow_disk {
                return Err(FilesError::OnDisk {
                    dir: base.to_path_buf(),
                });
            }
            tracing::warn!(
                dir = %base.display(),
                "secret files go to a filesystem that is not in memory (--allow-disk-files)"
            );
        }
        let path = base.join(format!(
            "envoke-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        // mkdir fails on anything already there, a symlink included.
        DirBuilder::new().mode(0o700).create(&path)?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(&path)?;
        Ok(SecretFiles {
            path,
            dir: dir.into(),
        })
    }

    /// Writes (or atomically replaces) the file for variable `name`; returns its path.
    fn write(&self, name: &str, value: &[u8]) -> std::io::Result<PathBuf> {
        let temporary = format!(".{name}.new");
        // O_EXCL: never opens what is already there (a symlink is not followed).
        let create = || {
            openat(
                &self.dir,
                temporary.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match create() {
            // Left by an interrupted write, or planted: unlinkat removes the entry itself.
            Err(Errno::EEXIST) => {
                unlinkat(&self.dir, temporary.as_str(), UnlinkatFlags::NoRemoveDir)?;
                create()?
            }
            fd => fd?,
        };
        let mut file = File::from(fd);
        file.write_all(value)?;
        file.sync_all()?;
        // Replaces whatever has the name, a planted symlink too, without following it.
        renameat(&self.dir, temporary.as_str(), &self.dir, name)?;
        Ok(self.path.join(name))
    }

    /// The names in the directory (without `.` and `..`).
    fn entries(&self) -> std::io::Result<Vec<CString>> {
        let mut dir = nix::dir::Dir::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(dir
            .iter()
            .flatten()
            .map(|entry| entry.file_name().to_owned())
            .filter(|name| name.as_bytes() != b"." && name.as_bytes() != b"..")
            .collect())
    }

    /// Overwrites the file `name` with zeros when it is a regular file of envoke's with no other
    /// link; anything else (a symlink, a hard link to another file, a FIFO) is left alone.
    fn zero(&self, name: &CStr) {
        let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let Ok(fd) = openat(&self.dir, name, flags, Mode::empty()) else {
            return;
        };
        let mut file = File::from(fd);
        let Ok(metadata) = file.metadata() else {
            return;
        };
        if !metadata.is_file()
            || metadata.nlink() != 1
            || metadata.uid() != nix::unistd::geteuid().as_raw()
        {
            return;
        }
        let zeros = [0u8; 4096];
        let mut left = metadata.len();
        while left > 0 {
            let chunk = left.min(zeros.len() as u64) as usize;
            if file.write_all(&zeros[..chunk]).is_err() {
                return;
            }
            left -= chunk as u64;
        }
        let _ = file.sync_all();
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
        for name in self.entries().unwrap_or_default() {
            self.zero(&name);
            if let Err(error) = unlinkat(&self.dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                tracing::warn!(dir = %self.path.display(), %error, "cannot remove a secret file");
            }
        }
        // rmdir does not follow a symlink either; it fails on one.
        if let Err(error) = std::fs::remove_dir(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "cannot remove the secret files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A base directory for the tests, accepted whatever its filesystem.
    fn files() -> (tempfile::TempDir, SecretFiles) {
        let base = tempfile::tempdir().unwrap();
        let files = SecretFiles::create_in(base.path(), true).unwrap();
        (base, files)
    }

    #[test]
    fn private_files_are_replaced_and_removed() {
        let (_base, files) = files();
        let dir = files.path.clone();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let path = files.write("TOKEN", b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        files.write("TOKEN", b"two\0three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\0three");
        drop(files);
        assert!(!dir.exists());
    }

    #[test]
    fn a_planted_symlink_or_hard_link_is_never_written_through() {
        let (base, files) = files();
        let victim = base.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // In place of the temporary file: removed, not followed.
        std::os::unix::fs::symlink(&victim, files.path.join(".TOKEN.new")).unwrap();
        let path = files.write("TOKEN", b"secret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        // In place of the file itself, and a hard link beside it: removed at the end, not zeroed.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        std::fs::hard_link(&victim, files.path.join("LINKED")).unwrap();
        drop(files);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_base_directory_on_disk_is_refused_unless_allowed() {
        // The crate's own directory is on a disk here, not on a tmpfs.
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        if crate::platform::is_in_memory(base).unwrap() {
            crate::cannot_run_here(&format!("{} is on a tmpfs here", base.display()));
            return;
        }
        let error = SecretFiles::create_in(base, false).unwrap_err();
        assert!(matches!(error, FilesError::OnDisk { .. }), "{error}");
        assert!(error.to_string().contains("--allow-disk-files"));
    }
}
