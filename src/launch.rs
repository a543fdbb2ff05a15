//! Starting the command: building its environment, spawning or exec-ing it, supervising it.
//!
//! The child's environment is built in exactly one place ([`ChildEnvironment::build`]) and the
//! process is started in exactly one place ([`command`]); the rest of envoke never sees a secret
//! value as a plain string.

pub mod files;
pub mod mask;
pub mod protect;
pub mod signals;
pub mod supervise;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use zeroize::Zeroizing;

use self::files::SecretFiles;
use self::mask::OutputMask;
use self::signals::{GROUP_FORWARDED, TERMINAL_CAUGHT};
use self::supervise::Target;
use crate::config::{Config, Origin, Variable};
use crate::resolve::Resolution;

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

/// The child's environment. Values sit in zeroizing buffers, cleared when this is dropped.
pub struct ChildEnvironment {
    entries: Vec<(OsString, Zeroizing<Vec<u8>>)>,
    /// With `--mask`: each resolved variable's value (also one given as a file), to be masked
    /// in the child's output. Empty without `--mask`.
    masked: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for ChildEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(name, _)| name))
            .finish()
    }
}

impl ChildEnvironment {
    /// The inherited environment, with the manifest's literals and the resolved values on top.
    /// Warns (naming only the variable) for each inherited variable the manifest overrides.
    /// Variables marked `file = true` get the path of a file in `files` holding the value.
    ///
    /// `resolution` must be complete (every outcome a value); failed outcomes are skipped.
    pub fn build(
        config: &Config,
        resolution: &Resolution,
        files: Option<&SecretFiles>,
    ) -> std::io::Result<ChildEnvironment> {
        let mut values: BTreeMap<&str, Zeroizing<Vec<u8>>> = config
            .literals()
            .map(|(name, text)| (name, Zeroizing::new(text.as_bytes().to_vec())))
            .collect();
        for outcome in &resolution.outcomes {
            if let Ok(value) = &outcome.result {
                values.insert(
                    outcome.name.as_str(),
                    Zeroizing::new(value.expose().as_bytes().to_vec()),
                );
            }
        }
        let origins = config.by_name();
        let composed = compose(config, &origins, &mut values)?;
        let masked = if config.mask {
            resolution
                .outcomes
                .iter()
                .filter_map(|o| Some((o.name.clone(), o.result.as_ref().ok()?)))
                .map(|(name, v)| (name, Zeroizing::new(v.expose().as_bytes().to_vec())))
                .chain(composed.into_iter().filter_map(|name| {
                    let value = values.get(name.as_str())?.clone();
                    Some((name, value))
                }))
                .collect()
        } else {
            Vec::new()
        };
        for (name, value) in values.iter_mut() {
            let Some(variable) = origins.get(name) else {
                continue;
            };
            if let Some(path) = files::write_if_file(files, variable, value)? {
                *value = Zeroizing::new(path.into_os_string().into_vec());
            }
        }
        let mut entries = Vec::with_capacity(config.inherited.len() + values.len());
        for (name, inherited) in &config.inherited {
            let replacement = name.to_str().and_then(|n| values.remove(n));
            match replacement {
                Some(value) => {
                    let origin = name.to_str().and_then(|n| origins.get(n)).map(|v| v.origin);
                    if origin == Some(Origin::Manifest) {
                        tracing::warn!(
                            variable = %crate::sanitize::escaped(&name.to_string_lossy()),
                            "the manifest overrides an inherited environment variable"
                        );
                    }
                    entries.push((name.clone(), value));
                }
                None => entries.push((name.clone(), Zeroizing::new(inherited.as_bytes().to_vec()))),
            }
        }
        entries.extend(
            values
                .into_iter()
                .map(|(name, value)| (OsString::from(name), value)),
        );
        Ok(ChildEnvironment { entries, masked })
    }
}

/// Composes the templates' values from the others in `values` (literals and resolved values),
/// each once every variable it names has a value; returns the names composed. The manifest's
/// templates were checked when it was loaded: every name exists and none is part of a circle.
fn compose<'a>(
    config: &'a Config,
    by_name: &BTreeMap<&str, &Variable>,
    values: &mut BTreeMap<&'a str, Zeroizing<Vec<u8>>>,
) -> std::io::Result<Vec<String>> {
    let mut pending: Vec<_> = config.templates().collect();
    let mut composed = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<(&str, Zeroizing<Vec<u8>>)> = pending
            .iter()
            .filter_map(|(name, template)| {
                let value = template.render(|n| values.get(n).map(|v| v.as_slice()))?;
                Some((*name, value))
            })
            .collect();
        if ready.is_empty() {
            let (name, template) = pending[0];
            let missing = template
                .names()
                .find(|n| !values.contains_key(n))
                .unwrap_or_default();
            return Err(std::io::Error::other(if missing.is_empty() {
                format!(
                    "the template of {name} composes more than {} bytes",
                    crate::config::template::MAX_COMPOSED
                )
            } else {
                format!(
                    "the template of {name} names {missing}, which has no value (a key the \
                     expanded secret does not have?)"
                )
            }));
        }
        for (name, value) in ready {
            let as_file = by_name.get(name).is_some_and(|v| v.file);
            if value.contains(&0) && !as_file {
                return Err(std::io::Error::other(format!(
                    "the template of {name} composes a NUL byte, which an environment variable \
                     cannot hold"
                )));
            }
            pending.retain(|(pending, _)| *pending != name);
            values.insert(name, value);
            composed.push(name.to_owned());
        }
    }
    Ok(composed)
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
    MissingInterpreter { command: String, missing: String },
    /// The program exists but cannot be executed (exit 126).
    #[error("cannot execute {command}: {source}")]
    CannotExecute {
        command: String,
        source: std::io::Error,
    },
    /// The pipes for `--mask` could not be made (exit 125).
    #[error("cannot make the pipes that --mask reads the command's output from: {0}")]
    Output(std::io::Error),
}

/// How a child is started: by the file found for argv[0] in the child's PATH, the ordinary way
/// (argv[0] searched by execvp), or a script without `#!` handed to /bin/sh.
#[derive(Debug, Clone, Copy)]
enum Program<'a> {
    Found(&'a std::path::Path),
    Search,
    Shell(&'a std::path::Path),
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

/// The shell a script without `#!` is handed to (POSIX execvp; `_PATH_BSHELL`).
const SHELL: &str = "/bin/sh";

/// Runs `start` with the file execvp would find for argv[0] in the child's PATH, and again the
/// ordinary way (execvp) when that fails.
///
/// Why: std starts a program named by path with posix_spawn (vfork), but forks (copying envoke's
/// page tables, then a copy-on-write fault for each page either side touches) when it must
/// search a PATH other than envoke's own, which is always the case once the child's environment
/// is built: 69 fewer page faults and about 0.3 ms per launch (docs/benchmarks.md). On any
/// failure the second, ordinary start decides, so execvp's own behaviour is kept where the two
/// differ: the next PATH entry tried after an ENOENT or EACCES, and the error reported.
///
/// A script without `#!` (execve's ENOEXEC) is run by /bin/sh, as glibc's execvp and POSIX
/// do. musl's execvp does not (its authors' choice), so envoke does it itself: the static
/// binary starts such a script as the glibc build does.
fn start_by_path<T>(
    argv: &[OsString],
    environment: &ChildEnvironment,
    mut start: impl FnMut(Program<'_>) -> Result<std::io::Result<T>, LaunchError>,
) -> Result<std::io::Result<T>, LaunchError> {
    if let Some(path) = executable_in_path(&argv[0], environment) {
        let started = start(Program::Found(&path))?;
        if started.is_ok() {
            return Ok(started);
        }
    }
    let started = start(Program::Search)?;
    if let Err(error) = &started
        && error.raw_os_error() == Some(libc::ENOEXEC)
        && let Some(script) = located(&argv[0], environment)
    {
        return start(Program::Shell(&script));
    }
    Ok(started)
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
        std::io::ErrorKind::NotFound => match located(&argv[0], environment) {
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

/// The file `program` names, as execvp finds it: the path itself when it has a slash, else the
/// first regular file of that name in the child's PATH.
fn located(program: &OsStr, environment: &ChildEnvironment) -> Option<std::path::PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let path = std::path::PathBuf::from(program);
        return is_file(&path).then_some(path);
    }
    executable_in_path(program, environment)
        .or_else(|| path_candidates(program, environment)?.find(|candidate| is_file(candidate)))
}

/// The file execvp would run for a `program` without a slash: the first regular file of that
/// name in the child's PATH that envoke may execute (execvp skips the others and goes on).
/// `None` for a path, when there is no PATH or no such file, or when a candidate before it would
/// end execvp's search (a symlink loop).
fn executable_in_path(
    program: &OsStr,
    environment: &ChildEnvironment,
) -> Option<std::path::PathBuf> {
    use nix::unistd::{AccessFlags, access};
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    for candidate in path_candidates(program, environment)? {
        match candidate.metadata() {
            Ok(meta) if meta.is_file() && access(&candidate, AccessFlags::X_OK).is_ok() => {
                return Some(candidate);
            }
            // What execvp skips: nothing there (ENOENT, ENOTDIR), or nothing it may run there
            // (EACCES: a directory, a FIFO, a file without the execute bit).
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::NotADirectory
                        | std::io::ErrorKind::PermissionDenied
                ) => {}
            // Anything else (a symlink loop, an I/O error) ends execvp's search with that
            // error: execvp itself gives it.
            Err(_) => return None,
        }
    }
    None
}

/// `DIR/program` for each directory of the child's PATH, in order (an empty entry is the working
/// directory, as for execvp).
fn path_candidates<'a>(
    program: &'a OsStr,
    environment: &ChildEnvironment,
) -> Option<impl Iterator<Item = std::path::PathBuf> + 'a> {
    let path = environment
        .entries
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| OsStr::from_bytes(value).to_owned())?;
    let dirs: Vec<_> = std::env::split_paths(&path).collect();
    Some(dirs.into_iter().map(move |dir| dir.join(program)))
}

fn is_file(path: &std::path::Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
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
    let spawned = start_by_path(argv, environment, |program| {
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
    let failed = start_by_path(argv, environment, |program| {
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
