//! Starting the command: building its environment, spawning or exec-ing it, supervising it.
//!
//! The child's environment is built in exactly one place ([`ChildEnvironment::build`], in
//! [`environment`]) and the process is started in exactly one place ([`command`], by the file
//! [`path`] finds); the rest of envoke never sees a secret value as a plain string.

mod environment;
pub mod files;
pub mod mask;
mod path;
pub mod protect;
pub mod signals;
pub mod supervise;

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use self::environment::{ChildEnvironment, ComposeError, EnvironmentError};
use self::mask::OutputMask;
use self::path::{Program, SHELL, located, start_by_path};
use self::signals::{GROUP_FORWARDED, TERMINAL_CAUGHT};
use self::supervise::Target;

/// Whether the child shares envoke's terminal. Decided once, from stdin, before anything starts:
/// it sets which signals envoke catches, whether the child gets a process group of its own, and
/// who receives what envoke forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// stdin is a terminal: the child stays in envoke's process group, in the terminal's
    /// foreground (so it can read the terminal), and the terminal's own signals reach it directly.
    Foreground,
    /// No terminal (a container, a service): the child leads a process group of its own, and
    /// forwarded signals go to the whole group.
    Detached,
}

impl Terminal {
    /// Foreground when envoke's stdin is a terminal (a person at a shell), else detached.
    pub fn of_stdin() -> Terminal {
        if std::io::stdin().is_terminal() {
            Terminal::Foreground
        } else {
            Terminal::Detached
        }
    }

    /// The signals envoke catches (besides SIGCHLD).
    fn caught(self) -> &'static [Signal] {
        match self {
            Terminal::Foreground => TERMINAL_CAUGHT,
            Terminal::Detached => GROUP_FORWARDED,
        }
    }

    fn target(self, pid: Pid) -> Target {
        match self {
            Terminal::Foreground => Target::Foreground(pid),
            Terminal::Detached => Target::Group(pid),
        }
    }
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No such program (exit 127).
    #[error("command not found: {0}")]
    NotFound(String),
    /// The program exists, but what the kernel needs to run it does not: the interpreter its
    /// `#!` line names, or (for a binary) its program loader. Exit 127, as `env` and `docker run`
    /// give (execve fails with ENOENT).
    #[error("cannot execute {command}: {missing}")]
    MissingInterpreter {
        /// The command as given.
        command: String,
        /// What is missing: the interpreter's path, or the program loader.
        missing: String,
    },
    /// The program exists but cannot be executed (exit 126).
    #[error("cannot execute {command}: {source}")]
    CannotExecute {
        /// The command as given.
        command: String,
        /// execve's error (EACCES, ENOEXEC with no shell, ...).
        source: std::io::Error,
    },
    /// The pipes for `--mask` could not be made (exit 125).
    #[error("cannot make the pipes that --mask reads the command's output from: {0}")]
    Output(std::io::Error),
}

/// The one place a child process is described. `std::process::Command` copies the environment
/// into buffers of its own that it does not zeroize; see SECURITY.md.
fn command(argv: &[OsString], program: Program<'_>, environment: &ChildEnvironment) -> Command {
    let mut command = match program {
        Program::Found(path) => Command::new(path),
        Program::Search => Command::new(&argv[0]),
        Program::Shell(_) => Command::new(SHELL),
    };
    match program {
        Program::Found(_) | Program::Search => {
            command.arg0(&argv[0]);
        }
        // As glibc's execvp does it: `/bin/sh FILE ARGS...`, the shell's own argv[0].
        Program::Shell(script) => {
            command.arg(script);
        }
    }
    command.args(&argv[1..]).env_clear();
    protect::restore_for_command(&mut command);
    for (name, value) in &environment.entries {
        command.env(name, OsStr::from_bytes(value));
    }
    command
}

fn launch_error(
    argv: &[OsString],
    environment: &ChildEnvironment,
    error: std::io::Error,
) -> LaunchError {
    let program = crate::sanitize::escaped(&argv[0].to_string_lossy());
    match error.kind() {
        // execve gives ENOENT both for a program that is not there and for one whose
        // interpreter (or ELF loader) is not: tell them apart by looking for the file.
        std::io::ErrorKind::NotFound => match located(&argv[0], environment.path()) {
            Some(path) => LaunchError::MissingInterpreter {
                command: program,
                missing: missing_interpreter(&path),
            },
            None => LaunchError::NotFound(program),
        },
        _ => LaunchError::CannotExecute {
            command: program,
            source: error,
        },
    }
}

/// What is missing for an existing file that execve says is not found: the interpreter its
/// `#!` line names, or else the loader (PT_INTERP) of a binary.
fn missing_interpreter(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut head = [0u8; 256];
    let read = std::fs::File::open(path)
        .and_then(|mut file| file.read(&mut head))
        .unwrap_or(0);
    let head = &head[..read];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let interpreter = line.split_whitespace().next().unwrap_or_default();
        return format!(
            "the interpreter its #! line names, {}, does not exist",
            crate::sanitize::escaped(interpreter)
        );
    }
    if head.starts_with(b"\x7fELF") {
        return "the file exists, but the program loader it was linked against does not (a \
                binary built for another libc, such as musl or glibc, or another architecture?)"
            .to_owned();
    }
    "the file exists, but something it needs to start does not".to_owned()
}

/// Starts the child, in a process group of its own unless it shares envoke's terminal; returns
/// whom forwarded signals go to. With `mask` (`--mask`), its stdout and stderr are pipes that
/// envoke copies, masked, to its own; otherwise it inherits envoke's.
pub fn spawn(
    argv: &[OsString],
    environment: &ChildEnvironment,
    terminal: Terminal,
    mask: Option<&OutputMask>,
) -> Result<Target, LaunchError> {
    if let Some(mask) = mask {
        mask.update(
            environment
                .masked
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_slice())),
        );
    }
    let spawned = start_by_path(&argv[0], environment.path(), |program| {
        let mut command = command(argv, program, environment);
        if terminal == Terminal::Detached {
            command.process_group(0);
        }
        if let Some(mask) = mask {
            mask.redirect(&mut command).map_err(LaunchError::Output)?;
        }
        // Dropping `command` closes envoke's copies of the pipes' write ends: the pumps see the
        // end of the output when the child's copies close (at once, when it did not start).
        Ok(command.spawn())
    })?;
    let child = spawned.map_err(|e| launch_error(argv, environment, e))?;
    // The `Child` handle is dropped without waiting: the supervisor reaps (see supervise.rs).
    // It holds no pipe: those went to the pumps.
    let pid = Pid::from_raw(child.id() as i32);
    tracing::info!(pid = pid.as_raw(), "started the command");
    Ok(terminal.target(pid))
}

/// Replaces envoke with the command (execve). Returns only on failure.
pub fn exec(argv: &[OsString], environment: &ChildEnvironment) -> LaunchError {
    let failed = start_by_path(&argv[0], environment.path(), |program| {
        Ok(Err::<std::convert::Infallible, _>(
            command(argv, program, environment).exec(),
        ))
    });
    match failed {
        Ok(Err(error)) => launch_error(argv, environment, error),
        Ok(Ok(never)) => match never {},
        Err(error) => error,
    }
}

/// Makes envoke a child subreaper, so orphaned grandchildren are re-parented to it and reaped,
/// unless it is PID 1 already (which receives orphans anyway).
pub fn become_subreaper() {
    if nix::unistd::getpid().as_raw() == 1 {
        return;
    }
    if let Err(error) = crate::platform::become_subreaper() {
        tracing::debug!(%error, "cannot become a child subreaper");
    }
}
