//! Every call that only some operating systems have, in one place, each behind a `cfg`: Linux
//! (what envoke is built, tested and shipped for), macOS (builds; the equivalents named below are
//! not verified by any test here: no macOS machine) and a statement of what a platform lacks.
//!
//! | need | Linux | macOS |
//! |---|---|---|
//! | no core file | RLIMIT_CORE 0 (launch/protect.rs) | the same |
//! | no same-user ptrace | `prctl(PR_SET_DUMPABLE, 0)`; execve makes the command dumpable again | `ptrace(PT_DENY_ATTACH)` (unverified: whether the command inherits it) |
//! | orphans reaped when not PID 1 | `prctl(PR_SET_CHILD_SUBREAPER)` | none: orphans go to launchd, which reaps them |
//! | secret files in memory only | a tmpfs or ramfs, checked with statfs | none (no tmpfs): refused unless `--allow-disk-files` |
//! | close-on-exec pipes | `pipe2(O_CLOEXEC)`, atomic | `pipe` then `FD_CLOEXEC` |
//! | free heap pages returned | glibc's `malloc_trim` | nothing to call (musl neither) |

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Makes envoke's memory unreadable to other processes of the same user (ptrace,
/// `/proc/PID/mem`). A failure leaves envoke running: this is defence in depth.
pub fn deny_tracing() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_dumpable(false);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: PT_DENY_ATTACH takes no address or data and changes only this process's flag.
    unsafe {
        libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0);
    }
}

/// Makes envoke the reaper of orphaned descendants, where the platform has such a thing.
pub fn become_subreaper() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("this platform has no child subreaper; orphans go to its init".to_owned())
    }
}

/// Whether `dir` is on a filesystem held in memory only (tmpfs, ramfs), so that a file written
/// there never reaches a disk.
pub fn is_in_memory(dir: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};
        /// ramfs's statfs magic number (linux/magic.h); nix names only tmpfs's.
        const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
        let kind = statfs(dir).map_err(io::Error::from)?.filesystem_type();
        Ok(kind == TMPFS_MAGIC || kind == RAMFS_MAGIC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS has no tmpfs; a RAM disk is an ordinary HFS+/APFS volume to statfs. Refuse, and
        // let --allow-disk-files decide.
        let _ = dir;
        Ok(false)
    }
}

/// Where secret files could go instead, for the error that refuses a disk.
pub const IN_MEMORY_HINT: &str = if cfg!(target_os = "linux") {
    "set XDG_RUNTIME_DIR to a directory on a tmpfs (such as /run/user/UID or /dev/shm)"
} else {
    "this platform has no tmpfs to check for"
};

/// A pipe whose two ends are closed on exec.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        let (read, write) = nix::unistd::pipe()?;
        for end in [&read, &write] {
            fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok((read, write))
    }
}

/// Gives the heap's free pages back to the kernel, where the allocator can (glibc); elsewhere
/// nothing to do (musl's allocator returns large blocks by itself). Called once the command runs
/// and the values are dropped: resolution's buffers (answers, TLS records, the parsed manifest)
/// were freed, and zeroed by the allocator, but glibc keeps the pages of a fragmented heap
/// resident for the months a supervisor may idle.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointer
    // of ours and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
