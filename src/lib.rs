//! envoke: start a command with its secrets from AWS Secrets Manager and Vault/OpenBao in its
//! environment — no `.env` files.
//!
//! Data flows one way:
//!
//! ```text
//! argv ─► cli ─► config (manifest + flags + environment, references parsed) ─► resolve
//!      (providers: aws, vault; batched, concurrent, deduplicated) ─► launch (exec, or spawn and
//!      supervise: signals, reaping, graceful stop) ─► exit code (error)
//! ```
//!
//! - [`cli`]: clap definitions.
//! - [`manifest`]: the `envoke.toml` schema.
//! - [`config`]: flags + manifest + environment → one validated [`config::Config`].
//! - [`reference`]: the `aws-sm://` / `vault://` grammar.
//! - [`secret`]: the zeroizing, redacting value type.
//! - [`provider`]: AWS Secrets Manager and Vault clients.
//! - [`resolve`]: references → values, per variable.
//! - [`check`]: the `envoke check` report.
//! - [`launch`]: the child's environment, spawn/exec, signal forwarding, reaping.
//! - [`watch`]: rotation: change detection, leases, backoff.
//! - [`error`]: errors and their exit codes.
#![warn(missing_docs)]

pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod launch;
pub mod logging;
pub mod manifest;
pub mod provider;
pub mod reference;
pub mod resolve;
pub mod secret;
pub mod watch;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use clap::Parser;

use crate::cli::{Args, CheckArgs, Command, Format, RunArgs};
use crate::config::{Config, Flags, VariableProblem};
use crate::error::{EXIT_ENVOKE_FAILED, Error};
use crate::launch::files::SecretFiles;
use crate::launch::signals::{GROUP_FORWARDED, Signals, TERMINAL_CAUGHT};
use crate::launch::supervise::{Target, supervise};
use crate::launch::{ChildEnvironment, become_subreaper};
use crate::resolve::{Backends, Resolution, resolve};
use crate::watch::{HeldLeases, Watcher, revoke_all};

/// Runs envoke with these arguments (argv[0] first) and returns its exit code.
pub fn main_with_args(argv: impl IntoIterator<Item = OsString>) -> u8 {
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                EXIT_ENVOKE_FAILED
            } else {
                0
            };
        }
    };
    logging::init(args.verbose, args.quiet);
    if let Command::Run(run) = &args.command
        && !run.exec
    {
        // While envoke still has one thread: orphans of the child's tree come back to us.
        // Not with --exec: the attribute would survive execve into the user's command.
        become_subreaper();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("envoke: cannot start the async runtime: {error}");
            return EXIT_ENVOKE_FAILED;
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            Command::Run(run_args) => run(run_args).await,
            Command::Check(check_args) => check(check_args).await,
        }
    });
    // Don't wait for a stuck blocking task (a DNS lookup, say) before exiting.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("envoke: error: {error}");
            error.exit_code()
        }
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn load_config(flags: Flags) -> Result<Config, Error> {
    let environment: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    Ok(Config::load(&flags, environment, home_dir().as_deref())?)
}

/// `envoke run`.
async fn run(args: RunArgs) -> Result<u8, Error> {
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let caught = if on_terminal {
        TERMINAL_CAUGHT
    } else {
        GROUP_FORWARDED
    };
    let mut signals = Signals::install(caught).map_err(Error::Signals)?;
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout,
        signal_map: args.signal_map,
        watch: args.watch,
        on_change: args.on_change,
        settle: args.settle,
        no_revoke: args.no_revoke,
    })?;
    if !config.problems.is_empty() {
        return Err(Error::Variables(config.problems));
    }
    let wants_files = config.variables.iter().any(|v| v.file);
    if args.exec && (config.watch.is_some() || wants_files) {
        return Err(Error::Usage(
            "--exec leaves no envoke behind to watch secrets or remove secret files; \
             drop --exec, or --watch and `file = true`"
                .to_owned(),
        ));
    }

    let (backends, resolution) = tokio::select! {
        resolved = connect_and_resolve(&config) => resolved,
        sig = signals.recv_terminating() => {
            tracing::warn!(signal = %sig, "interrupted while resolving; the command was not started");
            return Ok(128 + sig as i32 as u8);
        }
    };
    let failures = failures(&resolution);
    if !failures.is_empty() {
        revoke_all(&backends, &resolution.leases()).await;
        return Err(Error::Variables(failures));
    }
    tracing::info!(
        variables = resolution.outcomes.len(),
        "resolved every reference"
    );
    let files = if wants_files {
        Some(Arc::new(SecretFiles::create().map_err(Error::Files)?))
    } else {
        None
    };
    let environment =
        ChildEnvironment::build(&config, &resolution, files.as_deref()).map_err(Error::Files)?;

    if args.exec {
        return Err(launch::exec(&args.command, &environment).into());
    }
    let start = |environment: &ChildEnvironment| {
        let pid = launch::spawn(&args.command, environment, !on_terminal)?;
        tracing::info!(%pid, "started the command");
        Ok(if on_terminal {
            Target::Foreground(pid)
        } else {
            Target::Group(pid)
        })
    };
    let target = start(&environment)?;
    drop(environment);

    let config = Arc::new(config);
    let backends = Arc::new(backends);
    let held: HeldLeases = Arc::new(Mutex::new(resolution.leases()));
    let (control, mut controls) = mpsc::unbounded_channel();
    let watcher = config.watch.clone().map(|options| {
        tracing::info!(interval = ?options.interval, on_change = ?options.on_change, "watching for changes");
        let watcher = Watcher::new(
            Arc::clone(&config),
            Arc::clone(&backends),
            options,
            &resolution,
            files.clone(),
            Arc::clone(&held),
            control.clone(),
        );
        tokio::spawn(watcher.run())
    });
    drop(control);
    drop(resolution);

    let finish = supervise(target, &mut signals, &config.stop, &mut controls, &start).await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if config.revoke {
        let leases = held.lock().map(|l| l.clone()).unwrap_or_default();
        revoke_all(&backends, &leases).await;
    }
    drop(files);
    Ok(finish?.code())
}

async fn connect_and_resolve(config: &Config) -> (Backends, Resolution) {
    let backends = Backends::connect(config).await;
    let resolution = resolve(config, &backends).await;
    (backends, resolution)
}

fn failures(resolution: &Resolution) -> Vec<VariableProblem> {
    resolution
        .outcomes
        .iter()
        .filter_map(|outcome| {
            let failure = outcome.result.as_ref().err()?;
            Some(VariableProblem {
                name: outcome.name.clone(),
                reference: Some(outcome.reference.to_string()),
                reason: failure.to_string(),
            })
        })
        .collect()
}

/// `envoke check`.
async fn check(args: CheckArgs) -> Result<u8, Error> {
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        ..Flags::default()
    })?;
    let backends = Backends::connect(&config).await;
    let resolution = resolve(&config, &backends).await;
    // A check must not leave dynamic credentials behind.
    revoke_all(&backends, &resolution.leases()).await;
    let report = check::Report::new(&config, &resolution);
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json() + "\n",
    };
    print!("{text}");
    Ok(if report.ok { 0 } else { EXIT_ENVOKE_FAILED })
}
