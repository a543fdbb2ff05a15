//! envoke's own process: no core file, no same-user ptrace or /proc/PID/mem read, while the
//! command it starts gets its ordinary core limit and dumpable state back (SECURITY.md).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Envoke, wait_for_exit, wait_lines};

/// Writes the command's pid to `$PIDS`, then waits.
const WRITES_PID: &str = r#"echo $$ > "$PIDS.new"; mv "$PIDS.new" "$PIDS"; exec sleep 60"#;

/// envoke (pid of `supervisor`) and its command, which wrote its pid to `pids`.
struct Running {
    supervisor: Child,
    command: u32,
}

impl Running {
    fn start(mut command: Command, pids: &Path) -> Running {
        let supervisor = command
            .env("PIDS", pids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = wait_lines(pids, 1, Duration::from_secs(10));
        Running {
            supervisor,
            command: lines[0].parse().unwrap(),
        }
    }

    fn envoke(&self) -> u32 {
        self.supervisor.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.command as i32), Signal::SIGKILL);
        // `Child::kill` sends nothing once the child was reaped (its pid may be another's).
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

/// The soft and hard core-file limits in `/proc/PID/limits`.
fn core_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = line["Max core file size".len()..]
        .split_whitespace()
        .collect();
    (fields[0].to_owned(), fields[1].to_owned())
}

/// envoke started by `sh` with an unlimited core-file limit, as `ulimit -c unlimited` does.
fn with_unlimited_core(envoke: &Envoke, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", r#"ulimit -c unlimited && exec "$ENVOKE" "$@""#, "sh"])
        .args(args)
        .current_dir(envoke.dir())
        .env_clear()
        .envs(envoke.environment().iter().map(|(k, v)| (k, v)))
        .env("ENVOKE", crate::support::envoke_binary())
        .stdin(Stdio::null());
    command
}

#[test]
fn envoke_has_no_core_limit_and_the_command_gets_the_original_one_back() {
    let envoke = Envoke::new();
    let pids = envoke.dir().join("pids");
    let running = Running::start(
        with_unlimited_core(&envoke, &["run", "--", "sh", "-c", WRITES_PID]),
        &pids,
    );
    assert_eq!(
        core_limit(running.envoke()),
        ("0".to_owned(), "unlimited".to_owned()),
        "envoke writes no core file"
    );
    assert_eq!(
        core_limit(running.command),
        ("unlimited".to_owned(), "unlimited".to_owned()),
        "the command's own limit is restored"
    );
}

#[test]
fn a_crashing_envoke_writes_no_core_file() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim_start().starts_with('|') || pattern.contains('/') {
        crate::support::cannot_run_here(&format!(
            "core files go to {pattern:?} here, not the working directory; the core limit \
             itself is tested above"
        ));
        return;
    }
    let envoke = Envoke::new();
    let pids = envoke.dir().join("pids");
    let mut running = Running::start(
        with_unlimited_core(&envoke, &["run", "--", "sh", "-c", WRITES_PID]),
        &pids,
    );
    kill(Pid::from_raw(running.envoke() as i32), Signal::SIGABRT).unwrap();
    // The kernel writes a core file before the process ends: once it has exited, any is there.
    wait_for_exit(&mut running.supervisor, Duration::from_secs(10)).expect("envoke did not abort");
    drop(running);
    let cores: Vec<String> = std::fs::read_dir(envoke.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

/// Whether `nobody` can open `/proc/PID/mem` for reading (which needs ptrace access).
fn nobody_can_open_memory_of(pid: u32) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("exec 3< /proc/{pid}/mem"))
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn owner_of_proc(pid: u32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid()
}

#[test]
fn the_same_user_cannot_read_envokes_memory_but_can_read_the_commands() {
    if !nix::unistd::geteuid().is_root() {
        crate::support::cannot_run_here(
            "switching to `nobody` needs root; envoke's dumpable state is not tested on this \
             machine",
        );
        return;
    }
    // envoke and the reader both run as nobody: only envoke's own non-dumpable state stands
    // between them.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let pids = shared.path().join("pids");
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::support::envoke_binary())
        .args(["run", "--", "sh", "-c", WRITES_PID])
        .current_dir(shared.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", shared.path())
        .stdin(Stdio::null());
    let running = Running::start(command, &pids);
    assert_eq!(
        owner_of_proc(running.envoke()),
        0,
        "a non-dumpable process's /proc files belong to root"
    );
    assert!(
        !nobody_can_open_memory_of(running.envoke()),
        "nobody read envoke's memory"
    );
    assert_eq!(
        owner_of_proc(running.command),
        65534,
        "the command is dumpable"
    );
    assert!(
        nobody_can_open_memory_of(running.command),
        "the command's memory is its user's, as without envoke"
    );
}
