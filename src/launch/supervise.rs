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
//!
//! # The seams
//! The loop sees the child only through [`ChildGroup`] (signal it, reap, ask whether any of its
//! group is left) and its signals only through [`Events`]. The real ones are [`Target`], whose
//! `reap` is the `waitpid(-1)` loop above, and [`Signals`]; the unit tests swap in a fake group
//! and a channel of events, and drive the phases on tokio's paused clock.

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
    /// The child's PID (in the group case, also the group's id).
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

/// The child's process group, as the supervisor drives it.
trait ChildGroup {
    /// The main child.
    fn pid(&self) -> Pid;
    /// Sends `sig` to whom forwarded signals go; one already gone is not an error.
    fn send(&self, sig: Signal);
    /// Whether any process of the group is left once the main child was reaped.
    fn leftovers(&self) -> bool;
    /// Reaps every exited child; the main child's exit when it is among them.
    fn reap(&self) -> Option<ChildExit>;
}

impl ChildGroup for Target {
    fn pid(&self) -> Pid {
        Target::pid(*self)
    }

    fn send(&self, sig: Signal) {
        Target::send(*self, sig);
    }

    fn leftovers(&self) -> bool {
        Target::leftovers(*self)
    }

    fn reap(&self) -> Option<ChildExit> {
        reap(Target::pid(*self))
    }
}

/// Where the supervisor's signal events come from.
trait Events {
    async fn next(&mut self) -> SignalEvent;
}

impl Events for Signals {
    async fn next(&mut self) -> SignalEvent {
        self.recv().await
    }
}

/// How the main child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

/// What the watcher asks the supervisor to do.
pub enum Control {
    /// Stop the child gracefully and start the command again with this environment; `started`
    /// is answered with the new child's PID once it runs.
    Restart {
        /// The new child's environment, values resolved afresh.
        environment: ChildEnvironment,
        /// Told the new child's PID once it runs (dropped when envoke is stopping instead).
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
        group: target,
        policy,
        recheck,
        control_open: true,
    }
    .run(signals, control, respawn)
    .await
}

struct Supervisor<'a, G> {
    /// The running child (the last one started).
    group: G,
    policy: &'a StopPolicy,
    recheck: &'a Notify,
    /// The watcher may have gone (or never existed); then its channel is closed.
    control_open: bool,
}

impl<G: ChildGroup> Supervisor<'_, G> {
    async fn run(
        mut self,
        signals: &mut impl Events,
        control: &mut mpsc::UnboundedReceiver<Control>,
        respawn: &dyn Fn(&ChildEnvironment) -> Result<G, LaunchError>,
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
                        self.restart(environment, started, respawn)?;
                        phase = Phase::Running;
                        continue;
                    }
                }
            }
            let deadline = phase.deadline();
            let running = matches!(phase, Phase::Running);
            let clearing = matches!(phase, Phase::Clearing { .. });
            phase = tokio::select! {
                event = signals.next() => self.on_signal(phase, event),
                () = sleep_until(deadline), if deadline.is_some() => self.on_deadline(phase),
                () = tokio::time::sleep(CLEARING_TICK), if clearing => phase,
                message = control.recv(), if running && self.control_open => self.on_control(message),
            };
        }
    }

    /// Starts the command again, once the old child and its group are gone.
    fn restart(
        &mut self,
        environment: ChildEnvironment,
        started: oneshot::Sender<Pid>,
        respawn: &dyn Fn(&ChildEnvironment) -> Result<G, LaunchError>,
    ) -> Result<(), LaunchError> {
        self.group = respawn(&environment)?;
        // The values are in the new child's environment now; free ours.
        drop(environment);
        let pid = self.group.pid();
        tracing::info!(pid = pid.as_raw(), "started the command again");
        let _ = started.send(pid);
        Ok(())
    }

    /// Reaps every exited child; moves on when the main child or its group is gone.
    fn reap(&self, phase: Phase) -> Phase {
        let main_exit = self.group.reap();
        match (phase, main_exit) {
            (Phase::Running, Some(exit)) => self.child_exited(exit, Then::PassExit),
            (Phase::Stopping { then, .. }, Some(exit)) => self.child_exited(exit, then),
            (Phase::Clearing { exit, then, .. }, _) if !self.group.leftovers() => {
                Phase::Ended { exit, then }
            }
            (phase, _) => phase,
        }
    }

    fn child_exited(&self, exit: ChildExit, then: Then) -> Phase {
        tracing::debug!(?exit, "the child exited");
        if !self.group.leftovers() {
            return Phase::Ended { exit, then };
        }
        tracing::info!(signal = %self.policy.stop_signal, "stopping what is left of the child's process group");
        self.group.send(self.policy.stop_signal);
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
                self.group.send(Signal::SIGKILL);
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
                self.group.send(Signal::SIGKILL);
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
                self.group.send(sig);
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
        self.group.send(self.policy.stop_signal);
        Phase::Stopping {
            kill_at: Some(after(self.policy.stop_timeout)),
            then,
        }
    }

    fn forward(&self, sig: Signal) {
        let mapped = self.policy.signal_map.get(&sig).copied().unwrap_or(sig);
        tracing::info!(signal = %sig, forwarded_as = %mapped, "forwarding signal");
        self.group.send(mapped);
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::rc::Rc;

    use Signal::{SIGHUP, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1};

    use super::*;

    /// The fake processes: what was done to them, in order, on the paused clock.
    struct World {
        began: Instant,
        log: Vec<String>,
        /// Main children still running.
        alive: BTreeSet<i32>,
        /// Main children that exited and were not reaped yet.
        exited: BTreeMap<i32, ChildExit>,
        /// Groups with processes left besides their main child.
        leftovers: BTreeSet<i32>,
        /// The signals that end a main child (SIGKILL always does); leftovers die of SIGKILL only.
        dies_of: Vec<Signal>,
        /// Where SIGCHLD goes.
        sigchld: mpsc::UnboundedSender<SignalEvent>,
        next_pid: i32,
    }

    type Shared = Rc<RefCell<World>>;

    impl World {
        fn note(&mut self, what: String) {
            let at = self.began.elapsed().as_millis();
            self.log.push(format!("{at}ms {what}"));
        }

        fn spawn(world: &Shared) -> FakeGroup {
            let mut w = world.borrow_mut();
            w.next_pid += 1;
            let pid = w.next_pid;
            w.alive.insert(pid);
            w.note(format!("started {pid}"));
            FakeGroup {
                pid: Pid::from_raw(pid),
                world: Rc::clone(world),
            }
        }

        /// The main child `pid` ends with `exit`; the kernel sends SIGCHLD.
        fn end(&mut self, pid: i32, exit: ChildExit) {
            if self.alive.remove(&pid) {
                self.exited.insert(pid, exit);
                let _ = self.sigchld.send(SignalEvent::ChildExited);
            }
        }
    }

    struct FakeGroup {
        pid: Pid,
        world: Shared,
    }

    impl ChildGroup for FakeGroup {
        fn pid(&self) -> Pid {
            self.pid
        }

        fn send(&self, sig: Signal) {
            let pid = self.pid.as_raw();
            let mut w = self.world.borrow_mut();
            w.note(format!("{sig} to {pid}"));
            if sig == SIGKILL || w.dies_of.contains(&sig) {
                w.end(pid, ChildExit::Signal(sig));
            }
            if sig == SIGKILL {
                w.leftovers.remove(&pid);
            }
        }

        fn leftovers(&self) -> bool {
            self.world.borrow().leftovers.contains(&self.pid.as_raw())
        }

        fn reap(&self) -> Option<ChildExit> {
            let mut w = self.world.borrow_mut();
            let exit = w.exited.remove(&self.pid.as_raw())?;
            w.note(format!("reaped {}", self.pid));
            Some(exit)
        }
    }

    impl Events for mpsc::UnboundedReceiver<SignalEvent> {
        async fn next(&mut self) -> SignalEvent {
            match self.recv().await {
                Some(event) => event,
                None => std::future::pending().await,
            }
        }
    }

    /// What a test drives: signals from outside, the watcher's messages, the fake processes.
    struct Outside {
        signals: mpsc::UnboundedSender<SignalEvent>,
        control: mpsc::UnboundedSender<Control>,
        world: Shared,
    }

    /// Supervises a first fake child (pid 1) whose main process dies of `dies_of`, while
    /// `drive` acts from outside; returns how supervision ended and what happened.
    async fn supervise_fake<F: Future<Output = ()>>(
        policy: StopPolicy,
        dies_of: &[Signal],
        leftovers: bool,
        drive: impl FnOnce(Outside) -> F,
    ) -> (Result<Finish, LaunchError>, Vec<String>) {
        let (signals, mut events) = mpsc::unbounded_channel();
        let (control, mut controls) = mpsc::unbounded_channel();
        let world = Rc::new(RefCell::new(World {
            began: Instant::now(),
            log: Vec::new(),
            alive: BTreeSet::new(),
            exited: BTreeMap::new(),
            leftovers: BTreeSet::new(),
            dies_of: dies_of.to_vec(),
            sigchld: signals.clone(),
            next_pid: 0,
        }));
        let first = World::spawn(&world);
        if leftovers {
            world.borrow_mut().leftovers.insert(1);
        }
        let respawn = |_: &ChildEnvironment| Ok(World::spawn(&world));
        let recheck = Notify::new();
        let supervisor = Supervisor {
            group: first,
            policy: &policy,
            recheck: &recheck,
            control_open: true,
        };
        let outside = Outside {
            signals,
            control,
            world: Rc::clone(&world),
        };
        // On the paused clock, a supervisor that never ends would wait forever: fail instead.
        let (finish, ()) = tokio::time::timeout(Duration::from_secs(24 * 3600), async {
            tokio::join!(
                supervisor.run(&mut events, &mut controls, &respawn),
                drive(outside)
            )
        })
        .await
        .expect("supervision did not end");
        let log = world.borrow().log.clone();
        (finish, log)
    }

    fn no_environment() -> ChildEnvironment {
        ChildEnvironment {
            entries: Vec::new(),
            masked: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_term_from_outside_is_forwarded_once_and_the_childs_end_is_passed_on() {
        let (finish, log) =
            supervise_fake(StopPolicy::default(), &[SIGTERM], false, |o| async move {
                o.signals.send(SignalEvent::Stop(SIGTERM)).unwrap();
            })
            .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Signal(SIGTERM)));
        assert_eq!(log, ["0ms started 1", "0ms SIGTERM to 1", "0ms reaped 1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_exits_by_itself_passes_its_code_on() {
        let (finish, log) = supervise_fake(StopPolicy::default(), &[], false, |o| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            o.world.borrow_mut().end(1, ChildExit::Code(3));
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Code(3)));
        assert_eq!(log, ["0ms started 1", "5000ms reaped 1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_ignores_the_stop_signal_gets_sigkill_when_the_stop_timeout_elapses() {
        let policy = StopPolicy {
            stop_timeout: Duration::from_secs(7),
            ..StopPolicy::default()
        };
        let (finish, log) = supervise_fake(policy, &[], false, |o| async move {
            o.signals.send(SignalEvent::Stop(SIGTERM)).unwrap();
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Signal(SIGKILL)));
        assert_eq!(
            log,
            [
                "0ms started 1",
                "0ms SIGTERM to 1",
                "7000ms SIGKILL to 1",
                "7000ms reaped 1"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leftovers_of_the_group_are_stopped_then_killed_before_the_childs_code_is_passed_on() {
        let (finish, log) = supervise_fake(StopPolicy::default(), &[], true, |o| async move {
            o.world.borrow_mut().end(1, ChildExit::Code(4));
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Code(4)));
        assert_eq!(
            log,
            [
                "0ms started 1",
                "0ms reaped 1",
                "0ms SIGTERM to 1",
                "10000ms SIGKILL to 1"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_stops_the_old_child_and_starts_the_new_one_once_it_is_gone() {
        let policy = StopPolicy {
            stop_signal: SIGQUIT,
            ..StopPolicy::default()
        };
        let (finish, log) = supervise_fake(policy, &[], false, |o| async move {
            let (started, new_pid) = oneshot::channel();
            let environment = no_environment();
            let restart = Control::Restart {
                environment,
                started,
            };
            assert!(o.control.send(restart).is_ok());
            assert_eq!(new_pid.await.unwrap(), Pid::from_raw(2));
            o.world.borrow_mut().end(2, ChildExit::Code(0));
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Code(0)));
        assert_eq!(
            log,
            [
                "0ms started 1",
                "0ms SIGQUIT to 1",
                "10000ms SIGKILL to 1",
                "10000ms reaped 1",
                "10000ms started 2",
                "10000ms reaped 2"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_term_while_a_restart_stops_the_child_makes_it_a_plain_exit() {
        let (finish, log) = supervise_fake(StopPolicy::default(), &[], false, |o| async move {
            let (started, new_pid) = oneshot::channel();
            let environment = no_environment();
            let restart = Control::Restart {
                environment,
                started,
            };
            assert!(o.control.send(restart).is_ok());
            tokio::time::sleep(Duration::from_secs(1)).await;
            o.signals.send(SignalEvent::Stop(SIGTERM)).unwrap();
            assert!(new_pid.await.is_err(), "no new child");
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Signal(SIGKILL)));
        assert_eq!(
            log,
            [
                "0ms started 1",
                "0ms SIGTERM to 1",
                "1000ms SIGTERM to 1",
                "10000ms SIGKILL to 1",
                "10000ms reaped 1"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_exit_after_a_change_stops_the_child_and_finishes_as_changed() {
        let (finish, log) =
            supervise_fake(StopPolicy::default(), &[SIGTERM], false, |o| async move {
                assert!(o.control.send(Control::Exit).is_ok());
            })
            .await;
        assert_eq!(finish.unwrap(), Finish::Changed);
        assert_eq!(log, ["0ms started 1", "0ms SIGTERM to 1", "0ms reaped 1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn signals_are_forwarded_as_the_signal_map_says() {
        let policy = StopPolicy {
            signal_map: [(SIGHUP, SIGUSR1), (SIGTERM, SIGQUIT)].into(),
            ..StopPolicy::default()
        };
        let (finish, log) = supervise_fake(policy, &[SIGQUIT], false, |o| async move {
            o.signals.send(SignalEvent::Forward(SIGHUP)).unwrap();
            o.signals.send(SignalEvent::Forward(SIGUSR1)).unwrap();
            o.signals.send(SignalEvent::Stop(SIGTERM)).unwrap();
        })
        .await;
        assert_eq!(finish.unwrap(), Finish::Child(ChildExit::Signal(SIGQUIT)));
        assert_eq!(
            log,
            [
                "0ms started 1",
                "0ms SIGUSR1 to 1",
                "0ms SIGUSR1 to 1",
                "0ms SIGQUIT to 1",
                "0ms reaped 1"
            ]
        );
    }
}
