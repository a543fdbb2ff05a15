//! The command line as deployments use it: every `run` flag as an ENVOKE_* variable (a container
//! image sets the variable, the orchestrator the command), shell completions and the man page.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Envoke, Moto, Supervised, read_lines, wait_lines};

/// The variable of every `run` flag.
const RUN_VARIABLES: &[&str] = &[
    "ENVOKE_MANIFEST",
    "ENVOKE_EXEC",
    "ENVOKE_NO_ENV_REFS",
    "ENVOKE_STOP_SIGNAL",
    "ENVOKE_STOP_TIMEOUT",
    "ENVOKE_SIGNAL_MAP",
    "ENVOKE_WATCH",
    "ENVOKE_ON_CHANGE",
    "ENVOKE_SETTLE",
    "ENVOKE_NO_REVOKE",
    "ENVOKE_MASK",
    "ENVOKE_ALLOW_DISK_FILES",
    "ENVOKE_PASS_ENV",
    "ENVOKE_LOG_FORMAT",
];

#[test]
fn run_help_lists_every_envoke_variable() {
    let output = Envoke::new().run(["run", "--help"]);
    output.assert_code(0);
    for variable in RUN_VARIABLES {
        assert!(
            output.stdout.contains(&format!("[env: {variable}=")),
            "{variable} missing\n{}",
            output.stdout
        );
    }
}

#[test]
fn envoke_on_change_and_watch_from_the_environment_exit_75_after_a_change() {
    let moto = Moto::start();
    moto.create("rotating", "one");
    let envoke = Envoke::new()
        .aws(&moto)
        .env("ENVOKE_WATCH", "1s")
        .env("ENVOKE_SETTLE", "100ms")
        .env("ENVOKE_ON_CHANGE", "exit")
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let mut watched =
        Supervised::start(&envoke, &[], r#"echo "$VALUE" >> "$LOG"; exec sleep 1000"#);
    watched.wait_lines(1, Duration::from_secs(15));
    moto.put("rotating", "two");
    assert_eq!(watched.wait_exit(Duration::from_secs(10)), Some(75));
    let logs = watched.logs();
    assert!(
        logs.contains("cause=\"exit\"") && logs.contains("event=\"secret.resolve\""),
        "the re-resolution is audited\n{logs}"
    );
}

#[test]
fn envoke_signal_map_and_envoke_exec_from_the_environment_take_effect() {
    let envoke = Envoke::new();
    let log = envoke.dir().join("signals.log");
    let ready = envoke.dir().join("ready");
    let script = r#"
trap 'echo QUIT >> "$LOG"; exit 0' QUIT
trap 'echo HUP >> "$LOG"' HUP
trap 'echo TERM >> "$LOG"; exit 0' TERM
echo ready > "$READY"
while :; do sleep 0.05; done
"#;
    let mut child = envoke
        .command(["run", "--", "sh", "-c", script])
        .env("ENVOKE_SIGNAL_MAP", "TERM:QUIT,USR1:HUP")
        .env("LOG", &log)
        .env("READY", &ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_lines(&ready, 1, Duration::from_secs(10));
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGUSR1).unwrap();
    wait_lines(&log, 1, Duration::from_secs(5));
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(read_lines(&log), ["HUP", "QUIT"]);

    // ENVOKE_EXEC=1: the command replaces envoke and keeps its PID; ENVOKE_EXEC=0 does not.
    for (exec, same) in [("1", true), ("0", false)] {
        let child = envoke
            .command(["run", "--", "sh", "-c", "echo $$"])
            .env("ENVOKE_EXEC", exec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let envoke_pid = child.id();
        let output = child.wait_with_output().unwrap();
        let shell_pid: u32 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap();
        assert_eq!(shell_pid == envoke_pid, same, "ENVOKE_EXEC={exec}");
    }
}

#[test]
fn completions_for_every_shell_and_the_man_page_come_from_the_same_definitions() {
    let envoke = Envoke::new();
    let bash = envoke.run(["completions", "bash"]);
    bash.assert_code(0);
    for word in ["envoke", "run", "check", "--watch", "--log-format"] {
        assert!(bash.stdout.contains(word), "bash lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = envoke.run(["completions", shell]);
        output.assert_code(0);
        assert!(
            // fish names long options without their dashes (`-l watch`).
            output.stdout.contains("watch") && output.stdout.contains("on-change"),
            "{shell}:\n{}",
            output.stdout
        );
    }
    envoke.run(["completions", "tcsh"]).assert_code(125);

    let man = envoke.run(["man"]);
    man.assert_code(0);
    assert!(man.stdout.contains("\n.TH envoke 1"), "{}", man.stdout);
    for word in [
        ".SH NAME",
        ".SH SYNOPSIS",
        "run",
        "check",
        "completions",
        "log\\-format",
    ] {
        assert!(
            man.stdout.contains(word),
            "man lacks {word}\n{}",
            man.stdout
        );
    }
}

#[test]
fn version_names_the_commit_and_the_target_for_bug_reports() {
    let version = Envoke::new().run(["--version"]);
    version.assert_code(0);
    let line = version.stdout.trim();
    let rest = line
        .strip_prefix(concat!("envoke ", env!("CARGO_PKG_VERSION"), " (commit "))
        .unwrap_or_else(|| panic!("no version and commit in {line:?}"));
    let (commit, target) = rest
        .strip_suffix(')')
        .and_then(|inner| inner.split_once(", "))
        .unwrap_or_else(|| panic!("no commit and target in {line:?}"));
    assert!(
        commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "no commit hash in {line:?}"
    );
    // The binary cargo built for this run comes from this checkout's HEAD (build.rs); another
    // one (ENVOKE_TEST_BINARY) may come from any commit.
    if std::env::var_os("ENVOKE_TEST_BINARY").is_none() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("git runs");
        assert_eq!(
            commit,
            String::from_utf8_lossy(&head.stdout).trim(),
            "{line}"
        );
    }
    let arch = std::env::consts::ARCH;
    assert!(
        target.starts_with(&format!("{arch}-unknown-linux-")),
        "the target in {line:?} is not this machine's"
    );
}

/// `envoke man --dir DIR` writes envoke.1 and a page per subcommand; envoke-run(1) has every
/// `run` flag with its ENVOKE_* variable, and envoke(1)'s SEE ALSO pages all exist.
#[test]
fn man_dir_writes_a_page_per_subcommand_with_every_flag_and_its_variable() {
    let envoke = Envoke::new();
    let dir = envoke.dir().join("man/man1");
    envoke
        .run(["man", "--dir", dir.to_str().unwrap()])
        .assert_code(0);
    let page = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let run = page("envoke-run.1");
    assert!(run.contains(".TH envoke-run 1"), "{run}");
    for variable in RUN_VARIABLES
        .iter()
        .chain(&["ENVOKE_SPLAY", "ENVOKE_RECHECK_SIGNAL"])
    {
        // roff escapes the dashes of flags, not the underscores of variables.
        assert!(
            run.contains(variable),
            "envoke-run.1 lacks {variable}\n{run}"
        );
    }
    for flag in [
        "\\-\\-on\\-change",
        "\\-\\-stop\\-signal",
        "\\-\\-mask",
        "\\-\\-splay",
    ] {
        assert!(run.contains(flag), "envoke-run.1 lacks {flag}");
    }
    let check = page("envoke-check.1");
    assert!(check.contains("ENVOKE_PROFILE") && check.contains("\\-\\-format"));
    for name in [
        "envoke.1",
        "envoke-policy.1",
        "envoke-import.1",
        "envoke-completions.1",
    ] {
        page(name);
    }
    // The top page is the one `envoke man` prints.
    let top = envoke.run(["man"]);
    top.assert_code(0);
    assert_eq!(top.stdout, page("envoke.1"));
}

/// Completions complete the values of flags that have a fixed set, and do not offer file
/// names for a profile.
#[test]
fn bash_completes_on_change_signals_and_log_formats_and_no_files_for_a_profile() {
    let bash = Envoke::new().run(["completions", "bash"]);
    bash.assert_code(0);
    let completion = |flag: &str| -> String {
        let at = bash
            .stdout
            .find(&format!("                {flag})\n"))
            .unwrap_or_else(|| panic!("no case for {flag}"));
        bash.stdout[at..].lines().nth(1).unwrap().to_owned()
    };
    assert!(
        completion("--on-change").contains("restart exit none signal:HUP"),
        "{}",
        completion("--on-change")
    );
    for flag in ["--stop-signal", "--recheck-signal"] {
        assert!(
            completion(flag).contains("TERM INT QUIT HUP USR1 USR2"),
            "{flag}"
        );
    }
    assert!(completion("--log-format").contains("text json"));
    assert!(
        !completion("--profile").contains("compgen -f"),
        "{}",
        completion("--profile")
    );
}

/// `envoke run node server.js` (no `--`) says to add it, with the command as it would be.
#[test]
fn a_command_without_dashes_says_to_put_them_before_it() {
    Envoke::new()
        .run(["run", "--allow-empty", "node", "server.js"])
        .assert_code(125)
        .assert_stderr_contains("unexpected argument 'node'")
        .assert_stderr_contains(
            "tip: the command goes after `--`, so that its words are not read as envoke's: \
             `envoke run --allow-empty -- node server.js`",
        );
}

/// `-v` before and after the subcommand add up: `envoke -v run -v` is -vv (debug lines).
#[test]
fn v_before_and_after_the_subcommand_add_up() {
    let envoke = Envoke::new();
    let once = envoke.run(["-v", "run", "--allow-empty", "--", "true"]);
    once.assert_code(0).assert_stderr_lacks("DEBUG");
    let twice = envoke.run(["-v", "run", "-v", "--allow-empty", "--", "true"]);
    twice.assert_code(0).assert_stderr_contains("DEBUG");
}

/// ENVOKE_WATCH is one switch for run, check and policy: an interval or on watches (run at the
/// interval, 5m for on), off/0 does not (run used to refuse 0 as an interval below 1s).
#[test]
fn envoke_watch_means_the_same_to_run_check_and_policy() {
    let moto = Moto::start();
    moto.create("s", "value");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://s\"\n");
    for off in ["0", "off", "false"] {
        envoke
            .run_with(&[("ENVOKE_WATCH", off)], ["-v", "run", "--", "true"])
            .assert_code(0)
            .assert_stderr_lacks("watching for changes");
        envoke
            .run_with(&[("ENVOKE_WATCH", off)], ["check"])
            .assert_code(0)
            .assert_stdout_contains("all 1 variables resolve\n");
        let policy = envoke.run_with(&[("ENVOKE_WATCH", off)], ["policy", "--aws"]);
        policy.assert_code(0);
        assert!(
            !policy.stdout.contains("DescribeSecret"),
            "{}",
            policy.stdout
        );
    }
    for (on, interval) in [("on", "300s"), ("1", "300s"), ("30s", "30s")] {
        // The watcher says so as it starts, before `true` exits.
        envoke
            .run_with(&[("ENVOKE_WATCH", on)], ["-v", "run", "--", "true"])
            .assert_code(0)
            .assert_stderr_contains("watching for changes")
            .assert_stderr_contains(&format!("interval={interval}"));
        envoke
            .run_with(&[("ENVOKE_WATCH", on)], ["check"])
            .assert_code(0)
            .assert_stdout_contains("resolve and can be watched");
        envoke
            .run_with(&[("ENVOKE_WATCH", on)], ["policy", "--aws"])
            .assert_code(0)
            .assert_stdout_contains("DescribeSecret");
    }
}

/// README and `--help` say the same places: the man pages' directory, the bash completion file.
#[test]
fn readme_and_help_agree_on_where_pages_and_completions_go() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let envoke = Envoke::new();
    let man = envoke.run(["man", "--help"]);
    man.assert_code(0);
    let completions = envoke.run(["completions", "--help"]);
    completions.assert_code(0);
    for (help, line) in [
        (&man.stdout, "envoke man --dir /usr/local/share/man/man1"),
        (
            &completions.stdout,
            "envoke completions bash > /usr/local/share/bash-completion/completions/envoke",
        ),
    ] {
        assert!(readme.contains(line), "README lacks {line}");
        // clap wraps help text at 100 columns.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(line), "--help lacks {line}:\n{help}");
    }
}
