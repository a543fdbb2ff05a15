//! envoke: start a command with its secrets from AWS Secrets Manager and Vault/OpenBao in its
//! environment — no `.env` files.
//!
//! Data flows one way:
//!
//! ```text
//! argv ─► cli ─► config (manifest + flags + environment, references parsed) ─► resolve
//!      (providers: aws, vault; batched, concurrent, deduplicated) ─► launch (exec, or spawn and
//!      supervise: signals, reaping, graceful stop) ◄── watch ─► exit code (error)
//! ```
//!
//! The modules, in layers: each imports only from the layers listed before it.
//!
//! 1. `reference` (the `aws-sm://` / `vault://` grammar), `secret` (the zeroizing, redacting
//!    value type), `manifest` (the `envoke.toml` schema), `dotenv` (the `.env` format),
//!    `sanitize` (outside text made safe to show), `untrusted_file` (a file envoke is pointed
//!    at, read safely), `logging`, `platform` (every call only some operating systems have,
//!    behind a cfg).
//! 2. `config`: flags + manifest + environment → one validated `Config`; every settings type.
//! 3. `provider`: the AWS Secrets Manager and Vault clients, connected as references need them.
//! 4. `resolve`: references → values, per variable.
//! 5. `launch`: the child's environment, spawn/exec, signals, the supervisor, reaping, and
//!    envoke's own protection (no core file, not dumpable; the child gets both back).
//! 6. `watch`: rotation: change detection, leases, backoff; asks the supervisor to act.
//! 7. `command` (one module per subcommand: `run`, `check`, `policy`, `import`, `generate`),
//!    `cli` (the clap definitions and their conversion into config's `Flags`) and `error`
//!    (every error, and the exit-code table), which name each other's types.
//! 8. this file: [`main_with_args`]: parse, set up logging (and, for `run`, become a
//!    subreaper while envoke has one thread), then hand over to the subcommand's module.
#![warn(missing_docs)]

/// A unit test that cannot run on this machine fails, saying why, unless
/// `ENVOKE_TEST_ALLOW_SKIP=1` lets it skip (as the integration tests' `cannot_run_here`).
#[cfg(test)]
#[track_caller]
fn cannot_run_here(reason: &str) {
    if std::env::var("ENVOKE_TEST_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED (ENVOKE_TEST_ALLOW_SKIP=1): {reason}");
    } else {
        panic!("{reason}; set ENVOKE_TEST_ALLOW_SKIP=1 to skip such tests on this machine");
    }
}

mod cli;
mod command;
mod config;
mod dotenv;
mod error;
mod launch;
mod logging;
mod manifest;
mod platform;
mod provider;
mod reference;
mod resolve;
mod sanitize;
mod secret;
mod untrusted_file;
mod watch;

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Args, Command};
use crate::error::{Error, Exit, exit_code};

/// Runs envoke with these arguments (argv[0] first) and returns its exit code.
pub fn main_with_args(argv: impl IntoIterator<Item = OsString>) -> u8 {
    // Before anything is read or fetched, and while envoke has one thread.
    launch::protect::protect_self();
    let argv: Vec<OsString> = argv.into_iter().collect();
    let args = match Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(error) => {
            let error = cli::with_tips(error, &argv);
            let _ = error.print();
            let exit = if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            return exit_code(&Ok(exit));
        }
    };
    let log_format = args.log_format;
    let quiet = args.quiet;
    let generated = match &args.command {
        Command::Completions { shell, .. } => Some(command::generate::completions(*shell)),
        Command::Man { dir, .. } => Some(command::generate::man(dir.as_deref())),
        Command::Run(_)
        | Command::Check(_)
        | Command::Policy(_)
        | Command::Import(_)
        | Command::Trust(_) => None,
    };
    if let Some(result) = generated {
        if let Err(error) = &result {
            logging::print_error(log_format, error);
        }
        return exit_code(&result);
    }
    logging::init(args.verbosity(), args.quiet, log_format);
    if let Command::Run(run) = &args.command
        && !run.exec
    {
        // While envoke still has one thread: orphans of the child's tree come back to us.
        // Not with --exec: the attribute would survive execve into the user's command.
        launch::become_subreaper();
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| {
            let result = runtime.block_on(async {
                match args.command {
                    Command::Run(args) => command::run::run(args).await,
                    Command::Check(args) => command::check::check(args).await,
                    Command::Policy(args) => command::policy::policy(args).await,
                    Command::Import(args) => command::import::import(args, quiet).await,
                    Command::Trust(args) => command::trust::trust(&args),
                    Command::Completions { .. } | Command::Man { .. } => Ok(Exit::Success),
                }
            });
            // Don't wait for a stuck blocking task (a DNS lookup, say) before exiting.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            result
        });
    if let Err(error) = &result {
        logging::print_error(log_format, error);
    }
    exit_code(&result)
}
