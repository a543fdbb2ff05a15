//! Command-line definitions (clap). No logic: [`crate::config`] turns these into a `Config`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args as ClapArgs, Parser, Subcommand, ValueEnum};
use nix::sys::signal::Signal;

use crate::config::process::{parse_signal, parse_signal_mapping};
use crate::config::watch::OnChange;
use crate::logging::LogFormat;

/// Start a command with its secrets from AWS Secrets Manager and Vault in its environment.
#[derive(Debug, Parser)]
#[command(name = "envoke", version, about, max_term_width = 100)]
pub struct Args {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG also works).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How logs are written to stderr: text (timestamped when stderr is not a terminal), or
    /// json (one object per line).
    #[arg(long, value_enum, value_name = "FORMAT", global = true, env = "ENVOKE_LOG_FORMAT",
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve every reference, then run CMD with the values in its environment.
    Run(RunArgs),
    /// Resolve every reference and report each variable's status; never prints a value.
    Check(CheckArgs),
    /// Print a shell completion script to stdout, e.g. `envoke completions bash >
    /// /etc/bash_completion.d/envoke`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `envoke man > /usr/share/man/man1/envoke.1`.
    Man,
}

/// `envoke run`
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// The manifest [default: ./envoke.toml when present].
    #[arg(short, long, value_name = "FILE", env = "ENVOKE_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// Replace envoke with CMD (execve) instead of supervising it.
    #[arg(long, env = "ENVOKE_EXEC", value_parser = clap::builder::FalseyValueParser::new())]
    pub exec: bool,
    /// Don't resolve references found in envoke's own environment.
    #[arg(long, env = "ENVOKE_NO_ENV_REFS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_env_refs: bool,
    /// Signal envoke sends when it stops the child itself [default: TERM; manifest: [process]].
    #[arg(long, value_name = "SIG", env = "ENVOKE_STOP_SIGNAL", value_parser = parse_signal)]
    pub stop_signal: Option<Signal>,
    /// Grace period before SIGKILL once a stop began, e.g. 500ms, 30s [default: 10s].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_STOP_TIMEOUT", value_parser = humantime::parse_duration)]
    pub stop_timeout: Option<Duration>,
    /// Forward signal FROM from outside as TO, e.g. TERM:QUIT (repeatable; comma-separated in
    /// the variable).
    #[arg(long, value_name = "FROM:TO", env = "ENVOKE_SIGNAL_MAP", value_delimiter = ',',
          value_parser = parse_signal_mapping)]
    pub signal_map: Vec<(Signal, Signal)>,
    /// Watch the secrets and act when one changes; poll every INTERVAL [default: 5m].
    #[arg(long, value_name = "INTERVAL", env = "ENVOKE_WATCH", num_args = 0..=1,
          default_missing_value = "5m", value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,
    /// What a change does: restart, signal:SIGNAME, exit or none [default: restart].
    #[arg(long, value_name = "ACTION", env = "ENVOKE_ON_CHANGE", value_parser = OnChange::parse)]
    pub on_change: Option<OnChange>,
    /// Changes within this window coalesce into one action [default: 2s].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_SETTLE", value_parser = humantime::parse_duration)]
    pub settle: Option<Duration>,
    /// Keep Vault leases, and the Vault token envoke logged in with, when envoke exits instead of
    /// revoking them.
    #[arg(long, env = "ENVOKE_NO_REVOKE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_revoke: bool,
    /// Pass the command's stdout and stderr through envoke with every resolved value replaced by
    /// ****. envoke then keeps the values in memory while the command runs.
    #[arg(long, env = "ENVOKE_MASK", value_parser = clap::builder::FalseyValueParser::new())]
    pub mask: bool,
    /// Allow secret files (`file = true`) on a filesystem that is not a tmpfs or ramfs, where
    /// their values reach a disk.
    #[arg(long, env = "ENVOKE_ALLOW_DISK_FILES", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_disk_files: bool,
    /// Let the child inherit NAME although it is envoke's own (VAULT_TOKEN, VAULT_SECRET_ID,
    /// ENVOKE_*, ...; repeatable).
    #[arg(
        long,
        value_name = "NAME",
        env = "ENVOKE_PASS_ENV",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `envoke check`
#[derive(Debug, ClapArgs)]
pub struct CheckArgs {
    /// The manifest [default: ./envoke.toml when present].
    #[arg(short, long, value_name = "FILE", env = "ENVOKE_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// Don't resolve references found in envoke's own environment.
    #[arg(long, env = "ENVOKE_NO_ENV_REFS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_env_refs: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `check` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// One JSON document for programs.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn verbosity_before_or_after_the_subcommand() {
        let before = Args::try_parse_from(["envoke", "-v", "run", "--", "true"]).unwrap();
        assert_eq!(before.verbose, 1);
        let after = Args::try_parse_from(["envoke", "run", "-vv", "--", "true"]).unwrap();
        assert_eq!(after.verbose, 2);
        let Command::Run(run) = after.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["true"]);
    }

    /// Every `run` flag (but the command) can come from an ENVOKE_* variable, and `--help` says
    /// which.
    #[test]
    fn every_run_flag_has_an_envoke_variable() {
        let command = Args::command();
        let run = command.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "command" | "help") || arg.is_global_set() {
                continue;
            }
            let Some(env) = arg.get_env() else {
                panic!("--{id} has no ENVOKE_* variable")
            };
            assert!(
                env.to_str().unwrap().starts_with("ENVOKE_"),
                "--{id}: {env:?}"
            );
        }
    }
}
