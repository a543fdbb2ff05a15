//! Reading a file envoke is pointed at (a manifest, a token, a certificate, a `.env`): a regular
//! file only, and at most so many bytes. It is opened with O_NONBLOCK, so that opening a FIFO
//! returns at once instead of waiting for a writer, and checked with fstat on the open descriptor
//! (no race with a rename) before a byte is read; a device such as `/dev/zero` is refused before
//! it can grow a buffer without end.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// What it is instead: `a directory`, `a FIFO`, `a device`, `a socket`.
    NotRegular(&'static str),
    /// It holds more than the cap (the cap).
    TooLarge(u64),
    /// It cannot be opened or read.
    Io(std::io::Error),
}

/// The file's bytes, in zeroizing memory (it may hold secrets).
pub fn read(path: &Path, cap: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(ReadError::Io)?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
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
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}
