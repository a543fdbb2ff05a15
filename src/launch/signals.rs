//! Signals arrive as one stream, with their meaning decided where they arrive.
//!
//! [`Signals::install`] registers a handler (through tokio) for every signal envoke forwards, plus
//! SIGCHLD, before anything slow happens: a SIGTERM during resolution is then seen, not lost,
//! and a child that exits before the supervisor's first wait still produces a SIGCHLD event.
//! Handlers, not a blocked mask, so the child starts with the default mask and dispositions
//! (caught signals reset to default across execve, see signal(7)).
//!
//! Each signal becomes a [`SignalEvent`]: what it means for the child depends on whether the child
//! shares envoke's terminal ([`Terminal`]), and that is known when the handlers are installed.
//! The recheck signal (`--recheck-signal`) is known only once the configuration is read, after
//! the handlers are installed: [`Signals::recheck_on`] sets it (and installs its handler when
//! it is not caught already), and every handler reads it as its signal arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::Terminal;

/// Signals forwarded to a child that leads its own process group (no terminal).
pub(super) const GROUP_FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCONT,
    Signal::SIGWINCH,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Signals caught when the child shares envoke's terminal. INT, QUIT, WINCH and CONT come from
/// the terminal (or the shell's job control) to the whole foreground group, so the child already
/// has them: envoke catches INT and QUIT only so that it survives them, and never forwards them.
/// TSTP, TTIN and TTOU keep their default action: envoke stops with its child, as a shell job.
pub(super) const TERMINAL_CAUGHT: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
];

/// Signals that the terminal delivers to the foreground group by itself.
const TERMINAL_DELIVERED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// What a caught signal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGCHLD: some child exited (or stopped); reap.
    ChildExited,
    /// envoke is asked to stop (TERM; INT without a terminal): forward it, and the child has
    /// the stop timeout to exit.
    Stop(Signal),
    /// Anything else: forward it.
    Forward(Signal),
    /// The terminal delivered it to the whole foreground group, the child included (INT, QUIT
    /// with a terminal): nothing to forward. An INT still means envoke is being interrupted.
    Delivered(Signal),
    /// `--recheck-signal`: check every watched secret now; not forwarded.
    Recheck(Signal),
}

impl SignalEvent {
    fn classify(sig: Signal, terminal: Terminal, recheck: Option<Signal>) -> SignalEvent {
        match sig {
            Signal::SIGCHLD => SignalEvent::ChildExited,
            _ if recheck == Some(sig) => SignalEvent::Recheck(sig),
            _ if terminal == Terminal::Foreground && TERMINAL_DELIVERED.contains(&sig) => {
                SignalEvent::Delivered(sig)
            }
            Signal::SIGTERM | Signal::SIGINT => SignalEvent::Stop(sig),
            _ => SignalEvent::Forward(sig),
        }
    }
}

/// The merged stream of caught signals.
pub struct Signals {
    receiver: mpsc::UnboundedReceiver<SignalEvent>,
    sender: mpsc::UnboundedSender<SignalEvent>,
    terminal: Terminal,
    /// The recheck signal's number; 0 for none.
    recheck: Arc<AtomicI32>,
}

impl Signals {
    /// Registers handlers for what `terminal` catches, and SIGCHLD. Must run inside the tokio
    /// runtime.
    pub fn install(terminal: Terminal) -> std::io::Result<Signals> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let signals = Signals {
            receiver,
            sender,
            terminal,
            recheck: Arc::default(),
        };
        for &sig in terminal.caught().iter().chain(&[Signal::SIGCHLD]) {
            signals.listen(sig)?;
        }
        Ok(signals)
    }

    /// From now on `sig` means [`SignalEvent::Recheck`], and is caught even when it is not
    /// among the signals envoke forwards.
    pub fn recheck_on(&mut self, sig: Signal) -> std::io::Result<()> {
        self.recheck.store(sig as i32, Ordering::Relaxed);
        if self.terminal.caught().contains(&sig) || sig == Signal::SIGCHLD {
            return Ok(());
        }
        self.listen(sig)
    }

    /// A task that turns each arrival of `sig` into its event, as it arrives.
    fn listen(&self, sig: Signal) -> std::io::Result<()> {
        let mut stream = signal(SignalKind::from_raw(sig as i32))?;
        let sender = self.sender.clone();
        let (terminal, recheck) = (self.terminal, Arc::clone(&self.recheck));
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let recheck = Signal::try_from(recheck.load(Ordering::Relaxed)).ok();
                if sender
                    .send(SignalEvent::classify(sig, terminal, recheck))
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(())
    }

    /// The next signal, already turned into what it means for the supervisor.
    pub async fn recv(&mut self) -> SignalEvent {
        match self.receiver.recv().await {
            Some(event) => event,
            // The senders live in tasks that never end while the runtime runs.
            None => std::future::pending().await,
        }
    }

    /// The next signal that would end envoke before a child runs (anything but SIGCHLD).
    pub async fn recv_terminating(&mut self) -> Signal {
        loop {
            match self.recv().await {
                // Nothing runs yet that could be checked again.
                SignalEvent::ChildExited | SignalEvent::Recheck(_) => {}
                SignalEvent::Stop(sig)
                | SignalEvent::Forward(sig)
                | SignalEvent::Delivered(sig) => {
                    return sig;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_mean_what_the_terminal_makes_them() {
        let detached = |sig| SignalEvent::classify(sig, Terminal::Detached, None);
        let foreground = |sig| SignalEvent::classify(sig, Terminal::Foreground, None);
        assert_eq!(detached(Signal::SIGCHLD), SignalEvent::ChildExited);
        assert_eq!(
            detached(Signal::SIGTERM),
            SignalEvent::Stop(Signal::SIGTERM)
        );
        assert_eq!(detached(Signal::SIGINT), SignalEvent::Stop(Signal::SIGINT));
        assert_eq!(
            detached(Signal::SIGHUP),
            SignalEvent::Forward(Signal::SIGHUP)
        );
        assert_eq!(
            foreground(Signal::SIGTERM),
            SignalEvent::Stop(Signal::SIGTERM)
        );
        assert_eq!(
            foreground(Signal::SIGINT),
            SignalEvent::Delivered(Signal::SIGINT)
        );
        assert_eq!(
            foreground(Signal::SIGQUIT),
            SignalEvent::Delivered(Signal::SIGQUIT)
        );
        assert_eq!(
            foreground(Signal::SIGUSR1),
            SignalEvent::Forward(Signal::SIGUSR1)
        );
        let rechecking =
            |sig, terminal| SignalEvent::classify(sig, terminal, Some(Signal::SIGUSR2));
        assert_eq!(
            rechecking(Signal::SIGUSR2, Terminal::Detached),
            SignalEvent::Recheck(Signal::SIGUSR2)
        );
        assert_eq!(
            rechecking(Signal::SIGUSR2, Terminal::Foreground),
            SignalEvent::Recheck(Signal::SIGUSR2)
        );
        assert_eq!(
            rechecking(Signal::SIGUSR1, Terminal::Detached),
            SignalEvent::Forward(Signal::SIGUSR1)
        );
    }
}
