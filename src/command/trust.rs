//! `envoke trust [FILE]`: records that the user trusts a manifest, with its present content, to
//! set where credentials go ([`crate::config::trust`]).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::TrustArgs;
use crate::config::trust;
use crate::error::{Error, Exit};

/// Trusts `FILE`, or the manifest found here or above, and says what it may now set.
pub fn trust(args: &TrustArgs) -> Result<Exit, Error> {
    let environment: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let working_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let recorded = trust::record(
        args.file.as_deref(),
        &environment,
        super::home_dir().as_deref(),
        &working_dir,
    )?;
    let settings = if recorded.settings.is_empty() {
        "none yet".to_owned()
    } else {
        recorded.settings.join(", ")
    };
    eprintln!(
        "trusted {} (SHA-256 {}); the connection and credential settings it sets: {settings}",
        recorded.path.display(),
        recorded.digest
    );
    Ok(Exit::Success)
}
