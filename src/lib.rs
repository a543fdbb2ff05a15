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
//!    show), `logging`, `platform` (every call only some operating systems have, behind a cfg).
//! 2. `config`: flags + manifest + environment → one validated `Config`; every settings type.
//! 3. `provider`: the AWS Secrets Manager and Vault clients, connected as references need them.
//! 4. `resolve`: references → values, per variable.
//! 5. `launch`: the child's environment, spawn/exec, signals, the supervisor, reaping, and
//!    envoke's own protection (no core file, not dumpable; the child gets both back).
//! 6. `watch`: rotation: change detection, leases, backoff; asks the supervisor to act.
//! 7. `check` (the `envoke check` report), `policy` (the least-privilege policy `envoke policy`
//!    prints), `dotenv` (the `.env` format) and `import` (a `.env` file's secrets stored, its
//!    manifest written), `error` (errors and the exit-code table), `cli` (clap definitions).
//! 8. this file: [`main_with_args`], which reads top to bottom: parse, decide the terminal,
//!    load, resolve, start, supervise, clean up.
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

mod check;
mod cli;
mod config;
mod dotenv;
mod error;
mod import;
mod launch;
mod logging;
mod manifest;
mod platform;
mod policy;
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
use tokio::sync::{Notify, mpsc};

use crate::cli::{Args, CheckArgs, Command, Format, ImportArgs, PolicyArgs, RunArgs};
use crate::config::{Config, ConfigError, Flags};
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
        Command::Run(_) | Command::Check(_) | Command::Policy(_) | Command::Import(_) => {}
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
                    Command::Policy(policy_args) => policy(policy_args).await,
                    Command::Import(import_args) => import(import_args).await,
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
    let working_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let config = Config::load(&flags, environment, home_dir().as_deref(), &working_dir)?;
    if let Some(manifest) = &config.manifest {
        tracing::info!(manifest = %manifest.display(), "using the manifest");
    }
    // python-dotenv, dotenv for Node and the like load it themselves, over what envoke set.
    if std::path::Path::new(".env").exists() {
        tracing::warn!(
            "a .env file is in the working directory: the application may still load it and \
             override what envoke set; move its values into secrets and delete it"
        );
    }
    Ok(config)
}

/// `envoke run`: resolve, start, supervise (and watch), clean up.
async fn run(args: RunArgs) -> Result<Exit, Error> {
    // Before anything slow: a TERM while resolving must be seen, not lost.
    let terminal = Terminal::of_stdin();
    let mut signals = Signals::install(terminal).map_err(Error::Signals)?;
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        profile: args.profile,
        exec: args.exec,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout,
        signal_map: args.signal_map,
        watch: args.watch,
        on_change: args.on_change,
        settle: args.settle,
        sweep: args.sweep,
        splay: args.splay,
        recheck_signal: args.recheck_signal,
        no_revoke: args.no_revoke,
        mask: args.mask,
        pass_env: args.pass_env,
        allow_disk_files: args.allow_disk_files,
        ..Flags::default()
    })?;
    if let Some(sig) = config.watch.as_ref().and_then(|w| w.recheck_signal) {
        signals.recheck_on(sig).map_err(Error::Signals)?;
    }
    if !config.problems.is_empty() {
        return Err(Error::Variables(config.problems));
    }
    if config.found_nothing() && !args.allow_empty {
        tracing::warn!(
            "no envoke.toml here or in a directory above (up to the repository's root), and no \
             reference in the environment: starting the command with no secrets \
             (-m FILE names a manifest; --allow-empty silences this)"
        );
    }

    let backends = tokio::select! {
        backends = Backends::connect(&config) => backends,
        sig = signals.recv_terminating() => {
            tracing::warn!(signal = %sig, "interrupted while connecting; the command was not started");
            return Ok(Exit::Interrupted(sig));
        }
    };
    let resolution = tokio::select! {
        resolution = resolve(&config, &backends) => resolution,
        sig = signals.recv_terminating() => {
            tracing::warn!(signal = %sig, "interrupted while resolving; the command was not started");
            // The leases of a resolution cut short are not known; revoking the login revokes
            // them with it.
            backends.logout().await;
            return Ok(Exit::Interrupted(sig));
        }
    };
    let failures = resolution.failures();
    if !failures.is_empty() {
        return Err(undo(&backends, &resolution, Error::Variables(failures)).await);
    }
    tracing::info!(
        variables = resolution.outcomes.len(),
        "resolved every reference"
    );
    let files = if config.wants_files() {
        match SecretFiles::create(config.allow_disk_files) {
            Ok(files) => Some(Arc::new(files)),
            Err(error) => return Err(undo(&backends, &resolution, Error::Files(error)).await),
        }
    } else {
        None
    };
    let environment = match ChildEnvironment::build(&config, &resolution, files.as_deref()) {
        Ok(environment) => environment,
        Err(error) => return Err(undo(&backends, &resolution, Error::Files(error.into())).await),
    };

    if args.exec {
        // The command keeps envoke's PID.
        resolution.audit(&backends, "start", Some(std::process::id()));
        let error = launch::exec(&args.command, &environment).into();
        return Err(undo(&backends, &resolution, error).await);
    }
    let mask = config.mask.then(|| Arc::new(OutputMask::default()));
    let start = |environment: &ChildEnvironment| {
        launch::spawn(&args.command, environment, terminal, mask.as_deref())
    };
    let target = match start(&environment) {
        Ok(target) => target,
        Err(error) => return Err(undo(&backends, &resolution, error.into()).await),
    };
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
    let recheck = Arc::new(Notify::new());
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
            recheck: Arc::clone(&recheck),
        },
    );
    // The watcher kept versions and hashes; the values themselves go now.
    drop(resolution);
    platform::release_free_memory();
    let login = tokio::spawn({
        let backends = Arc::clone(&backends);
        async move { backends.keep_login_alive().await }
    });

    let finish = supervise(
        target,
        &mut signals,
        &config.stop,
        &mut controls,
        &recheck,
        &start,
    )
    .await;
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

/// When the command will not run after all: the dynamic credentials fetched for it and envoke's
/// own login are revoked before envoke says why, not left to their TTL.
async fn undo(backends: &Backends, resolution: &Resolution, error: Error) -> Error {
    backends.revoke_all(&resolution.leases()).await;
    backends.logout().await;
    error
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
        profile: args.profile,
        ..Flags::default()
    })?;
    if config.found_nothing() && !args.allow_empty {
        return Err(ConfigError::NothingToCheck.into());
    }
    let (backends, resolution) = connect_and_resolve(&config).await;
    // What watching would ask, asked now (a lease renewal among it), before the leases go.
    let watch_denials = if args.watch || config.watch.is_some() {
        Some(check::watch_denials(&backends, &resolution).await)
    } else {
        None
    };
    resolution.audit(&backends, "check", None);
    // A check must not leave dynamic credentials, or a login, behind.
    backends.revoke_all(&resolution.leases()).await;
    backends.logout().await;
    let report = check::Report::new(&config, &resolution, watch_denials.as_ref());
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

/// `envoke policy`: the policy on stdout, its notes on stderr.
async fn policy(args: PolicyArgs) -> Result<Exit, Error> {
    let config = load_config(Flags {
        manifest: args.manifest,
        no_env_refs: args.no_env_refs,
        credentials_optional: true,
        ..Flags::default()
    })?;
    let watch = args.watch || config.watch.is_some();
    let policy = if args.aws {
        policy::aws(&config, watch)?
    } else {
        policy::vault(&config, watch).await?
    };
    for note in &policy.notes {
        eprintln!("# {note}");
    }
    print!("{}", policy.text);
    Ok(Exit::Success)
}

/// `envoke import`.
async fn import(args: ImportArgs) -> Result<Exit, Error> {
    use crate::import::{Destination, Plan};
    use crate::sanitize::escaped;
    let source = args.file.display().to_string();
    let text = read_dotenv(&args.file)?;
    let variables = dotenv::parse(&text)
        .map_err(|e| Error::Import(format!("cannot read {}: {e}", escaped(&source))))?;
    drop(text);
    let Some(to) = &args.to else {
        return Err(Error::Import(
            "say where the secrets go: --to aws-sm://PREFIX or --to vault://MOUNT/PATH".to_owned(),
        ));
    };
    let destination =
        Destination::parse(to, args.split).map_err(|e| Error::Import(e.to_string()))?;
    let plan = Plan::new(variables, destination.clone());
    for (name, _, why) in &plan.literals {
        eprintln!("envoke: kept {name} as a literal: {why}");
    }
    let manifest = plan.manifest(&source);
    if !args.write {
        print!("{manifest}");
        eprintln!(
            "envoke: nothing was stored; with --write, the {} secret values go to {destination} \
             and this manifest to {}",
            plan.secrets.len(),
            args.output.display()
        );
        return Ok(Exit::Success);
    }
    if args.output.symlink_metadata().is_ok() && !args.force {
        return Err(Error::Import(format!(
            "{} exists; envoke does not overwrite it without --force (or choose another with -o)",
            args.output.display()
        )));
    }
    let config = load_config(Flags {
        load_vault: matches!(destination, Destination::Vault { .. }),
        ..Flags::default()
    })?;
    plan.store(&config)
        .await
        .map_err(|e| Error::Import(e.to_string()))?;
    std::fs::write(&args.output, &manifest).map_err(|e| {
        Error::Import(format!(
            "stored the secrets, but cannot write {}: {e}",
            args.output.display()
        ))
    })?;
    eprintln!(
        "envoke: stored {} secret values at {destination} and wrote {}\n\
         next: check with `envoke check -m {}`, then delete {} (envoke never changes it) and add \
         it to .gitignore",
        plan.secrets.len(),
        args.output.display(),
        args.output.display(),
        escaped(&source),
    );
    Ok(Exit::Success)
}

/// A `.env` file: a regular file of at most 4 MiB, read into zeroizing memory.
fn read_dotenv(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, Error> {
    use crate::config::file::{ReadError, read_bounded};
    let fail = |why: String| Error::Import(format!("cannot read {}: {why}", path.display()));
    let bytes = read_bounded(path, 4 * 1024 * 1024).map_err(|error| match error {
        ReadError::NotRegular(kind) => fail(format!("not a regular file but {kind}")),
        ReadError::TooLarge(_) => fail("larger than 4 MiB".to_owned()),
        ReadError::Io(error) => fail(error.to_string()),
    })?;
    String::from_utf8(bytes.to_vec())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| fail("not UTF-8 text".to_owned()))
}
