//! Supervision: forward signals to the child, reap, stop gracefully, report the exit status.
//!
//! # Who reaps
//! This module is the one owner of `waitpid` once the child runs. It reaps with
//! `waitpid(-1, WNOHANG)` in a loop on every SIGCHLD (and once before each wait, so nothing that
//! exited before the handler ran is missed), which collects the main child and every orphan the
//! kernel re-parents to envoke — as PID 1, or as a child subreaper (`PR_SET_CHILD_SUBREAPER`,
//! set in [`crate::launch::become_subreaper`]). The child is started with `std::process` and its
//! `Child` handle is never waited on; envoke's own code does not use `tokio::process`, because a
//! `waitpid(-1)` reaper and tokio's own reaping steal each other's statuses (tokio #6152).
//! The AWS SDK does use it, for a profile's `credential_process`: tokio waits for that helper
//! on a pidfd, and in this single-threaded runtime it has collected the helper before this
//! reaper looks (the test `credentials_from_credential_process_keep_working_while_the_child_is_
//! supervised` runs the helper on every poll while the command leaves an orphan every 50 ms).
//!
//! # Stopping
//! A TERM or INT from outside is forwarded (through `--signal-map`) and starts the stop clock;
//! when the clock runs out with the child alive, its group gets SIGKILL. A second TERM is
//! forwarded once more and does not escalate by itself. When the main child exits, what is left
//! of its process group gets the stop signal, then SIGKILL after the stop timeout.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::signals::{SignalMap, Signals, TERMINAL_DELIVERED};
use super::{ChildEnvironment, LaunchError};

/// How envoke stops its child.
#[derive(Debug, Clone)]
pub struct StopPolicy {
    /// What envoke sends when it decides to stop the child itself.
    pub stop_signal: Signal,
    /// How long a stopping child may take before SIGKILL.
    pub stop_timeout: Duration,
    /// `--signal-map`: what a signal from outside becomes.
    pub signal_map: SignalMap,
}

impl Default for StopPolicy {
    fn default() -> StopPolicy {
        StopPolicy {
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            signal_map: SignalMap::new(),
        }
    }
}

/// Who receives forwarded signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The child leads its own process group (stdin is not a terminal): signal the group.
    Group(Pid),
    /// The child shares envoke's terminal and foreground group: signal the child only, and
    /// leave what the terminal delivers by itself to the terminal.
    Foreground(Pid),
}

impl Target {
    fn pid(self) -> Pid {
        match self {
            Target::Group(pid) | Target::Foreground(pid) => pid,
        }
    }

    /// Sends `sig`; a target that is already gone is not an error.
    fn send(self, sig: Signal) {
        let result = match self {
            // Never killpg a group id <= 1: that would be every process we may signal.
            Target::Group(pgid) if pgid.as_raw() > 1 => killpg(pgid, sig),
            Target::Group(_) => return,
            Target::Foreground(pid) => kill(pid, sig),
        };
        if let Err(error) = result
            && error != Errno::ESRCH
        {
            tracing::warn!(signal = %sig, %error, "cannot signal the child");
        }
    }

    /// Whether any process of the target is left.
    fn alive(self) -> bool {
        let result = match self {
            Target::Group(pgid) if pgid.as_raw() > 1 => killpg(pgid, None),
            Target::Group(_) => return false,
            Target::Foreground(pid) => kill(pid, None),
        };
        result != Err(Errno::ESRCH)
    }
}

/// How the main child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with a code.
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

impl ChildExit {
    /// The exit code envoke passes on: the child's, or 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            ChildExit::Code(code) => (code & 0xff) as u8,
            ChildExit::Signal(sig) => (128 + sig as i32) as u8,
        }
    }
}

/// Reaps every exited child; returns the main child's exit when it is among them.
fn reap(main: Pid) -> Option<ChildExit> {
    let mut main_exit = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                tracing::debug!(%pid, code, "reaped");
                if pid == main {
                    main_exit = Some(ChildExit::Code(code));
                }
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                tracing::debug!(%pid, signal = %sig, "reaped");
                if pid == main {
                    main_exit = Some(ChildExit::Signal(sig));
                }
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return main_exit,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(error) => {
                tracing::warn!(%error, "waitpid failed");
                return main_exit;
            }
        }
    }
}

/// What the watcher asks the supervisor to do.
pub enum Control {
    /// Stop the child gracefully and start the command again with this environment; `started`
    /// is answered once the new child runs (or could not start).
    Restart {
        /// The freshly resolved environment.
        environment: ChildEnvironment,
        /// Answered after the restart.
        started: oneshot::Sender<()>,
    },
    /// Send this signal to the child.
    Signal(Signal),
    /// Stop the child gracefully and exit envoke with this code.
    Exit(u8),
}

/// How supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The child exited by itself or after a forwarded signal.
    Child(ChildExit),
    /// envoke decided to exit with this code (`--on-change exit`).
    Envoke(u8),
}

impl Finish {
    /// envoke's exit code.
    pub fn code(self) -> u8 {
        match self {
            Finish::Child(exit) => exit.code(),
            Finish::Envoke(code) => code,
        }
    }
}

/// Starts the command again (for a restart).
pub type Respawn<'a> = &'a dyn Fn(&ChildEnvironment) -> Result<Target, LaunchError>;

/// Supervises the running child until it exits (or a [`Control::Exit`]); returns how it ended.
pub async fn supervise(
    mut target: Target,
    signals: &mut Signals,
    policy: &StopPolicy,
    control: &mut mpsc::UnboundedReceiver<Control>,
    respawn: Respawn<'_>,
) -> Result<Finish, LaunchError> {
    let mut kill_at: Option<Instant> = None;
    let mut control_open = true;
    let exit = loop {
        if let Some(exit) = reap(target.pid()) {
            break exit;
        }
        let deadline = kill_at.unwrap_or_else(far_future);
        tokio::select! {
            sig = signals.recv() => {
                if sig == Signal::SIGCHLD {
                    continue;
                }
                forward(target, sig, policy, &mut kill_at);
            }
            () = tokio::time::sleep_until(deadline), if kill_at.is_some() => {
                tracing::warn!(timeout = ?policy.stop_timeout, "the child did not stop in time; sending SIGKILL");
                target.send(Signal::SIGKILL);
                kill_at = None;
            }
            message = control.recv(), if control_open => match message {
                None => control_open = false,
                Some(Control::Signal(sig)) => {
                    tracing::info!(signal = %sig, "signalling the child after a change");
                    target.send(sig);
                }
                Some(Control::Exit(code)) => {
                    tracing::info!(code, "stopping the child and exiting after a change");
                    stop_child(target, signals, policy).await;
                    return Ok(Finish::Envoke(code));
                }
                Some(Control::Restart { environment, started }) => {
                    tracing::info!("restarting the child after a change");
                    let (exit, interrupted) = stop_child(target, signals, policy).await;
                    if interrupted {
                        break exit;
                    }
                    target = respawn(&environment)?;
                    drop(environment);
                    tracing::info!(pid = %target.pid(), "started the command again");
                    let _ = started.send(());
                }
            },
        }
    };
    tracing::debug!(?exit, "the child exited");
    if let Target::Group(_) = target {
        stop_leftovers(target, signals, policy).await;
    }
    Ok(Finish::Child(exit))
}

/// Stops the child with the stop signal (SIGKILL after the stop timeout), then what is left of
/// its group. Signals from outside meanwhile are forwarded; a TERM or INT among them means envoke
/// itself is being stopped (`true`).
async fn stop_child(
    target: Target,
    signals: &mut Signals,
    policy: &StopPolicy,
) -> (ChildExit, bool) {
    let mut interrupted = false;
    target.send(policy.stop_signal);
    let deadline = Instant::now() + policy.stop_timeout;
    let mut killed = false;
    let exit = loop {
        if let Some(exit) = reap(target.pid()) {
            break exit;
        }
        tokio::select! {
            sig = signals.recv() => {
                if sig == Signal::SIGCHLD {
                    continue;
                }
                let mut ignored = None;
                forward(target, sig, policy, &mut ignored);
                interrupted |= matches!(sig, Signal::SIGTERM | Signal::SIGINT);
            }
            () = tokio::time::sleep_until(deadline), if !killed => {
                tracing::warn!(timeout = ?policy.stop_timeout, "the child did not stop in time; sending SIGKILL");
                target.send(Signal::SIGKILL);
                killed = true;
            }
        }
    };
    if let Target::Group(_) = target {
        stop_leftovers(target, signals, policy).await;
    }
    (exit, interrupted)
}

fn forward(target: Target, sig: Signal, policy: &StopPolicy, kill_at: &mut Option<Instant>) {
    let terminal = matches!(target, Target::Foreground(_));
    if terminal && TERMINAL_DELIVERED.contains(&sig) {
        tracing::debug!(signal = %sig, "the terminal delivered it to the child already");
        return;
    }
    let mapped = policy.signal_map.get(&sig).copied().unwrap_or(sig);
    tracing::info!(signal = %sig, forwarded_as = %mapped, "forwarding signal");
    target.send(mapped);
    if matches!(sig, Signal::SIGTERM | Signal::SIGINT) && kill_at.is_none() {
        *kill_at = Some(Instant::now() + policy.stop_timeout);
    }
}

/// After the main child exited: stop signal to what is left of its group, SIGKILL on timeout.
async fn stop_leftovers(target: Target, signals: &mut Signals, policy: &StopPolicy) {
    let main = target.pid();
    reap(main);
    if !target.alive() {
        return;
    }
    tracing::info!(signal = %policy.stop_signal, "stopping what is left of the child's process group");
    target.send(policy.stop_signal);
    let deadline = Instant::now() + policy.stop_timeout;
    // Group members that are not our children send no SIGCHLD, so check on a short tick too;
    // this runs only during shutdown and for at most the stop timeout.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        reap(main);
        if !target.alive() {
            return;
        }
        tokio::select! {
            _ = signals.recv() => {}
            _ = tick.tick() => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(timeout = ?policy.stop_timeout, "leftovers did not stop in time; sending SIGKILL");
                target.send(Signal::SIGKILL);
                break;
            }
        }
    }
    // SIGKILL is delivered asynchronously: reap what it killed before envoke exits, so no zombie
    // is left to whoever inherits it.
    let give_up = Instant::now() + Duration::from_secs(2);
    while target.alive() && Instant::now() < give_up {
        reap(main);
        tick.tick().await;
    }
    reap(main);
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
