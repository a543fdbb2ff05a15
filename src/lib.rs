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
//!    value type), `manifest` (the `envoke.toml` schema), `sanitize` (outside text made safe to
//!    show), `logging`.
//! 2. `config`: flags + manifest + environment → one validated `Config`; every settings type.
//! 3. `provider`: the AWS Secrets Manager and Vault clients, connected as references need them.
//! 4. `resolve`: references → values, per variable.
//! 5. `launch`: the child's environment, spawn/exec, signals, the supervisor, reaping, and
//!    envoke's own protection (no core file, not dumpable; the child gets both back).
//! 6. `watch`: rotation: change detection, leases, backoff; asks the supervisor to act.
//! 7. `check` (the `envoke check` report), `error` (errors and the exit-code table), `cli`
//!    (clap definitions).
//! 8. this file: [`main_with_args`], which reads top to bottom: parse, decide the terminal,
//!    load, resolve, start, supervise, clean up.
#![warn(missing_docs)]

mod check;
mod cli;
mod config;
mod error;
mod launch;
mod logging;
mod manifest;
mod provider;
mod reference;
mod resolve;
mod sanitize;
mod secret;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::{CommandFactory, Parser};
use tokio::sync::mpsc;

use crate::cli::{Args, CheckArgs, Command, Format, RunArgs};
use crate::config::{Config, Flags};
use crate::error::{Error, Exit, exit_code};
use crate::launch::files::SecretFiles;
use crate::launch::mask::OutputMask;
use crate::launch::signals::Signals;
use crate::launch::supervise::supervise;
use crate::launch::{ChildEnvironment, Terminal, become_subreaper};
use crate::provider::Backends;
use crate::resolve::{Resolution, resolve};
use crate::watch::{HeldLeases, Supervised, Watcher};

/// Runs envoke with these arguments (argv[0] first) and returns its exit code.
pub fn main_with_args(argv: impl IntoIterator<Item = OsString>) -> u8 {
    // Before anything is read or fetched, and while envoke has one thread.
    launch::protect::protect_self();
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            let exit = if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            return exit_code(&Ok(exit));
        }
    };
    match args.command {
        Command::Completions { shell } => return print_completions(shell),
        Command::Man => return print_man(),
        Command::Run(_) | Command::Check(_) => {}
    }
    let log_format = args.log_format;
    logging::init(args.verbose, args.quiet, log_format);
    if let Command::Run(run) = &args.command
        && !run.exec
    {
        // While envoke still has one thread: orphans of the child's tree come back to us.
        // Not with --exec: the attribute would survive execve into the user's command.
        become_subreaper();
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| {
            let result = runtime.block_on(async {
                match args.command {
                    Command::Run(run_args) => run(run_args).await,
                    Command::Check(check_args) => check(check_args).await,
                    Command::Completions { .. } | Command::Man => Ok(Exit::Success),
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

/// `envoke completions SHELL`: the completion script, from the clap definitions.
fn print_completions(shell: clap_complete::Shell) -> u8 {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "envoke", &mut std::io::stdout());
    exit_code(&Ok(Exit::Success))
}

/// `envoke man`: the man page (roff), from the clap definitions.
fn print_man() -> u8 {
    let result = clap_mangen::Man::new(Args::command()).render(&mut std::io::stdout());
    match result {
        Ok(()) => exit_code(&Ok(Exit::Success)),
        Err(error) => {
            // A reader that stopped early (`| head`) is not envoke's failure.
            if error.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("envoke: error: cannot write the man page: {error}");
            }
            exit_code(&Ok(Exit::Usage))
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

/// `envoke run`: resolve, start, supervise (and watch), clean up.
async fn run(args: RunArgs) -> Result<Exit, Error> {
    // Before anything slow: a TERM while resolving must be seen, not lost.
    let terminal = Terminal::of_stdin();
    let mut signals = Signals::install(terminal).map_err(Error::Signals)?;
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        exec: args.exec,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout,
        signal_map: args.signal_map,
        watch: args.watch,
        on_change: args.on_change,
        settle: args.settle,
        no_revoke: args.no_revoke,
        mask: args.mask,
        pass_env: args.pass_env,
        allow_disk_files: args.allow_disk_files,
    })?;
    if !config.problems.is_empty() {
        return Err(Error::Variables(config.problems));
    }

    let (backends, resolution) = tokio::select! {
        resolved = connect_and_resolve(&config) => resolved,
        sig = signals.recv_terminating() => {
            tracing::warn!(signal = %sig, "interrupted while resolving; the command was not started");
            return Ok(Exit::Interrupted(sig));
        }
    };
    let failures = resolution.failures();
    if !failures.is_empty() {
        backends.revoke_all(&resolution.leases()).await;
        backends.logout().await;
        return Err(Error::Variables(failures));
    }
    tracing::info!(
        variables = resolution.outcomes.len(),
        "resolved every reference"
    );
    let files = if config.wants_files() {
        Some(Arc::new(
            SecretFiles::create(config.allow_disk_files).map_err(Error::Files)?,
        ))
    } else {
        None
    };
    let environment = ChildEnvironment::build(&config, &resolution, files.as_deref())
        .map_err(|e| Error::Files(e.into()))?;

    if args.exec {
        // The command keeps envoke's PID.
        resolution.audit(&backends, "start", Some(std::process::id()));
        return Err(launch::exec(&args.command, &environment).into());
    }
    let mask = config.mask.then(|| Arc::new(OutputMask::default()));
    let start = |environment: &ChildEnvironment| {
        launch::spawn(&args.command, environment, terminal, mask.as_deref())
    };
    let target = start(&environment)?;
    resolution.audit(
        &backends,
        "start",
        Some(target.pid().as_raw().unsigned_abs()),
    );
    // The values are in the child's environment now; envoke's copies are zeroized here, before
    // supervision that may last for months.
    drop(environment);

    let config = Arc::new(config);
    let backends = Arc::new(backends);
    let held: HeldLeases = Arc::new(Mutex::new(resolution.leases()));
    let (control, mut controls) = mpsc::unbounded_channel();
    let watcher = Watcher::start(
        Arc::clone(&config),
        Arc::clone(&backends),
        &resolution,
        files.clone(),
        Arc::clone(&held),
        mask.clone(),
        Supervised {
            control,
            pid: target.pid(),
        },
    );
    // The watcher kept versions and hashes; the values themselves go now.
    drop(resolution);
    let login = tokio::spawn({
        let backends = Arc::clone(&backends);
        async move { backends.keep_login_alive().await }
    });

    let finish = supervise(target, &mut signals, &config.stop, &mut controls, &start).await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if let Some(mask) = &mask {
        // Every child was reaped: the last of their output is in the pipes.
        mask.finish().await;
    }
    login.abort();
    if config.revoke {
        let leases = watch::lock(&held).clone();
        backends.revoke_all(&leases).await;
        backends.logout().await;
    }
    // Zeroes and removes the secret files, on every way out but SIGKILL.
    drop(files);
    Ok(Exit::Supervised(finish?))
}

async fn connect_and_resolve(config: &Config) -> (Backends, Resolution) {
    let backends = Backends::connect(config).await;
    let resolution = resolve(config, &backends).await;
    (backends, resolution)
}

/// `envoke check`.
async fn check(args: CheckArgs) -> Result<Exit, Error> {
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        ..Flags::default()
    })?;
    let (backends, resolution) = connect_and_resolve(&config).await;
    resolution.audit(&backends, "check", None);
    // A check must not leave dynamic credentials, or a login, behind.
    backends.revoke_all(&resolution.leases()).await;
    backends.logout().await;
    let report = check::Report::new(&config, &resolution);
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json() + "\n",
    };
    print!("{text}");
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Unresolved
    })
}
