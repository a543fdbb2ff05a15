//! envoke as a container's PID 1 (in a new PID namespace) and as a child subreaper: orphans are
//! reaped, what is left of the child's group is stopped, exit codes pass through.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Envoke, poll_until};

/// Starts orphans (re-parented to PID 1 or to the subreaper), lets them exit, then counts the
/// zombies whose parent is envoke ($PPID) and exits with that count (0 = all reaped).
const ORPHANS: &str = r#"
for i in 1 2 3 4 5; do sh -c 'sleep 0.1 & sleep 0.1 & exit 0'; done
sh -c 'sh -c "exit 0" & exec sleep 0.2' &
sleep 1
zombies=0
for stat in /proc/[0-9]*/stat; do
  set -- $(cat "$stat" 2>/dev/null) || continue
  [ "$3" = Z ] && [ "$4" = "$PPID" ] && zombies=$((zombies + 1))
done
echo "zombies=$zombies"
exit $zombies
"#;

/// Whether this machine lets us make a PID namespace (root, and unshare(1) permitted).
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn pid1(envoke: &Envoke, args: &[&str]) -> Option<crate::support::Output> {
    if !can_unshare() {
        crate::support::cannot_run_here(
            "`unshare --pid --fork --mount-proc` is not permitted here (needs root); envoke's \
             PID 1 behaviour is not tested on this machine",
        );
        return None;
    }
    let binary = crate::support::envoke_binary();
    let mut full = vec![
        "--pid",
        "--fork",
        "--mount-proc",
        binary.to_str().expect("the envoke binary's path is UTF-8"),
    ];
    full.extend_from_slice(args);
    let mut unshare = Command::new("unshare");
    unshare
        .args(&full)
        .current_dir(envoke.dir())
        .env_clear()
        .envs(envoke.environment().iter().map(|(k, v)| (k, v)));
    let output = unshare.output().unwrap();
    Some(crate::support::Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[test]
fn as_pid_1_envoke_reaps_every_orphan() {
    let envoke = Envoke::new();
    let Some(output) = pid1(&envoke, &["run", "--", "sh", "-c", ORPHANS]) else {
        return;
    };
    output.assert_code(0);
    assert_eq!(output.stdout.trim(), "zombies=0");
}

#[test]
fn as_pid_1_exit_codes_pass_through() {
    let envoke = Envoke::new();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
    ] {
        let Some(output) = pid1(&envoke, &["run", "--", "sh", "-c", script]) else {
            return;
        };
        output.assert_code(code);
    }
}

#[test]
fn as_a_subreaper_envoke_reaps_orphans_of_its_child() {
    let output = Envoke::new().run(["run", "--", "sh", "-c", ORPHANS]);
    output.assert_code(0);
    assert_eq!(output.stdout.trim(), "zombies=0");
}

#[test]
fn what_is_left_of_the_group_is_stopped_when_the_main_child_exits() {
    let envoke = Envoke::new();
    let pidfile = envoke.dir().join("leftover.pid");
    let script = format!("sleep 300 & echo $! > {}; exit 4", pidfile.display());
    let start = Instant::now();
    envoke
        .run(["run", "--stop-timeout", "5s", "--", "sh", "-c", &script])
        .assert_code(4);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "a leftover that obeys TERM is stopped at once"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the leftover sleep {pid} still runs"
    );
}

#[test]
fn a_leftover_that_ignores_the_stop_signal_is_killed_after_the_timeout() {
    let envoke = Envoke::new();
    let pidfile = envoke.dir().join("leftover.pid");
    let script = format!(
        "sh -c 'trap \"\" TERM; while :; do sleep 0.05; done' & echo $! > {}; sleep 0.2; exit 0",
        pidfile.display()
    );
    let start = Instant::now();
    envoke
        .run(["run", "--stop-timeout", "500ms", "--", "sh", "-c", &script])
        .assert_code(0);
    assert!(start.elapsed() >= Duration::from_millis(500));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed before envoke exited; gone once its new parent reaped it.
    poll_until(
        Duration::from_secs(5),
        &format!("the leftover {pid} to be gone"),
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    );
}
