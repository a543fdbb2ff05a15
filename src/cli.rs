//! Command-line definitions (clap), and their one conversion into [`Flags`]. No logic:
//! [`crate::config`] turns flags, the manifest and the environment into a `Config`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{ArgAction, Args as ClapArgs, Parser, Subcommand, ValueEnum, ValueHint};
use nix::sys::signal::Signal;

use crate::config::Flags;
use crate::config::process::{parse_signal, parse_signal_mapping};
use crate::config::watch::{DEFAULT_INTERVAL, OnChange};
use crate::logging::LogFormat;

/// What `envoke --version` prints: the version, the commit and the target it was built for
/// (build.rs), all a bug report needs to name the build.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ENVOKE_COMMIT"),
    ", ",
    env!("ENVOKE_TARGET"),
    ")"
);

/// Start a command with its secrets from AWS Secrets Manager and Vault in its environment.
#[derive(Debug, Parser)]
#[command(name = "envoke", version = VERSION, about, max_term_width = 100)]
pub struct Args {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG also works); adds
    /// to the subcommand's own -v.
    #[arg(short, long, action = ArgAction::Count)]
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
    /// Print the least-privilege policy the manifest needs: an IAM policy (JSON) or a Vault
    /// policy (HCL), on stdout; notes on what it cannot express go to stderr.
    Policy(PolicyArgs),
    /// Move a .env file's values into Secrets Manager or Vault, and print (or, with --write,
    /// write) the manifest that references them. The .env file is never changed.
    Import(ImportArgs),
    /// Trust a manifest found by searching (by default the one `run` would find here) to choose
    /// where credentials go: its [vault] settings and [aws] endpoint, profile and role. The
    /// consent is bound to the file's content; a changed file must be trusted again.
    Trust(TrustArgs),
    /// Print a shell completion script to stdout, e.g. `envoke completions bash >
    /// /usr/local/share/bash-completion/completions/envoke`. It completes subcommands, flags
    /// and the values of flags that have a fixed set (--on-change, signals, --log-format,
    /// --format); not profile names, which only the manifest knows.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// `-v` after the subcommand (accepted, as everywhere; nothing is logged).
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Print the man page envoke(1) (roff) to stdout; with --dir, write it and a page per
    /// subcommand (envoke-run(1), envoke-check(1), ...) into DIR, e.g. `envoke man --dir
    /// /usr/local/share/man/man1`, then `man envoke-run`.
    Man {
        /// Write envoke.1 and every envoke-SUBCOMMAND.1 into this directory (created if
        /// missing) instead of printing envoke.1.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: Option<PathBuf>,
        /// `-v` after the subcommand (accepted, as everywhere; nothing is logged).
        #[command(flatten)]
        verbosity: Verbosity,
    },
}

impl Args {
    /// How many times -v was given, before the subcommand and after it: `envoke -v run -v` is
    /// -vv.
    pub fn verbosity(&self) -> u8 {
        let after = match &self.command {
            Command::Run(args) => args.verbosity.verbose,
            Command::Check(args) => args.verbosity.verbose,
            Command::Policy(args) => args.verbosity.verbose,
            Command::Import(args) => args.verbosity.verbose,
            Command::Trust(args) => args.verbosity.verbose,
            Command::Completions { .. } | Command::Man { .. } => 0,
        };
        self.verbose.saturating_add(after)
    }
}

/// clap's usage error, with a tip where it helps: when the words of a command were taken as
/// `run`'s arguments (`envoke run node server.js`: "unexpected argument 'node'"), to put `--`
/// before them.
pub fn with_tips(mut error: clap::Error, argv: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(word)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let Some(run) = argv
        .iter()
        .skip(1)
        .position(|arg| arg == "run")
        .map(|i| i + 1)
    else {
        return error;
    };
    let Some(start) = argv.iter().skip(run + 1).position(|arg| *arg == **word) else {
        return error;
    };
    if word.starts_with('-') || argv[run..].iter().any(|arg| arg == "--") {
        return error;
    }
    let words = |args: &[OsString]| -> Vec<String> {
        args.iter()
            .map(|arg| crate::sanitize::escaped(&arg.to_string_lossy()))
            .collect()
    };
    let start = run + 1 + start;
    let mut suggested = vec!["envoke".to_owned()];
    suggested.extend(words(&argv[1..start]));
    suggested.push("--".to_owned());
    suggested.extend(words(&argv[start..]));
    let tip = format!(
        "the command goes after `--`, so that its words are not read as envoke's: `{}`",
        suggested.join(" ")
    );
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    error
}

/// `-v` after the subcommand (`envoke run -v`). Not a global flag: clap would keep only the
/// subcommand's count of a global one, so `envoke -v run -v` would be -v.
#[derive(Debug, ClapArgs)]
pub struct Verbosity {
    /// More log output on stderr: -v info, -vv debug, -vvv trace; adds to a -v before the
    /// subcommand.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The signal names completions offer (any name, SIG-prefixed or not, or number is accepted).
const SIGNAL_NAMES: [&str; 12] = [
    "TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH", "KILL", "CONT", "STOP", "ALRM", "PWR",
];

/// A signal, as [`parse_signal`] reads it, with the common names to complete.
#[derive(Debug, Clone, Copy)]
struct SignalValue;

impl TypedValueParser for SignalValue {
    type Value = Signal;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Signal, clap::Error> {
        parse_signal.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(SIGNAL_NAMES.into_iter().map(PossibleValue::new)))
    }
}

/// `--on-change`, as [`OnChange::parse`] reads it, with its forms to complete.
#[derive(Debug, Clone, Copy)]
struct OnChangeValue;

impl TypedValueParser for OnChangeValue {
    type Value = OnChange;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<OnChange, clap::Error> {
        OnChange::parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        const FORMS: [&str; 9] = [
            "restart",
            "exit",
            "none",
            "signal:HUP",
            "signal:USR1",
            "signal:USR2",
            "signal:TERM",
            "signal:QUIT",
            "signal:INT",
        ];
        Some(Box::new(FORMS.into_iter().map(PossibleValue::new)))
    }
}

/// `envoke trust`
#[derive(Debug, ClapArgs)]
pub struct TrustArgs {
    /// `-v` after the subcommand.
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// The manifest to trust; the one found here or above when not given.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `envoke import`
#[derive(Debug, ClapArgs)]
pub struct ImportArgs {
    /// `-v` after the subcommand.
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// The .env file to read.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where the secrets go: aws-sm://PREFIX (one JSON secret) or vault://MOUNT/PATH (one KV
    /// secret), a key per variable.
    #[arg(long, value_name = "DEST", value_hint = ValueHint::Other)]
    pub to: Option<String>,
    /// With aws-sm://PREFIX: a secret per variable (PREFIX/NAME) instead of one JSON secret.
    #[arg(long)]
    pub split: bool,
    /// Store the values and write the manifest; without it nothing is stored and the manifest
    /// is printed.
    #[arg(long)]
    pub write: bool,
    /// Where --write puts the manifest.
    #[arg(short, long, value_name = "MANIFEST", default_value = "envoke.toml")]
    pub output: PathBuf,
    /// Let --write change stored keys whose values differ (the .env's values win), replace a
    /// stored value that is not a JSON object, and replace an existing manifest.
    #[arg(long)]
    pub force: bool,
    /// Keep `$NAME` and `${NAME}` in values as written instead of expanding them from the lines
    /// above, as Node's dotenv does.
    #[arg(long)]
    pub no_expand: bool,
    /// Keep NAME as a literal in the manifest although it may be secret (repeatable).
    #[arg(long, value_name = "NAME")]
    pub literal: Vec<String>,
    /// Store NAME as a secret although it looks harmless (repeatable).
    #[arg(long, value_name = "NAME")]
    pub secret: Vec<String>,
}

/// Which manifest, and whether envoke's own environment adds references: shared by `run`,
/// `check` and `policy`.
#[derive(Debug, ClapArgs)]
pub struct ManifestArgs {
    /// The manifest [default: envoke.toml here or in the nearest directory above, up to the repository's root].
    #[arg(short, long, value_name = "FILE", env = "ENVOKE_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// Ignore references found in envoke's own environment (NAME=aws-sm://...).
    #[arg(long, env = "ENVOKE_NO_ENV_REFS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_env_refs: bool,
}

impl ManifestArgs {
    /// The settings these arguments give; every other setting at its default.
    pub fn flags(&self) -> Flags {
        Flags {
            manifest: self.manifest.clone(),
            no_env_refs: self.no_env_refs,
            ..Flags::default()
        }
    }
}

/// `envoke run`
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// `-v` after the subcommand.
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// `-m` and `--no-env-refs`: which manifest, and whether the environment adds references.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Replace envoke with CMD (execve) instead of supervising it.
    #[arg(long, env = "ENVOKE_EXEC", value_parser = clap::builder::FalseyValueParser::new())]
    pub exec: bool,
    /// Apply the manifest's [profiles.NAME] (staging, production, ...).
    #[arg(long, value_name = "NAME", env = "ENVOKE_PROFILE", value_hint = ValueHint::Other)]
    pub profile: Option<String>,
    /// Start the command without a warning when no manifest and no reference is found.
    #[arg(long, env = "ENVOKE_ALLOW_EMPTY", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_empty: bool,
    /// Signal envoke sends when it stops the child itself [default: TERM; manifest: [process]].
    #[arg(long, value_name = "SIG", env = "ENVOKE_STOP_SIGNAL", value_parser = SignalValue,
          hide_possible_values = true)]
    pub stop_signal: Option<Signal>,
    /// Grace period before SIGKILL once a stop began, e.g. 500ms, 30s [default: 10s].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_STOP_TIMEOUT", value_parser = humantime::parse_duration)]
    pub stop_timeout: Option<Duration>,
    /// Forward signal FROM from outside as TO, e.g. TERM:QUIT (repeatable; comma-separated in
    /// the variable).
    #[arg(long, value_name = "FROM:TO", env = "ENVOKE_SIGNAL_MAP", value_delimiter = ',',
          value_parser = parse_signal_mapping)]
    pub signal_map: Vec<(Signal, Signal)>,
    /// Watch the secrets and act when one changes; poll every INTERVAL [default: 5m]. In
    /// ENVOKE_WATCH (which check and policy read too): an interval, on/true/yes/1 (every 5m),
    /// or off/false/no/0 (not from this variable: a manifest's [watch] still applies).
    #[arg(long, value_name = "INTERVAL", env = "ENVOKE_WATCH", num_args = 0..=1,
          default_missing_value = "on", value_parser = parse_watch)]
    pub watch: Option<WatchSwitch>,
    /// What a change does: restart, signal:SIGNAME, exit or none [default: restart].
    #[arg(long, value_name = "ACTION", env = "ENVOKE_ON_CHANGE", value_parser = OnChangeValue,
          hide_possible_values = true)]
    pub on_change: Option<OnChange>,
    /// Changes within this window coalesce into one action [default: 2s].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_SETTLE", value_parser = humantime::parse_duration)]
    pub settle: Option<Duration>,
    /// With --watch: how often the AWS secrets that no scheduled rotation is due for are checked,
    /// all at once with ListSecrets; never more often than the polls [default: the interval;
    /// longer saves calls in a large fleet, but a change made by hand then waits up to it].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_SWEEP", value_parser = humantime::parse_duration)]
    pub sweep: Option<Duration>,
    /// With --watch: wait a random delay of up to DURATION before a restart (or exit) after a
    /// change, so that a fleet does not restart in the same second [default: 0s].
    #[arg(long, value_name = "DURATION", env = "ENVOKE_SPLAY", value_parser = humantime::parse_duration)]
    pub splay: Option<Duration>,
    /// With --watch: on this signal, check every secret at once instead of forwarding it to the
    /// command, e.g. USR2 [default: none].
    #[arg(long, value_name = "SIG", env = "ENVOKE_RECHECK_SIGNAL", value_parser = SignalValue,
          hide_possible_values = true)]
    pub recheck_signal: Option<Signal>,
    /// With --watch: when this secret (aws-sm://... or vault://...) changes, check every secret
    /// at once, as the recheck signal does; a fleet rechecks without a signal [default: none].
    #[arg(long, value_name = "REF", env = "ENVOKE_RECHECK_ON", value_hint = ValueHint::Other)]
    pub recheck_on: Option<String>,
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
        value_delimiter = ',',
        value_hint = ValueHint::Other
    )]
    pub pass_env: Vec<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The settings `run` hands to [`crate::config`]: the command line's (and their ENVOKE_*
    /// variables'), which win over the manifest.
    pub fn flags(&self) -> Flags {
        Flags {
            profile: self.profile.clone(),
            exec: self.exec,
            stop_signal: self.stop_signal,
            stop_timeout: self.stop_timeout,
            signal_map: self.signal_map.clone(),
            watch: self.watch.and_then(|switch| switch.0),
            on_change: self.on_change.clone(),
            settle: self.settle,
            sweep: self.sweep,
            splay: self.splay,
            recheck_signal: self.recheck_signal,
            recheck_on: self.recheck_on.clone(),
            no_revoke: self.no_revoke,
            mask: self.mask,
            pass_env: self.pass_env.clone(),
            allow_disk_files: self.allow_disk_files,
            ..self.manifest.flags()
        }
    }
}

/// `envoke check`
#[derive(Debug, ClapArgs)]
pub struct CheckArgs {
    /// `-v` after the subcommand.
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// `-m` and `--no-env-refs`: which manifest is checked, and with which references.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Check the manifest as its [profiles.NAME] makes it.
    #[arg(long, value_name = "NAME", env = "ENVOKE_PROFILE", value_hint = ValueHint::Other)]
    pub profile: Option<String>,
    /// Also prove what watching needs (DescribeSecret, KV v2 metadata, lease renewal) and report
    /// a variable whose watch would be denied. A manifest's [watch] turns this on too, and so
    /// does ENVOKE_WATCH as `run` reads it: an interval or on/true/yes/1 (off/false/no/0: not
    /// from this variable).
    #[arg(long, env = "ENVOKE_WATCH", value_parser = clap::builder::FalseyValueParser::new())]
    pub watch: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Accept finding no manifest and no reference (otherwise an error: nothing to check).
    #[arg(long, env = "ENVOKE_ALLOW_EMPTY", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_empty: bool,
}

/// `envoke policy`
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("backend").required(true).args(["aws", "vault"]))]
pub struct PolicyArgs {
    /// `-v` after the subcommand.
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// An AWS IAM policy document (JSON) for the aws-sm:// references.
    #[arg(long)]
    pub aws: bool,
    /// A Vault/OpenBao ACL policy (HCL) for the vault:// references. Which engine serves a path
    /// is asked from the server when envoke can reach it; otherwise KV v2 is assumed and the
    /// policy says so.
    #[arg(long)]
    pub vault: bool,
    /// `-m` and `--no-env-refs`: which manifest's references the policy grants.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Also grant what `run --watch` needs. A manifest's [watch] turns this on too, and so does
    /// ENVOKE_WATCH as `run` reads it: an interval or on/true/yes/1 (off/false/no/0: not from
    /// this variable).
    #[arg(long, env = "ENVOKE_WATCH", value_parser = clap::builder::FalseyValueParser::new())]
    pub watch: bool,
    /// With watching: also grant reading the version of the `--recheck-on` secret.
    #[arg(long, value_name = "REF", env = "ENVOKE_RECHECK_ON")]
    pub recheck_on: Option<String>,
}

/// `run --watch`'s value: the poll interval, or `None` for off (`ENVOKE_WATCH=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSwitch(pub Option<Duration>);

/// Reads `--watch` and `ENVOKE_WATCH` as one switch for `run`, `check` and `policy`: an interval
/// (`30s`, `5m`), on/true/yes/1 for the default interval, off/false/no/0 for none. `check
/// --watch` and `policy --watch` read the same words as a yes or a no (clap's falsey values).
fn parse_watch(text: &str) -> Result<WatchSwitch, String> {
    let word = text.trim().to_ascii_lowercase();
    match word.as_str() {
        "" | "0" | "off" | "false" | "no" | "n" | "f" => Ok(WatchSwitch(None)),
        "on" | "true" | "yes" | "y" | "1" => Ok(WatchSwitch(Some(DEFAULT_INTERVAL))),
        _ => humantime::parse_duration(&word)
            .map(|interval| WatchSwitch(Some(interval)))
            .map_err(|error| format!("{error}: give an interval (30s, 5m), on or off")),
    }
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
        assert_eq!(before.verbosity(), 1);
        let both = Args::try_parse_from(["envoke", "-v", "check", "-v"]).unwrap();
        assert_eq!(both.verbosity(), 2);
        let both = Args::try_parse_from(["envoke", "-vv", "policy", "--aws", "-v"]).unwrap();
        assert_eq!(both.verbosity(), 3);
        let after = Args::try_parse_from(["envoke", "run", "-vv", "--", "true"]).unwrap();
        assert_eq!(after.verbosity(), 2);
        let Command::Run(run) = after.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["true"]);
    }

    #[test]
    fn a_command_without_dashes_gets_a_tip_to_add_them() {
        let argv: Vec<OsString> = ["envoke", "run", "--exec", "node", "server.js"]
            .map(OsString::from)
            .to_vec();
        let error = Args::try_parse_from(&argv).unwrap_err();
        let text = with_tips(error, &argv).to_string();
        assert!(text.contains("unexpected argument 'node'"), "{text}");
        assert!(
            text.contains(
                "tip: the command goes after `--`, so that its words are not read as \
                 envoke's: `envoke run --exec -- node server.js`"
            ),
            "{text}"
        );
        // A mistyped flag gets no such tip.
        let argv: Vec<OsString> = ["envoke", "run", "--nope", "--", "true"]
            .map(OsString::from)
            .to_vec();
        let error = Args::try_parse_from(&argv).unwrap_err();
        assert!(!with_tips(error, &argv).to_string().contains("goes after"));
    }

    #[test]
    fn envoke_watch_is_one_switch_an_interval_on_or_off() {
        let every = |secs| Ok(WatchSwitch(Some(Duration::from_secs(secs))));
        assert_eq!(parse_watch("30s"), every(30));
        assert_eq!(parse_watch("on"), every(300));
        assert_eq!(parse_watch("TRUE"), every(300));
        assert_eq!(parse_watch("1"), every(300));
        for off in ["0", "off", "false", "no", ""] {
            assert_eq!(parse_watch(off), Ok(WatchSwitch(None)), "{off}");
        }
        assert!(parse_watch("often").is_err());
        // check and policy read the same words as yes or no.
        let falsey = clap::builder::FalseyValueParser::new();
        let cmd = clap::Command::new("x");
        for (word, on) in [
            ("30s", true),
            ("on", true),
            ("1", true),
            ("0", false),
            ("off", false),
        ] {
            let parsed = falsey
                .parse_ref(&cmd, None, std::ffi::OsStr::new(word))
                .unwrap();
            assert_eq!(parsed, on, "{word}");
            assert_eq!(parse_watch(word).unwrap().0.is_some(), on, "{word}");
        }
    }

    #[test]
    fn policy_needs_exactly_one_backend() {
        assert!(Args::try_parse_from(["envoke", "policy"]).is_err());
        assert!(Args::try_parse_from(["envoke", "policy", "--aws", "--vault"]).is_err());
        let Command::Policy(policy) =
            Args::try_parse_from(["envoke", "policy", "--vault", "--watch"])
                .unwrap()
                .command
        else {
            panic!("not policy")
        };
        assert!(policy.vault && policy.watch && !policy.aws);
    }

    /// Every `run` flag (but the command) can come from an ENVOKE_* variable, and `--help` says
    /// which.
    #[test]
    fn every_run_flag_has_an_envoke_variable() {
        let command = Args::command();
        let run = command.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "command" | "help" | "verbose") || arg.is_global_set() {
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
