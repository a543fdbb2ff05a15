//! Supervision: one loop drives the child through its life — forward signals, reap, stop
//! gracefully, restart on request — and reports how it ended.
//!
//! # The state machine
//! The child is always in one [`Phase`], and one `select!` loop moves it on. Signals arrive
//! already classified ([`SignalEvent`]); the watcher's requests arrive as [`Control`] messages.
//!
//! ```text
//!            Stop(sig) from outside: forward it ──────┐
//!            Control::Exit / Control::Restart:        │
//!            send the stop signal ────────────────────┤
//!                                                     ▼
//!   Running ──────── main child exits ───────► Stopping { kill_at, then }
//!      ▲                    │                         │ main child exits
//!      │                    ▼                         ▼
//!      │              Clearing { exit, kill_at, then }: what is left of the child's process
//!      │              group got the stop signal; SIGKILL at kill_at, then wait at most 2 s
//!      │                    │ the group is empty
//!      │                    ▼
//!      └── then = Restart ─ Ended { exit, then } ── then = PassExit: Finish::Child(exit)
//!          (start again)                         └─ then = Exit: Finish::Changed
//! ```
//!
//! - `Running`: signals are forwarded (through `--signal-map`); TERM (and INT without a terminal)
//!   also starts the stop clock: the child has the stop timeout to exit before its target gets
//!   SIGKILL. Control messages are obeyed only here.
//! - `Stopping`: the child was told to stop. Signals are still forwarded; a TERM or INT means
//!   envoke itself is being stopped, so a pending restart becomes a plain exit. The SIGKILL
//!   deadline is `kill_at`, and it is written only here and in `Clearing`.
//! - `Clearing`: the main child is gone; signals are no longer forwarded. Group members that are
//!   not envoke's children send no SIGCHLD, so this phase also wakes on a 20 ms tick; it lasts
//!   at most the stop timeout plus 2 s.
//!
//! # Who reaps
//! This module is the one owner of `waitpid` once the child runs. It reaps with
//! `waitpid(-1, WNOHANG)` in a loop on every wake-up (a SIGCHLD, and once before each wait, so
//! nothing that exited before the handler ran is missed), which collects the main child and every
//! orphan the kernel re-parents to envoke — as PID 1, or as a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`, set in [`crate::launch::become_subreaper`]). The child is started
//! with `std::process` and its `Child` handle is never waited on; envoke's own code does not use
//! `tokio::process`, because a `waitpid(-1)` reaper and tokio's own reaping steal each other's
//! statuses (tokio #6152). The AWS SDK does use it, for a profile's `credential_process`: tokio
//! waits for that helper on a pidfd, and in this single-threaded runtime it has collected the
//! helper before this reaper looks (the test `credentials_from_credential_process_keep_working_
//! while_the_child_is_supervised` runs the helper on every poll while the command leaves an
//! orphan every 50 ms).

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::signals::{SignalEvent, Signals};
use super::{ChildEnvironment, LaunchError};
use crate::config::process::StopPolicy;
use crate::config::watch::MAX_DURATION;

/// How long envoke waits for SIGKILLed leftovers to be reaped before it gives up on them.
const REAP_KILLED_FOR: Duration = Duration::from_secs(2);
/// How often `Clearing` looks for leftovers that send no SIGCHLD.
const CLEARING_TICK: Duration = Duration::from_millis(20);

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
    pub fn pid(self) -> Pid {
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

    /// Whether any process of the child's group is left once the main child was reaped. A
    /// foreground child has no group of its own, so nothing is left.
    fn leftovers(self) -> bool {
        match self {
            Target::Group(pgid) if pgid.as_raw() > 1 => killpg(pgid, None) != Err(Errno::ESRCH),
            Target::Group(_) | Target::Foreground(_) => false,
        }
    }
}

/// How the main child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

/// What the watcher asks the supervisor to do.
pub enum Control {
    /// Stop the child gracefully and start the command again with this environment; `started`
    /// is answered with the new child's PID once it runs.
    Restart {
        environment: ChildEnvironment,
        started: oneshot::Sender<Pid>,
    },
    /// Send this signal to the child.
    Signal(Signal),
    /// Stop the child gracefully, then exit envoke (`--on-change exit`).
    Exit,
}

/// How supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The child exited by itself or after a forwarded signal.
    Child(ChildExit),
    /// envoke stopped the child because a secret changed (`--on-change exit`).
    Changed,
}

/// Starts the command again (for a restart).
pub type Respawn<'a> = &'a dyn Fn(&ChildEnvironment) -> Result<Target, LaunchError>;

/// What happens once the child and its group are gone.
enum Then {
    /// envoke exits with the child's status.
    PassExit,
    /// envoke exits because a secret changed.
    Exit,
    /// The command starts again with this environment.
    Restart {
        environment: ChildEnvironment,
        started: oneshot::Sender<Pid>,
    },
}

/// Where the child is in its life (see the module doc).
enum Phase {
    Running,
    Stopping {
        kill_at: Option<Instant>,
        then: Then,
    },
    Clearing {
        exit: ChildExit,
        kill_at: Option<Instant>,
        give_up_at: Option<Instant>,
        then: Then,
    },
    Ended {
        exit: ChildExit,
        then: Then,
    },
}

impl Phase {
    /// When the phase's clock runs out, if it has one.
    fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::Stopping { kill_at, .. } => *kill_at,
            Phase::Clearing {
                kill_at,
                give_up_at,
                ..
            } => kill_at.or(*give_up_at),
            Phase::Running | Phase::Ended { .. } => None,
        }
    }
}

/// Supervises the running child until it exits (or a [`Control::Exit`]); returns how it ended.
/// A recheck signal wakes the watcher through `recheck` (a [`Notify`] keeps at most one wake-up,
/// so rechecks that arrive during a check coalesce into one more).
pub async fn supervise(
    target: Target,
    signals: &mut Signals,
    policy: &StopPolicy,
    control: &mut mpsc::UnboundedReceiver<Control>,
    recheck: &Notify,
    respawn: Respawn<'_>,
) -> Result<Finish, LaunchError> {
    Supervisor {
        target,
        policy,
        recheck,
        control_open: true,
    }
    .run(signals, control, respawn)
    .await
}

struct Supervisor<'a> {
    target: Target,
    policy: &'a StopPolicy,
    recheck: &'a Notify,
    /// The watcher may have gone (or never existed); then its channel is closed.
    control_open: bool,
}

impl Supervisor<'_> {
    async fn run(
        mut self,
        signals: &mut Signals,
        control: &mut mpsc::UnboundedReceiver<Control>,
        respawn: Respawn<'_>,
    ) -> Result<Finish, LaunchError> {
        let mut phase = Phase::Running;
        loop {
            phase = self.reap(phase);
            if let Phase::Ended { exit, then } = phase {
                match then {
                    Then::PassExit => return Ok(Finish::Child(exit)),
                    Then::Exit => return Ok(Finish::Changed),
                    Then::Restart {
                        environment,
                        started,
                    } => {
                        self.target = respawn(&environment)?;
                        // The values are in the new child's environment now; free ours.
                        drop(environment);
                        tracing::info!(
                            pid = self.target.pid().as_raw(),
                            "started the command again"
                        );
                        let _ = started.send(self.target.pid());
                        phase = Phase::Running;
                        continue;
                    }
                }
            }
            let deadline = phase.deadline();
            let running = matches!(phase, Phase::Running);
            let clearing = matches!(phase, Phase::Clearing { .. });
            phase = tokio::select! {
                event = signals.recv() => self.on_signal(phase, event),
                () = sleep_until(deadline), if deadline.is_some() => self.on_deadline(phase),
                () = tokio::time::sleep(CLEARING_TICK), if clearing => phase,
                message = control.recv(), if running && self.control_open => self.on_control(message),
            };
        }
    }

    /// Reaps every exited child; moves on when the main child or its group is gone.
    fn reap(&self, phase: Phase) -> Phase {
        let main_exit = reap(self.target.pid());
        match (phase, main_exit) {
            (Phase::Running, Some(exit)) => self.child_exited(exit, Then::PassExit),
            (Phase::Stopping { then, .. }, Some(exit)) => self.child_exited(exit, then),
            (Phase::Clearing { exit, then, .. }, _) if !self.target.leftovers() => {
                Phase::Ended { exit, then }
            }
            (phase, _) => phase,
        }
    }

    fn child_exited(&self, exit: ChildExit, then: Then) -> Phase {
        tracing::debug!(?exit, "the child exited");
        if !self.target.leftovers() {
            return Phase::Ended { exit, then };
        }
        tracing::info!(signal = %self.policy.stop_signal, "stopping what is left of the child's process group");
        self.target.send(self.policy.stop_signal);
        Phase::Clearing {
            exit,
            kill_at: Some(after(self.policy.stop_timeout)),
            give_up_at: None,
            then,
        }
    }

    fn on_signal(&self, phase: Phase, event: SignalEvent) -> Phase {
        match (phase, event) {
            (phase, SignalEvent::ChildExited) => phase,
            (phase, SignalEvent::Recheck(sig)) => {
                tracing::info!(signal = %sig, "recheck signal: checking every watched secret");
                self.recheck.notify_one();
                phase
            }
            // The main child is gone: nothing to forward to; the clock runs on.
            (phase @ (Phase::Clearing { .. } | Phase::Ended { .. }), _) => phase,
            (Phase::Running, SignalEvent::Stop(sig)) => {
                self.forward(sig);
                Phase::Stopping {
                    kill_at: Some(after(self.policy.stop_timeout)),
                    then: Then::PassExit,
                }
            }
            (Phase::Stopping { kill_at, then }, SignalEvent::Stop(sig)) => {
                self.forward(sig);
                Phase::Stopping {
                    kill_at,
                    then: interrupted(then),
                }
            }
            (phase, SignalEvent::Forward(sig)) => {
                self.forward(sig);
                phase
            }
            (phase, SignalEvent::Delivered(sig)) => {
                tracing::debug!(signal = %sig, "the terminal delivered it to the child already");
                match phase {
                    Phase::Stopping { kill_at, then } if sig == Signal::SIGINT => Phase::Stopping {
                        kill_at,
                        then: interrupted(then),
                    },
                    phase => phase,
                }
            }
        }
    }

    fn on_deadline(&self, phase: Phase) -> Phase {
        match phase {
            Phase::Stopping { then, .. } => {
                tracing::warn!(timeout = ?self.policy.stop_timeout, "the child did not stop in time; sending SIGKILL");
                self.target.send(Signal::SIGKILL);
                Phase::Stopping {
                    kill_at: None,
                    then,
                }
            }
            Phase::Clearing {
                exit,
                kill_at: Some(_),
                then,
                ..
            } => {
                tracing::warn!(timeout = ?self.policy.stop_timeout, "leftovers did not stop in time; sending SIGKILL");
                self.target.send(Signal::SIGKILL);
                // SIGKILL is delivered asynchronously: reap what it killed before envoke exits,
                // so no zombie is left to whoever inherits it.
                Phase::Clearing {
                    exit,
                    kill_at: None,
                    give_up_at: Some(Instant::now() + REAP_KILLED_FOR),
                    then,
                }
            }
            Phase::Clearing { exit, then, .. } => Phase::Ended { exit, then },
            phase @ (Phase::Running | Phase::Ended { .. }) => phase,
        }
    }

    /// A message from the watcher, read only while the child runs.
    fn on_control(&mut self, message: Option<Control>) -> Phase {
        let then = match message {
            None => {
                self.control_open = false;
                return Phase::Running;
            }
            Some(Control::Signal(sig)) => {
                tracing::info!(signal = %sig, "signalling the child after a change");
                self.target.send(sig);
                return Phase::Running;
            }
            Some(Control::Exit) => {
                tracing::info!("stopping the child and exiting after a change");
                Then::Exit
            }
            Some(Control::Restart {
                environment,
                started,
            }) => {
                tracing::info!("restarting the child after a change");
                Then::Restart {
                    environment,
                    started,
                }
            }
        };
        self.target.send(self.policy.stop_signal);
        Phase::Stopping {
            kill_at: Some(after(self.policy.stop_timeout)),
            then,
        }
    }

    fn forward(&self, sig: Signal) {
        let mapped = self.policy.signal_map.get(&sig).copied().unwrap_or(sig);
        tracing::info!(signal = %sig, forwarded_as = %mapped, "forwarding signal");
        self.target.send(mapped);
    }
}

/// `timeout` from now; a timeout too long to add (`--stop-timeout 300000000000y`) is the longest
/// duration envoke takes elsewhere, a year, not a panic.
fn after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now + MAX_DURATION)
}

/// envoke itself is being stopped while its child stops: no restart follows.
fn interrupted(then: Then) -> Then {
    match then {
        Then::Restart { .. } => Then::PassExit,
        then => then,
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
            Ok(_) | Err(Errno::EINTR) => {}
            Err(error) => {
                tracing::warn!(%error, "waitpid failed");
                return main_exit;
            }
        }
    }
}

/// Sleeps until `deadline`; forever without one (the `select!` arm is disabled then anyway).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
