//! `envoke import FILE --to DEST`: the way off a `.env` file. The file's secrets go to one place
//! in Secrets Manager or Vault, and a manifest that references them takes the file's place.
//!
//! - `--to aws-sm://PREFIX`: one JSON secret named PREFIX, a key per variable
//!   (`aws-sm://PREFIX#NAME`); with `--split`, a secret per variable (`aws-sm://PREFIX/NAME`).
//! - `--to vault://MOUNT/PATH`: one KV secret, a key per variable (`vault://MOUNT/PATH#NAME`).
//!
//! Values that are clearly not secret stay literals in the manifest, each with the reason: an
//! empty value, a port, a setting word (`info`, `true`, `production`), a URL without credentials.
//! Without `--write` nothing is stored and no secret value is printed: the manifest shows
//! references and those literals only. The `.env` file is never changed.

mod merge;
mod plan;
mod store;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use self::plan::{Destination, Plan};
use self::store::Writing;
use crate::cli::ImportArgs;
use crate::config::{Flags, Purpose};
use crate::dotenv;
use crate::error::{Error, Exit};
use crate::provider::FetchError;
use crate::sanitize::escaped;
use crate::untrusted_file;

/// The largest `.env` file envoke reads.
const DOTENV_CAP: u64 = 4 * 1024 * 1024;

/// `envoke import`: reads the `.env` file, prints the manifest (and with `--write` stores the
/// values, merged with what is stored, and writes it). `quiet` (`-q`) silences the notes.
pub async fn import(args: ImportArgs, quiet: bool) -> Result<Exit, Error> {
    let note = |text: &str| {
        if !quiet {
            eprintln!("envoke: {text}");
        }
    };
    let source = args.file.display().to_string();
    let Some(to) = &args.to else {
        return Err(ImportError::NoDestination.into());
    };
    // Before anything is read or stored.
    let destination = Destination::parse(to, args.split)?;
    let text = read_dotenv(&args.file)?;
    let expand = if args.no_expand {
        dotenv::Expand::Off
    } else {
        dotenv::Expand::Variables
    };
    let parsed = dotenv::parse(&text, expand).map_err(|e| ImportError::ReadFile {
        path: escaped(&source),
        why: e.to_string(),
    })?;
    drop(text);
    if !parsed.expanded.is_empty() {
        note(&format!(
            "expanded the variables in {} as the .env loaders do (--no-expand keeps them as \
             written)",
            parsed.expanded.join(", ")
        ));
    }
    let plan = Plan::new(
        parsed.variables,
        destination.clone(),
        &args.literal,
        &args.secret,
    )?;
    for (name, _, why) in &plan.literals {
        note(&format!(
            "kept {name} as a literal: {why} (--secret {name} stores it)"
        ));
    }
    let manifest = plan.manifest(&source);
    let values = merge::plural(plan.secrets.len(), "secret value", "secret values");
    if !args.write {
        print!("{manifest}");
        note(&format!(
            "nothing was stored; with --write, the {values} go to {destination} (merged with \
             what is there) and this manifest to {}",
            args.output.display()
        ));
        return Ok(Exit::Success);
    }
    if args.output.symlink_metadata().is_ok() && !args.force {
        return Err(ImportError::ManifestExists(args.output).into());
    }
    let purpose = Purpose::Import {
        to_vault: matches!(destination, Destination::Vault { .. }),
    };
    let config = super::load_config(&Flags::default(), purpose)?;
    let writing = Writing {
        force: args.force,
        quiet,
    };
    store::store(&plan, &config, writing).await?;
    std::fs::write(&args.output, &manifest).map_err(|source| ImportError::WriteManifest {
        path: args.output.clone(),
        source,
    })?;
    note(&format!(
        "stored the {values} at {destination} and wrote {}\n\
         next: check with `envoke check -m {}`, then delete {} (envoke never changes it) and add \
         it to .gitignore",
        args.output.display(),
        args.output.display(),
        escaped(&source),
    ));
    Ok(Exit::Success)
}

/// A `.env` file: a regular file of at most [`DOTENV_CAP`] bytes, read into zeroizing memory.
fn read_dotenv(path: &Path) -> Result<Zeroizing<String>, ImportError> {
    let fail = |why: String| ImportError::ReadFile {
        path: path.display().to_string(),
        why,
    };
    let bytes = untrusted_file::read(path, DOTENV_CAP).map_err(|error| match error {
        untrusted_file::ReadError::NotRegular(kind) => {
            fail(format!("not a regular file but {kind}"))
        }
        untrusted_file::ReadError::TooLarge(_) => fail("larger than 4 MiB".to_owned()),
        untrusted_file::ReadError::Io(error) => fail(error.to_string()),
        untrusted_file::ReadError::Unsafe(why) => fail(why),
    })?;
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| fail("not UTF-8 text".to_owned()))
}

/// Why an import cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The `.env` file cannot be read or parsed.
    #[error("cannot read {path}: {why}")]
    ReadFile {
        /// The `.env` file as given on the command line.
        path: String,
        /// What is wrong: not a regular file, too large, not UTF-8, a line that does not parse.
        why: String,
    },
    /// No `--to`: envoke does not guess where secrets should live.
    #[error("say where the secrets go: --to aws-sm://PREFIX or --to vault://MOUNT/PATH")]
    NoDestination,
    /// `--write` would replace an existing manifest.
    #[error(
        "{} exists; envoke does not overwrite it without --force (or choose another with -o)",
        .0.display()
    )]
    ManifestExists(PathBuf),
    /// The secrets are stored, but the manifest that references them could not be written.
    #[error("stored the secrets, but cannot write {}: {source}", .path.display())]
    WriteManifest {
        /// `-o MANIFEST` (`envoke.toml` by default).
        path: PathBuf,
        /// Why writing failed.
        source: std::io::Error,
    },
    /// `--to` is not an `aws-sm://` or `vault://` reference without a key, version or region;
    /// the text escaped.
    #[error(
        "`--to {0}` is not a destination: give --to aws-sm://PREFIX or --to vault://MOUNT/PATH \
         (no ?query, no #key)"
    )]
    BadDestination(String),
    /// `--split` with a Vault destination, whose one KV secret already has a key per variable.
    #[error("--split goes with --to aws-sm:// only")]
    SplitForVault,
    /// A stored value would change (or a stored non-object be replaced) without `--force`;
    /// nothing was written.
    #[error(
        "nothing was stored: at {destination}, {what}; --force lets the .env's values win, or \
         take those keys out of the .env"
    )]
    WouldChange {
        /// Where.
        destination: String,
        /// What would change, in names only.
        what: String,
    },
    /// Another writer changed the destination between envoke's read and its write; envoke did
    /// not write over it.
    #[error(
        "{destination} changed while envoke was importing ({detail}); nothing was written over \
         it: run the import again"
    )]
    Conflict {
        /// Where.
        destination: String,
        /// What was seen.
        detail: String,
    },
    /// `--literal` or `--secret` names a variable the `.env` does not have.
    #[error("--{flag} {name}: the .env has no variable {name}")]
    UnknownOverride {
        /// `literal` or `secret`.
        flag: &'static str,
        /// The name as given, escaped.
        name: String,
    },
    /// Connecting to the destination or writing a secret there failed.
    #[error("cannot store the secrets at {destination}: {source}")]
    Store {
        /// The destination as `--to` gave it (`/*` added with `--split`).
        destination: String,
        /// The provider's error: credentials, permissions, the network.
        source: FetchError,
    },
}
