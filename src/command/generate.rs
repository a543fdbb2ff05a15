//! `envoke completions SHELL` and `envoke man`: generated from the clap definitions, so they
//! cannot drift from the flags.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Args;
use crate::error::{Error, Exit};

/// `envoke completions SHELL`: the completion script.
pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "envoke", &mut std::io::stdout());
    Ok(Exit::Success)
}

/// `envoke man`: the man page envoke(1) (roff) on stdout; with `--dir DIR`, envoke.1 and a
/// page per subcommand (envoke-run.1, ...: every flag, its default and its ENVOKE_* variable)
/// written into DIR.
pub fn man(dir: Option<&Path>) -> Result<Exit, Error> {
    if let Some(dir) = dir {
        return std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Args::command(), dir))
            .map(|()| Exit::Success)
            .map_err(|source| Error::Output {
                what: "the man pages",
                source,
            });
    }
    // As generate_to renders it: without `envoke help`, which has no page of its own.
    let command = Args::command().disable_help_subcommand(true);
    let result = clap_mangen::Man::new(command).render(&mut std::io::stdout());
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
