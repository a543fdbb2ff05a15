//! envoke's errors, and the one table that maps every way envoke ends to its exit code.
//!
//! The exit codes follow `env(1)` and `docker run`:
//!
//! | code | meaning |
//! |------|---------|
//! | the child's | the command ran and exited with it |
//! | 128+N | the command was killed by signal N, or envoke was stopped by signal N before it started |
//! | 75   | `--on-change exit`: a secret changed and envoke stopped the command (EX_TEMPFAIL: "try again", so an orchestrator starts a fresh task) |
//! | 125  | envoke itself failed: bad flags or manifest, a reference that cannot be resolved, a backend unreachable or denying (`check --watch`: a watch that would be denied), no policy to print. The command was not started. |
//! | 126  | the command was found but cannot be executed |
//! | 127  | the command was not found, or the interpreter its `#!` line names (or a binary's program loader) was not: execve's ENOENT, as `env` and `docker run` report it (bash too) |

use std::fmt;

use nix::sys::signal::Signal;

use crate::command::import::ImportError;
use crate::command::policy::PolicyError;
use crate::config::{ConfigError, VariableProblem};
use crate::launch::files::FilesError;
use crate::launch::supervise::{ChildExit, Finish};
use crate::launch::{ComposeError, EnvironmentError, LaunchError};
use crate::sanitize::{escaped, one_line};

/// Everything that can stop envoke.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest or a setting cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Some variables could not be accepted or resolved; the command was not started.
    #[error("{}", Unresolved(.0))]
    Variables(Vec<VariableProblem>),
    /// The command could not be started.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The signal handlers could not be installed; nothing was fetched yet.
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    /// The secret files (`file = true`) cannot be made or written.
    #[error(transparent)]
    Files(FilesError),
    /// A template's value cannot be composed (which variable, and why); the command was not
    /// started.
    #[error(transparent)]
    Template(ComposeError),
    /// tokio's runtime could not be built (out of threads or memory).
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// `envoke policy` has nothing it can print.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `envoke import` cannot read the file, or cannot store or write what it must.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// What envoke prints (the man page) cannot be written.
    #[error("cannot write {what}: {source}")]
    Output {
        /// What was being written.
        what: &'static str,
        /// Why it could not be.
        source: std::io::Error,
    },
}

impl From<EnvironmentError> for Error {
    fn from(error: EnvironmentError) -> Error {
        match error {
            EnvironmentError::Template(error) => Error::Template(error),
            EnvironmentError::Files(error) => Error::Files(FilesError::Io(error)),
        }
    }
}

/// How envoke ends when nothing went wrong on its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, successfully (`check` with every variable resolving, `--help`).
    Success,
    /// A usage error, already printed (by clap).
    Usage,
    /// The reader of envoke's output went away before all of it was written (`envoke man |
    /// head`): nothing to say, but not a success either.
    OutputClosed,
    /// `check` found variables that do not resolve, or whose watch would be denied; the report
    /// says which.
    Unresolved,
    /// A signal stopped envoke before the command started.
    Interrupted(Signal),
    /// Supervision ended.
    Supervised(Finish),
}

/// The exit codes envoke gives itself (every other is the command's, or 128 + a signal's).
pub mod code {
    /// Done, successfully.
    pub const SUCCESS: u8 = 0;
    /// `--on-change exit`: a secret changed and envoke stopped the command (EX_TEMPFAIL).
    pub const SECRET_CHANGED: u8 = 75;
    /// envoke itself failed; the command was not started.
    pub const FAILED: u8 = 125;
    /// The command was found but cannot be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The command (or its interpreter) was not found.
    pub const NOT_FOUND: u8 = 127;
    /// Added to a signal's number: the command was killed by it, or it stopped envoke.
    pub const SIGNALLED: i32 = 128;
}

/// The one exit-code table.
pub fn exit_code(result: &Result<Exit, Error>) -> u8 {
    use code::{CANNOT_EXECUTE, FAILED, NOT_FOUND, SECRET_CHANGED, SIGNALLED, SUCCESS};
    match result {
        Ok(Exit::Success) => SUCCESS,
        Ok(Exit::Supervised(Finish::Child(ChildExit::Code(code)))) => (code & 0xff) as u8,
        Ok(Exit::Supervised(Finish::Child(ChildExit::Signal(sig))) | Exit::Interrupted(sig)) => {
            (SIGNALLED + *sig as i32) as u8
        }
        Ok(Exit::Supervised(Finish::Changed)) => SECRET_CHANGED,
        Ok(Exit::Usage | Exit::OutputClosed | Exit::Unresolved) => FAILED,
        Err(Error::Launch(LaunchError::CannotExecute { .. })) => CANNOT_EXECUTE,
        Err(Error::Launch(LaunchError::NotFound(_) | LaunchError::MissingInterpreter { .. })) => {
            NOT_FOUND
        }
        Err(
            Error::Launch(LaunchError::Output(_))
            | Error::Config(_)
            | Error::Variables(_)
            | Error::Signals(_)
            | Error::Files(_)
            | Error::Template(_)
            | Error::Runtime(_)
            | Error::Policy(_)
            | Error::Import(_)
            | Error::Output { .. },
        ) => FAILED,
    }
}

struct Unresolved<'a>(&'a [VariableProblem]);

impl fmt::Display for Unresolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "{count} variable{} cannot be resolved; the command was not started",
            if count == 1 { "" } else { "s" }
        )?;
        for group in shared(self.0) {
            match group.as_slice() {
                [problem] => write!(f, "\n  {problem}")?,
                [first, ..] => {
                    let names: Vec<String> = group.iter().map(|p| escaped(&p.name)).collect();
                    write!(f, "\n  {}", names.join(", "))?;
                    // A secret is named with its variables; a backend is in the reason.
                    if let Some(subject) = first.subject.as_deref().filter(|s| s.contains("://")) {
                        write!(f, " ({subject})")?;
                    }
                    write!(f, ": {}", one_line(&first.reason))?;
                }
                [] => {}
            }
        }
        Ok(())
    }
}

/// The problems, in their order, with those that share a subject and a reason gathered at the
/// first one's place: one line for a failed Vault login, not one per variable.
fn shared(problems: &[VariableProblem]) -> Vec<Vec<&VariableProblem>> {
    let mut groups: Vec<Vec<&VariableProblem>> = Vec::new();
    for problem in problems {
        let same = |group: &&mut Vec<&VariableProblem>| {
            problem.subject.is_some()
                && group[0].subject == problem.subject
                && group[0].reason == problem.reason
        };
        match groups.iter_mut().find(|group| same(group)) {
            Some(group) => group.push(problem),
            None => groups.push(vec![problem]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shared_by_several_variables_is_reported_once_naming_them() {
        let problem = |name: &str, reference: &str, reason: &str, subject: Option<&str>| {
            let problem = VariableProblem::new(name, Some(reference), reason.to_owned());
            match subject {
                Some(subject) => problem.about(subject.to_owned()),
                None => problem,
            }
        };
        let login = "cannot log in to Vault: invalid role name";
        let problems = [
            problem("A", "vault://secret/a#x", login, Some("Vault")),
            problem("B", "aws-sm://b", "not found", Some("aws-sm://b")),
            problem("C", "vault://secret/c#y", login, Some("Vault")),
            problem("D", "aws-sm://b#k", "not found", Some("aws-sm://b")),
            problem("E", "vault://secret/e#z", "key `z` missing", None),
            problem("F", "vault://secret/f#z", "key `z` missing", None),
        ];
        assert_eq!(
            Error::Variables(problems.to_vec()).to_string(),
            "6 variables cannot be resolved; the command was not started\n  \
             A, C: cannot log in to Vault: invalid role name\n  \
             B, D (aws-sm://b): not found\n  \
             E (vault://secret/e#z): key `z` missing\n  \
             F (vault://secret/f#z): key `z` missing"
        );
    }

    #[test]
    fn the_table() {
        let code = |exit| exit_code(&Ok(exit));
        assert_eq!(code(Exit::Success), 0);
        assert_eq!(code(Exit::Supervised(Finish::Child(ChildExit::Code(3)))), 3);
        assert_eq!(
            code(Exit::Supervised(Finish::Child(ChildExit::Code(256 + 7)))),
            7
        );
        assert_eq!(
            code(Exit::Supervised(Finish::Child(ChildExit::Signal(
                Signal::SIGKILL
            )))),
            137
        );
        assert_eq!(code(Exit::Interrupted(Signal::SIGTERM)), 143);
        assert_eq!(code(Exit::Supervised(Finish::Changed)), 75);
        assert_eq!(code(Exit::Unresolved), 125);
        assert_eq!(
            exit_code(&Err(Error::Launch(LaunchError::NotFound("x".into())))),
            127
        );
    }
}
