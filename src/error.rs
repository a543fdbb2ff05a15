//! envoke's errors, and the one table that maps them to exit codes.
//!
//! The exit codes follow `env(1)` and `docker run`: the child's own code when it ran, 128+N when
//! signal N ended it, and otherwise:
//!
//! | code | meaning |
//! |------|---------|
//! | 125  | envoke itself failed: bad flags or manifest, a reference that cannot be resolved, a backend unreachable or denying. The command was not started. |
//! | 126  | the command was found but cannot be executed |
//! | 127  | the command was not found |

use std::fmt;

use crate::config::{ConfigError, VariableProblem};
use crate::launch::LaunchError;

/// envoke failed itself.
pub const EXIT_ENVOKE_FAILED: u8 = 125;
/// The command cannot be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Everything that can stop envoke.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest could not be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Some variables could not be accepted or resolved; the command was not started.
    #[error("{}", Unresolved(.0))]
    Variables(Vec<VariableProblem>),
    /// The command could not be started.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    /// Secret files could not be written.
    #[error("cannot write secret files: {0}")]
    Files(std::io::Error),
    /// Flags or settings that do not go together.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Variables(_)
            | Error::Signals(_)
            | Error::Files(_)
            | Error::Usage(_) => EXIT_ENVOKE_FAILED,
            Error::Launch(LaunchError::NotFound(_)) => EXIT_NOT_FOUND,
            Error::Launch(LaunchError::CannotExecute { .. }) => EXIT_CANNOT_EXECUTE,
        }
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
        for problem in self.0 {
            write!(f, "\n  {}", problem.name)?;
            if let Some(reference) = &problem.reference {
                write!(f, " ({reference})")?;
            }
            write!(f, ": {}", problem.reason)?;
        }
        Ok(())
    }
}
