//! Signal forwarding to the supervised child.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Envoke, read_lines, wait_lines};

/// A child that records each signal it receives (one name per line) and exits 0 on TERM.
const RECORDER: &str = r#"
for s in HUP INT QUIT USR1 USR2 ALRM WINCH CONT; do
  trap "echo $s >> \"$LOG\"" $s
done
trap 'echo TERM >> "$LOG"; exit 0' TERM
echo ready > "$READY"
while :; do sleep 0.05; done
"#;

/// Starts `envoke run FLAGS -- sh -c SCRIPT` with `$LOG` (returned) and `$READY` set, and
/// returns once the script has written `$READY`.
fn start(envoke: &Envoke, flags: &[&str], script: &str) -> (Child, PathBuf) {
    let log = envoke.dir().join("signals.log");
    let ready = envoke.dir().join("ready");
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let child = envoke
        .command(&args)
        .env("LOG", &log)
        .env("READY", &ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_lines(&ready, 1, Duration::from_secs(10));
    (child, log)
}

#[test]
fn each_signal_is_forwarded_exactly_once() {
    let envoke = Envoke::new();
    let (mut child, log) = start(&envoke, &[], RECORDER);
    let pid = Pid::from_raw(child.id() as i32);
    let sent = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGWINCH,
    ];
    for (i, sig) in sent.iter().enumerate() {
        kill(pid, *sig).unwrap();
        wait_lines(&log, i + 1, Duration::from_secs(5));
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        read_lines(&log),
        [
            "HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "WINCH", "TERM"
        ],
        "each signal exactly once, in order"
    );
}

/// docs/process.md promises the signal to the command's whole process group, not only the
/// command: a worker the command started (a shell's background job, a server's workers) gets it
/// too, once.
#[test]
fn a_forwarded_signal_reaches_the_whole_process_group_once() {
    let envoke = Envoke::new();
    let script = r#"
        sh -c 'trap "echo worker-USR1 >> \"$LOG\"" USR1
               trap "exit 0" TERM
               echo ready > "$READY"
               while :; do sleep 0.05; done' &
        trap 'echo command-USR1 >> "$LOG"' USR1
        trap 'kill $!; wait; exit 0' TERM
        while :; do sleep 0.05; done
    "#;
    let (mut child, log) = start(&envoke, &[], script);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR1).unwrap();
    let mut lines = wait_lines(&log, 2, Duration::from_secs(5));
    lines.sort();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    assert_eq!(lines, ["command-USR1", "worker-USR1"]);
    // Once each: nothing arrived after the two lines.
    assert_eq!(read_lines(&log).len(), 2, "{:?}", read_lines(&log));
}

#[test]
fn signal_map_translates_what_the_child_receives() {
    let script = r#"
trap 'echo QUIT >> "$LOG"; exit 0' QUIT
trap 'echo TERM >> "$LOG"; exit 0' TERM
echo ready > "$READY"
while :; do sleep 0.05; done
"#;
    let envoke = Envoke::new();
    let (mut child, log) = start(&envoke, &["--signal-map", "TERM:QUIT"], script);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(read_lines(&log), ["QUIT"]);
}

#[test]
fn a_child_that_ignores_term_is_killed_after_the_stop_timeout() {
    let script = r#"trap '' TERM; echo ready > "$READY"; while :; do sleep 0.05; done"#;
    let envoke = Envoke::new();
    let (mut child, _) = start(&envoke, &["--stop-timeout", "300ms"], script);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9));
}

#[test]
fn on_a_terminal_ctrl_c_reaches_the_child_once() {
    use std::io::Write;
    let envoke = Envoke::new();
    let log = envoke.dir().join("signals.log");
    let ready = envoke.dir().join("ready");
    let child_script = r#"trap 'echo INT >> "$LOG"; exit 5' INT; echo ready > "$READY"; while :; do sleep 0.05; done"#;
    let inner = format!(
        "exec '{}' run -- sh -c '{}'",
        crate::support::envoke_binary().display(),
        child_script.replace('\'', r"'\''")
    );
    // script(1) gives envoke a pseudo-terminal as stdin, so the child stays in the foreground.
    let mut script = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .current_dir(envoke.dir())
        .env_clear()
        .envs(envoke.environment().iter().map(|(k, v)| (k, v)))
        .env("LOG", &log)
        .env("READY", &ready)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    wait_lines(&ready, 1, Duration::from_secs(10));
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    wait_lines(&log, 1, Duration::from_secs(5));
    // Long enough for a second, duplicated delivery to show up.
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let status = script.wait().unwrap();
    assert_eq!(read_lines(&log), ["INT"], "Ctrl-C arrives exactly once");
    assert_eq!(
        status.code(),
        Some(5),
        "the child's exit code passes through"
    );
}

#[test]
fn a_second_term_is_forwarded_again_without_escalating() {
    // Exits by itself on the second TERM, well within the stop timeout.
    let script = r#"
n=0
trap 'n=$((n+1)); echo TERM >> "$LOG"; [ $n -ge 2 ] && exit 9' TERM
echo ready > "$READY"
while :; do sleep 0.05; done
"#;
    let envoke = Envoke::new();
    let (mut child, log) = start(&envoke, &["--stop-timeout", "20s"], script);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    wait_lines(&log, 1, Duration::from_secs(5));
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(9), "not SIGKILLed");
    assert_eq!(read_lines(&log), ["TERM", "TERM"]);
}

#[test]
fn the_manifest_sets_the_stop_timeout_and_the_stop_signal() {
    let envoke = Envoke::new().manifest("[process]\nstop_timeout = \"300ms\"\n");
    let script = r#"trap '' TERM; echo ready > "$READY"; while :; do sleep 0.05; done"#;
    let (mut child, _) = start(&envoke, &[], script);
    let started = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(started.elapsed() < Duration::from_secs(5));

    // The stop signal is what envoke sends to leftovers of the group: HUP here.
    let envoke = Envoke::new().env("ENVOKE_STOP_SIGNAL", "HUP");
    let log = envoke.dir().join("leftover.log");
    let script = format!(
        "sh -c 'trap \"echo HUP >> {log}; exit 0\" HUP; trap \"\" TERM; while :; do sleep 0.05; done' & sleep 0.3; exit 0",
        log = log.display()
    );
    let started = Instant::now();
    envoke
        .run(["run", "--stop-timeout", "10s", "--", "sh", "-c", &script])
        .assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(5), "HUP stopped it");
    assert_eq!(read_lines(&log), ["HUP"]);
}
