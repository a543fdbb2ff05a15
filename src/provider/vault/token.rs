//! The token envoke sends to Vault, and where it came from.
//!
//! - A token the user gave (VAULT_TOKEN) is used as it is.
//! - A token file is read again whenever it changes (its modification time, size or inode), so
//!   a Vault Agent sink or a projected token that rotates the file is followed without a restart.
//!   The file is read only when it is a regular file, at most [`MAX_FILE`] bytes, and trimmed of
//!   surrounding whitespace; a control character left inside is an error.
//! - A token from envoke's own login carries its TTL, so that it can be renewed at two thirds of
//!   it and replaced by a fresh login when renewal no longer helps (see `keep_login_alive`).

use std::fs::Metadata;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::vault::TokenSource;
use crate::provider::FetchError;
use crate::untrusted_file::{self, Guard, ReadError};

/// No token, secret id or JWT file is larger; a larger one is refused, not read.
pub(super) const MAX_FILE: u64 = 64 * 1024;

/// The token in use.
pub(super) struct Token {
    pub(super) value: SecretString,
    pub(super) origin: Origin,
    /// The token's accessor, when envoke logged in (for the audit events: it names the token in
    /// Vault's own audit log and cannot be used as one).
    pub(super) accessor: Option<String>,
}

pub(super) enum Origin {
    /// VAULT_TOKEN / BAO_TOKEN.
    Given,
    /// A file, as it was when last read.
    File { path: PathBuf, stamp: Stamp },
    /// envoke's own login.
    Login(Lifetime),
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
        }
    }
}

/// A login token's lifetime, as Vault last told it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetime {
    /// Zero for a token that never expires.
    pub(super) ttl: Duration,
    pub(super) renewable: bool,
    pub(super) since: Instant,
}

impl Lifetime {
    /// About two thirds into the TTL; `None` for a token that never expires.
    pub(super) fn due(&self) -> Option<Instant> {
        (!self.ttl.is_zero()).then(|| self.since + self.ttl.mul_f64(2.0 / 3.0))
    }
}

impl Token {
    /// The token a user gave, read now when it is a file.
    pub(super) fn given(source: &TokenSource) -> Result<Token, FetchError> {
        match source {
            TokenSource::Value(value) => Ok(Token {
                value: value.clone(),
                origin: Origin::Given,
                accessor: None,
            }),
            TokenSource::File { path, explicit } => {
                let (value, stamp) = read_token_file(path).map_err(|error| match error {
                    FileError::Missing if !explicit => no_token(),
                    error => error.for_file("token file", path),
                })?;
                Ok(Token {
                    value,
                    origin: Origin::File {
                        path: path.clone(),
                        stamp,
                    },
                    accessor: None,
                })
            }
            TokenSource::Missing => Err(no_token()),
        }
    }

    /// The token to send now: a token file that changed is read again first. When it cannot
    /// be read (an agent is rewriting it, say), the token read last is used.
    pub(super) fn current(&mut self) -> SecretString {
        if let Origin::File { path, stamp } = &mut self.origin
            && let Ok(metadata) = std::fs::metadata(&*path)
            && Stamp::of(&metadata) != *stamp
        {
            match read_token_file(path) {
                Ok((value, new_stamp)) => {
                    tracing::info!(file = %path.display(), "the Vault token file changed; using its new token");
                    self.value = value;
                    *stamp = new_stamp;
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), error = %error.for_file("token file", path), "cannot read the changed Vault token file; keeping the token read before");
                }
            }
        }
        self.value.clone()
    }
}

fn no_token() -> FetchError {
    FetchError::Other(
        "no Vault token: set VAULT_TOKEN or run `vault login` (~/.vault-token), \
         or log in with `auth =` under [vault]"
            .to_owned(),
    )
}

/// Why a credential file could not be used. Never holds the file's content.
#[derive(Debug)]
pub(super) enum FileError {
    Missing,
    NotRegular,
    TooLarge(u64),
    Empty,
    ControlCharacter,
    NotText,
    Io(std::io::Error),
    /// Its owner or mode lets another user change (or, for a key, read) it: why.
    Unsafe(String),
}

impl FileError {
    pub(super) fn for_file(self, what: &str, path: &Path) -> FetchError {
        let reason = match self {
            FileError::Missing => "it does not exist".to_owned(),
            FileError::NotRegular => "it is not a regular file".to_owned(),
            FileError::TooLarge(cap) => format!("it is larger than {cap} bytes"),
            FileError::Empty => "it is empty".to_owned(),
            FileError::ControlCharacter => "it has a control character inside".to_owned(),
            FileError::NotText => "it is not UTF-8 text".to_owned(),
            FileError::Io(error) => error.to_string(),
            FileError::Unsafe(reason) => {
                format!(
                    "{reason}; run `chmod 600 {}` if it is yours",
                    path.display()
                )
            }
        };
        FetchError::Other(format!(
            "cannot use the {what} {}: {reason}",
            path.display()
        ))
    }
}

fn read_token_file(path: &Path) -> Result<(SecretString, Stamp), FileError> {
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => FileError::Missing,
        _ => FileError::Io(error),
    })?;
    let value = read_secret_file(path)?;
    Ok((value, Stamp::of(&metadata)))
}

/// Reads a small credential file (a token, a secret id, a JWT), trimmed of surrounding
/// whitespace. Refuses what is not a regular file (a FIFO would block envoke forever), what is
/// larger than [`MAX_FILE`], and what has a control character inside.
pub(super) fn read_secret_file(path: &Path) -> Result<SecretString, FileError> {
    let bytes = read_bounded(path, MAX_FILE, Guard::Credential)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| FileError::NotText)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(FileError::Empty);
    }
    if text.chars().any(char::is_control) {
        return Err(FileError::ControlCharacter);
    }
    Ok(SecretString::from(text.to_owned()))
}

/// [`untrusted_file::read_guarded`], with this module's errors (a missing file is told
/// apart: a missing ~/.vault-token means "no token", not a failure).
pub(super) fn read_bounded(
    path: &Path,
    cap: u64,
    guard: Guard,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    untrusted_file::read_guarded(path, cap, guard).map_err(|error| match error {
        ReadError::Unsafe(reason) => FileError::Unsafe(reason),
        ReadError::NotRegular(_) => FileError::NotRegular,
        ReadError::TooLarge(cap) => FileError::TooLarge(cap),
        ReadError::Io(error) if error.kind() == std::io::ErrorKind::NotFound => FileError::Missing,
        ReadError::Io(error) => FileError::Io(error),
    })
}

/// Whether a secret has no control character (a header value would refuse it).
pub(super) fn header_safe(value: &SecretString) -> bool {
    !value.expose_secret().chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s.abc\n").unwrap();
        assert_eq!(read_secret_file(&path).unwrap().expose_secret(), "s.abc");
        std::fs::write(&path, "s.a\u{1b}bc\n").unwrap();
        assert!(matches!(
            read_secret_file(&path),
            Err(FileError::ControlCharacter)
        ));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_secret_file(&path), Err(FileError::Empty)));
        assert!(matches!(
            read_secret_file(dir.path()),
            Err(FileError::NotRegular) | Err(FileError::Io(_))
        ));
        assert!(matches!(
            read_secret_file(&dir.path().join("none")),
            Err(FileError::Missing)
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_secret_file(&fifo),
            Err(FileError::NotRegular)
        ));
    }

    #[test]
    fn a_rewritten_token_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let mut token = Token::given(&TokenSource::File {
            path: path.clone(),
            explicit: true,
        })
        .unwrap();
        assert_eq!(token.current().expose_secret(), "first");
        // Written elsewhere and renamed into place, as agents do: a new inode.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second-token\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(token.current().expose_secret(), "second-token");
    }
}
