//! Reading a file envoke is pointed at (a manifest, a token, a certificate, a `.env`): a regular
//! file only, and at most so many bytes. It is opened with O_NONBLOCK, so that opening a FIFO
//! returns at once instead of waiting for a writer, and checked with fstat on the open descriptor
//! (no race with a rename) before a byte is read; a device such as `/dev/zero` is refused before
//! it can grow a buffer without end.
//!
//! A [`Guard`] adds what the file's owner and mode must be, checked on that same descriptor and
//! read from it, so that what was checked is what is read: a found manifest is opened with
//! O_NOFOLLOW (a link is its owner's choice, not the target's), and a credential file others can
//! write, or a private key others can read, is refused as ssh refuses them.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;
use zeroize::Zeroizing;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// What it is instead: `a directory`, `a FIFO`, `a device`, `a socket`.
    NotRegular(&'static str),
    /// It holds more than the cap (the cap).
    TooLarge(u64),
    /// The guard refused it: why (`it is a symbolic link`, `it is writable by other users
    /// (mode 0666)`).
    Unsafe(String),
    /// It cannot be opened or read.
    Io(std::io::Error),
}

/// What a file's owner and mode must be before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Nothing: a file the user named (`-m`, a `.env`).
    None,
    /// A manifest envoke found by searching: not a symbolic link, owned by the user or root, and
    /// writable by no one else.
    FoundManifest,
    /// A credential (a token, a secret id, a JWT, a CA or client certificate): writable by no
    /// one else, or another user could put their own in it.
    Credential,
    /// A private key: a credential that no other user may read either.
    PrivateKey,
}

/// The file's bytes, in zeroizing memory (it may hold secrets).
pub fn read(path: &Path, cap: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_guarded(path, cap, Guard::None)
}

/// Like [`read`], with `guard`'s checks made on the open descriptor before a byte is read.
pub fn read_guarded(path: &Path, cap: u64, guard: Guard) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut flags = OFlag::O_NONBLOCK;
    if guard == Guard::FoundManifest {
        flags |= OFlag::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|error| {
            if guard == Guard::FoundManifest
                && error.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
            {
                ReadError::Unsafe("it is a symbolic link".to_owned())
            } else {
                ReadError::Io(error)
            }
        })?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "a socket"
        }));
    }
    check(&metadata, guard).map_err(ReadError::Unsafe)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// Whether a file or directory with this metadata is the user's (or root's) alone to change.
pub fn only_user_can_write(metadata: &Metadata) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != euid && metadata.uid() != 0 {
        return Err(format!(
            "it belongs to another user (uid {})",
            metadata.uid()
        ));
    }
    writable_by_no_one_else(metadata)
}

/// Refuses a mode that lets another user write: world-writable, or group-writable unless the
/// group is the user's own private group (as Debian's ssh allows, for umask 002 systems).
fn writable_by_no_one_else(metadata: &Metadata) -> Result<(), String> {
    let mode = metadata.mode() & 0o7777;
    let group_is_private = || private_group(metadata.gid());
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_is_private()) {
        return Err(format!("it is writable by other users (mode {mode:04o})"));
    }
    Ok(())
}

/// Whether `gid` is the user's private group: the user's primary group, named as the user, with
/// no other member.
fn private_group(gid: u32) -> bool {
    let uid = nix::unistd::geteuid();
    let (Ok(Some(user)), Ok(Some(group))) = (
        nix::unistd::User::from_uid(uid),
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)),
    ) else {
        return false;
    };
    user.gid.as_raw() == gid
        && group.name == user.name
        && group.mem.iter().all(|member| *member == user.name)
}

fn check(metadata: &Metadata, guard: Guard) -> Result<(), String> {
    match guard {
        Guard::None => Ok(()),
        Guard::FoundManifest => only_user_can_write(metadata),
        Guard::Credential => writable_by_no_one_else(metadata),
        Guard::PrivateKey => {
            writable_by_no_one_else(metadata)?;
            let mode = metadata.mode() & 0o7777;
            if mode & 0o004 != 0 {
                return Err(format!("it is readable by every user (mode {mode:04o})"));
            }
            Ok(())
        }
    }
}
