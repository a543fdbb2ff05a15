//! Signals arrive as one stream.
//!
//! [`Signals::install`] registers a handler (through tokio) for every signal envoke forwards, plus
//! SIGCHLD, before anything slow happens: a SIGTERM during resolution is then seen, not lost,
//! and a child that exits before the supervisor's first wait still produces a SIGCHLD event.
//! Handlers, not a blocked mask, so the child starts with the default mask and dispositions
//! (caught signals reset to default across execve, see signal(7)).

use std::collections::HashMap;
use std::str::FromStr;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Signals forwarded to a child that leads its own process group (no terminal).
pub const GROUP_FORWARDED: &[Signal] = &[
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
pub const TERMINAL_CAUGHT: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
];

/// Signals that the terminal delivers to the foreground group by itself.
pub const TERMINAL_DELIVERED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// The merged stream of caught signals.
pub struct Signals {
    receiver: mpsc::UnboundedReceiver<Signal>,
}

impl Signals {
    /// Registers handlers for `caught` and SIGCHLD. Must run inside the tokio runtime.
    pub fn install(caught: &[Signal]) -> std::io::Result<Signals> {
        let (sender, receiver) = mpsc::unbounded_channel();
        for &sig in caught.iter().chain(&[Signal::SIGCHLD]) {
            let mut stream = signal(SignalKind::from_raw(sig as i32))?;
            let sender = sender.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if sender.send(sig).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Signals { receiver })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Signal {
        match self.receiver.recv().await {
            Some(sig) => sig,
            // The senders live in tasks that never end while the runtime runs.
            None => std::future::pending().await,
        }
    }

    /// The next signal that would end envoke before a child runs (anything but SIGCHLD).
    pub async fn recv_terminating(&mut self) -> Signal {
        loop {
            let sig = self.recv().await;
            if sig != Signal::SIGCHLD {
                return sig;
            }
        }
    }
}

/// Parses a signal name (`TERM`, `SIGTERM`, `term`) or number (`15`).
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("unknown signal number {number}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("unknown signal `{text}` (e.g. TERM, SIGQUIT, 15)"))
}

/// Parses `FROM:TO` for `--signal-map`.
pub fn parse_signal_mapping(text: &str) -> Result<(Signal, Signal), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not FROM:TO (e.g. TERM:QUIT)"))?;
    Ok((parse_signal(from)?, parse_signal(to)?))
}

/// How signals from outside map to what the child receives.
pub type SignalMap = HashMap<Signal, Signal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigquit"), Ok(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(
            parse_signal_mapping("TERM:QUIT"),
            Ok((Signal::SIGTERM, Signal::SIGQUIT))
        );
        assert!(parse_signal_mapping("TERM").is_err());
    }
}
