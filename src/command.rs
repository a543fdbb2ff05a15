//! The subcommands, one module each: [`run`] (resolve, start, supervise), [`check`] (the report
//! of what resolves), [`policy`] (the least-privilege policy), [`import`] (a `.env` file's move
//! into a backend), [`trust`] (consent for a found manifest's connection settings) and [`generate`] (completions and the man page). Each takes its clap arguments
//! and returns how envoke ends ([`Exit`]) or why it failed ([`Error`]); `lib.rs` only picks one.
//!
//! [`Exit`]: crate::error::Exit
//! [`Error`]: crate::error::Error

pub mod check;
pub mod generate;
pub mod import;
pub mod policy;
pub mod run;
pub mod trust;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{Config, Flags, Purpose};
use crate::error::Error;

/// The configuration from these flags, the manifest and envoke's own environment, for `purpose`.
fn load_config(flags: &Flags, purpose: Purpose) -> Result<Config, Error> {
    let environment: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let working_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let config = Config::load(
        flags,
        purpose,
        environment,
        home_dir().as_deref(),
        &working_dir,
    )?;
    if let Some(manifest) = &config.manifest {
        tracing::info!(manifest = %manifest.display(), "using the manifest");
    }
    if let Some(dotenv) = stale_dotenv(&working_dir) {
        tracing::warn!(
            path = %dotenv.display(),
            "a .env file is where the application may load it (Flask, python-dotenv's \
             find_dotenv and others look here and in every directory above): each variable the \
             manifest leaves out still comes from it; move its values into secrets and delete it"
        );
    }
    Ok(config)
}

/// The `.env` file an application's loader would find: in `working_dir` or the nearest
/// directory above it, as python-dotenv's `find_dotenv(usecwd=True)` (what Flask's
/// `load_dotenv` calls) searches, up to the filesystem root.
fn stale_dotenv(working_dir: &Path) -> Option<PathBuf> {
    working_dir
        .ancestors()
        .map(|dir| dir.join(".env"))
        .find(|candidate| candidate.is_file())
}

/// `$HOME`, when it is set and not empty (the Vault CLI's token helper file lives there).
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
