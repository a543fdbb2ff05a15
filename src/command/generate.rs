//! `envoke completions SHELL` and `envoke man`: generated from the clap definitions, so they
//! cannot drift from the flags.

use clap::CommandFactory;

use crate::cli::Args;
use crate::error::{Error, Exit};

/// `envoke completions SHELL`: the completion script.
pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "envoke", &mut std::io::stdout());
    Ok(Exit::Success)
}

/// `envoke man`: the man page (roff).
pub fn man() -> Result<Exit, Error> {
    let result = clap_mangen::Man::new(Args::command()).render(&mut std::io::stdout());
    match result {
        Ok(()) => Ok(Exit::Success),
        // A reader that stopped early (`| head`) is not envoke's failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::OutputClosed),
        Err(error) => Err(Error::Output {
            what: "the man page",
            source: error,
        }),
    }
}
