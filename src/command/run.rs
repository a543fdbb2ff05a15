//! `envoke run`, in three stages:
//!
//! 1. **prepare**: the configuration, the connections to the backends and the resolution of
//!    every reference. A TERM or INT meanwhile ends envoke before the command starts.
//! 2. **start**: the secret files, the child's environment, then `execve` (`--exec`) or spawn.
//! 3. **supervise**: the watcher, the login's renewal, the supervisor until the command is done,
//!    then the clean-up: leases and login revoked, secret files zeroed and removed.
//!
//! From the first fetch until the command has started, one [`Fetched`] owns the backends and
//! the resolution: on any way out before the start, [`Fetched::give_back`] revokes the dynamic
//! credentials fetched for the command and envoke's own login before envoke says why, instead of
//! leaving them to their TTL.

use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::cli::RunArgs;
use crate::config::{Config, Purpose};
use crate::error::{Error, Exit};
use crate::launch::files::SecretFiles;
use crate::launch::mask::OutputMask;
use crate::launch::signals::Signals;
use crate::launch::supervise::{Target, supervise};
use crate::launch::{self, ChildEnvironment, Terminal};
use crate::platform;
use crate::provider::Backends;
use crate::resolve::{Resolution, resolve};
use crate::sanitize::escaped;
use crate::watch::{self, LeaseLedger, SupervisorHandle, Watcher};

/// `envoke run`: prepare, start, supervise.
pub async fn run(args: RunArgs) -> Result<Exit, Error> {
    let terminal = Terminal::of_stdin();
    // Before anything slow: a TERM while resolving must be seen, not lost.
    let mut signals = Signals::install(terminal).map_err(Error::Signals)?;
    let config = prepare(&args, &mut signals)?;
    let fetched = match Fetched::fetch(&config, &mut signals).await {
        Ok(fetched) => fetched,
        Err(sig) => return Ok(Exit::Interrupted(sig)),
    };
    let started = match start(&args, &config, &fetched, terminal) {
        Ok(started) => started,
        Err(error) => return Err(fetched.give_back(error).await),
    };
    supervise_until_done(&args, config, fetched, started, &mut signals, terminal).await
}

/// The configuration, with the recheck signal claimed from the forwarded ones; refuses to go on
/// while any variable is invalid.
fn prepare(args: &RunArgs, signals: &mut Signals) -> Result<Config, Error> {
    let config = super::load_config(&args.flags(), Purpose::Run)?;
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
    Ok(config)
}

/// The connected backends and what they resolved, owned together until the command starts.
struct Fetched {
    backends: Backends,
    resolution: Resolution,
}

impl Fetched {
    /// Connects and resolves; the signal when a TERM or INT cut that short (the command is then
    /// not started, and a login already made is revoked).
    async fn fetch(config: &Config, signals: &mut Signals) -> Result<Fetched, Signal> {
        let backends = match Backends::connect_unless(config, signals.recv_terminating()).await {
            Ok(backends) => backends,
            Err(sig) => {
                tracing::warn!(signal = %sig, "interrupted while connecting; the command was not started");
                return Err(sig);
            }
        };
        let resolution = tokio::select! {
            resolution = resolve(config, &backends) => resolution,
            sig = signals.recv_terminating() => {
                tracing::warn!(signal = %sig, "interrupted while resolving; the command was not started");
                // The leases of a resolution cut short are not known; revoking the login revokes
                // them with it.
                backends.logout().await;
                return Err(sig);
            }
        };
        Ok(Fetched {
            backends,
            resolution,
        })
    }

    /// When the command will not run after all: the dynamic credentials fetched for it and
    /// envoke's own login are revoked, then `error` is what envoke reports.
    async fn give_back(self, error: Error) -> Error {
        self.backends.revoke_all(&self.resolution.leases()).await;
        self.backends.logout().await;
        error
    }
}

/// What the start leaves for supervision.
struct Started {
    /// The first child.
    target: Target,
    /// The secret files, removed when the last holder drops them.
    files: Option<Arc<SecretFiles>>,
    /// The filter the child's output passes through (`--mask`).
    mask: Option<Arc<OutputMask>>,
}

/// Writes the secret files, builds the child's environment and starts the command; with
/// `--exec`, returns only when the exec failed.
fn start(
    args: &RunArgs,
    config: &Config,
    fetched: &Fetched,
    terminal: Terminal,
) -> Result<Started, Error> {
    let Fetched {
        backends,
        resolution,
    } = fetched;
    let failures = resolution.failures();
    if !failures.is_empty() {
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
    let environment =
        ChildEnvironment::build(config, resolution, files.as_deref()).map_err(Error::from)?;
    if args.exec {
        // The command keeps envoke's PID.
        let pid = std::process::id();
        resolution.audit(backends, "start", Some(pid));
        announce(args, pid, resolution, backends);
        return Err(launch::exec(&args.command, &environment).into());
    }
    let mask = config.mask.then(|| Arc::new(OutputMask::default()));
    let target = launch::spawn(&args.command, &environment, terminal, mask.as_deref())?;
    let pid = target.pid().as_raw().unsigned_abs();
    resolution.audit(backends, "start", Some(pid));
    announce(args, pid, resolution, backends);
    // The values are in the child's environment now; envoke's copies are zeroized here, before
    // supervision that may last for months.
    drop(environment);
    Ok(Started {
        target,
        files,
        mask,
    })
}

/// The one line a person at a terminal sees for a launch ([`crate::logging::SUMMARY`]): `started node
/// (pid 4242) with 7 secrets: 3 from AWS us-east-1, 4 from Vault`.
fn announce(args: &RunArgs, pid: u32, resolution: &Resolution, backends: &Backends) {
    let command = args
        .command
        .first()
        .map(|word| escaped(&word.to_string_lossy()))
        .unwrap_or_default();
    tracing::info!(
        target: "envoke::summary",
        "started {command} (pid {pid}) with {}",
        resolution.summary(backends)
    );
}

/// Watches, keeps the login alive and supervises until the command is done; then revokes what
/// envoke holds and removes the secret files.
async fn supervise_until_done(
    args: &RunArgs,
    config: Config,
    fetched: Fetched,
    started: Started,
    signals: &mut Signals,
    terminal: Terminal,
) -> Result<Exit, Error> {
    let Started {
        target,
        files,
        mask,
    } = started;
    let (control, mut controls) = mpsc::unbounded_channel();
    let recheck = Arc::new(Notify::new());
    let supervisor = SupervisorHandle {
        control,
        pid: target.pid(),
        recheck: Arc::clone(&recheck),
    };
    let supervision = Supervision::begin(config, fetched, files, mask, supervisor);
    let respawn = |environment: &ChildEnvironment| {
        launch::spawn(
            &args.command,
            environment,
            terminal,
            supervision.mask.as_deref(),
        )
    };
    let finish = supervise(
        target,
        signals,
        &supervision.config.stop,
        &mut controls,
        &recheck,
        &respawn,
    )
    .await;
    supervision.end().await;
    Ok(Exit::Supervised(finish?))
}

/// What runs beside the supervised command, and what is given back when it is done.
struct Supervision {
    config: Arc<Config>,
    backends: Arc<Backends>,
    /// The leases of the command's credentials, as the watcher replaces them.
    leases: LeaseLedger,
    watcher: Option<JoinHandle<()>>,
    /// Keeps envoke's own login alive.
    login: JoinHandle<()>,
    mask: Option<Arc<OutputMask>>,
    files: Option<Arc<SecretFiles>>,
}

impl Supervision {
    /// Starts the watcher (when watching) and the login's renewal; the resolved values are
    /// zeroized here, before supervision that may last for months.
    fn begin(
        config: Config,
        fetched: Fetched,
        files: Option<Arc<SecretFiles>>,
        mask: Option<Arc<OutputMask>>,
        supervisor: SupervisorHandle,
    ) -> Supervision {
        let Fetched {
            backends,
            resolution,
        } = fetched;
        let config = Arc::new(config);
        let backends = Arc::new(backends);
        let leases = LeaseLedger::new(resolution.leases());
        let watcher = Watcher::start(
            watch::Context {
                config: Arc::clone(&config),
                backends: Arc::clone(&backends),
                files: files.clone(),
                mask: mask.clone(),
                leases: leases.clone(),
            },
            &resolution,
            supervisor,
        );
        // The watcher kept versions and hashes; the values themselves go now.
        drop(resolution);
        platform::release_free_memory();
        let login = tokio::spawn({
            let backends = Arc::clone(&backends);
            async move { backends.keep_login_alive().await }
        });
        Supervision {
            config,
            backends,
            leases,
            watcher,
            login,
            mask,
            files,
        }
    }

    /// Once the command is done: stops watching, lets the last output through the mask,
    /// revokes the leases and the login (unless `--no-revoke`), and removes the secret files.
    async fn end(self) {
        if let Some(watcher) = self.watcher {
            watcher.abort();
        }
        if let Some(mask) = &self.mask {
            // Every child was reaped: the last of their output is in the pipes.
            mask.finish().await;
        }
        self.login.abort();
        if self.config.revoke {
            self.backends.revoke_all(&self.leases.all()).await;
            self.backends.logout().await;
        }
        // Zeroes and removes the secret files, on every way out but SIGKILL.
        drop(self.files);
    }
}
