//! envoke's own process, closed to others: no core file and no same-user ptrace, while the
//! command it starts gets the ordinary state back.
//!
//! [`protect_self`] runs first in `main_with_args`, while envoke has one thread:
//!
//! - RLIMIT_CORE's soft limit goes to 0, so a crash (SIGABRT, SIGSEGV) writes no core file that
//!   would hold fetched values or the Vault token. The hard limit is kept, so that the command
//!   can be given its limit back.
//! - PR_SET_DUMPABLE 0: the same user cannot ptrace envoke or read `/proc/PID/mem` or
//!   `/proc/PID/environ`; `/proc/PID/*` belongs to root. Non-dumpable processes also write no core
//!   file while `fs.suid_dumpable` is 0 (the default), even to a `core_pattern` pipe.
//!
//! The command gets both back. RLIMIT_CORE: [`restore_for_command`] sets the original soft limit
//! in the forked child, between fork and exec. Dumpable: execve resets it by itself — the kernel
//! sets a new program dumpable when it is not set-user-ID or set-group-ID, has no file
//! capabilities and is readable (fs/exec.c, `begin_new_exec`; prctl(2), PR_SET_DUMPABLE), so the
//! command is as dumpable as it would be without envoke. The test `hardening` module checks both
//! on a running command.
//!
//! Root (CAP_SYS_PTRACE) can still read envoke's memory; the zeroing allocator is what protects
//! values there (SECURITY.md).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};

/// RLIMIT_CORE (soft, hard) as envoke found it, once lowered.
static ORIGINAL_CORE_LIMIT: OnceLock<(rlim_t, rlim_t)> = OnceLock::new();

/// No core file and no same-user ptrace for envoke. A failure changes nothing else: envoke still
/// runs (the attributes are a defence in depth).
pub fn protect_self() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_CORE)
        && soft != 0
        && setrlimit(Resource::RLIMIT_CORE, 0, hard).is_ok()
    {
        let _ = ORIGINAL_CORE_LIMIT.set((soft, hard));
    }
    crate::platform::deny_tracing();
}

/// Gives the command the core-file limit envoke started with. Without a limit to restore (it was
/// 0 already), the command is left alone, which keeps std's posix_spawn fast path.
pub fn restore_for_command(command: &mut Command) {
    let Some(&(soft, hard)) = ORIGINAL_CORE_LIMIT.get() else {
        return;
    };
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: nix's setrlimit fills a struct on the stack and makes the one system
    // call (setrlimit(2) is async-signal-safe; nothing is allocated or locked). Raising the soft
    // limit up to the unchanged hard limit needs no privilege. A failure is ignored: the command
    // then runs with envoke's limit of 0, which is safe.
    unsafe {
        command.pre_exec(move || {
            let _ = setrlimit(Resource::RLIMIT_CORE, soft, hard);
            Ok(())
        });
    }
}
