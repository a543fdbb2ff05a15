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
