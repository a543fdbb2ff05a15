//! envoke's exit codes: the child's own, 128+N for a signal, 125/126/127 for envoke's failures.

use serde_json::json;

use crate::support::{Bao, Envoke};

#[test]
fn the_childs_exit_code_passes_through() {
    let envoke = Envoke::new();
    envoke.run(["run", "--", "true"]).assert_code(0);
    envoke
        .run(["run", "--", "sh", "-c", "exit 3"])
        .assert_code(3);
    envoke
        .run(["run", "--", "sh", "-c", "exit 255"])
        .assert_code(255);
    envoke
        .run(["run", "--exec", "--", "sh", "-c", "exit 7"])
        .assert_code(7);
}

#[test]
fn a_child_killed_by_signal_n_gives_128_plus_n() {
    let envoke = Envoke::new();
    envoke
        .run(["run", "--", "sh", "-c", "kill -TERM $$"])
        .assert_code(128 + 15);
    envoke
        .run(["run", "--", "sh", "-c", "kill -KILL $$"])
        .assert_code(128 + 9);
}

#[test]
fn a_missing_command_is_127_and_an_unexecutable_one_126() {
    let envoke = Envoke::new().file("not-executable", "#!/bin/sh\n");
    envoke
        .run(["run", "--", "no-such-command-anywhere"])
        .assert_code(127)
        .assert_stderr_contains("command not found: no-such-command-anywhere");
    envoke
        .run(["run", "--", "./not-executable"])
        .assert_code(126)
        .assert_stderr_contains("cannot execute ./not-executable");
    envoke
        .run(["run", "--exec", "--", "no-such-command-anywhere"])
        .assert_code(127);
    envoke
        .run(["run", "--exec", "--", "./not-executable"])
        .assert_code(126);
}

/// Runs `envoke ARGS` with the core-file limit at 0 (envoke then has no limit to give back, so
/// nothing runs between fork and exec and std may use posix_spawn) and `path` as PATH.
fn run_with_no_core_limit(envoke: &Envoke, path: &str, args: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -c 0; exec \"$0\" {args}"))
        .arg(crate::support::envoke_binary())
        .current_dir(envoke.dir())
        .env_clear()
        .envs(envoke.environment().iter().map(|(k, v)| (k, v)))
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn commands_in_path_start_as_execvp_would_start_them() {
    // A script without a #! line (execvp runs it with /bin/sh), and a `tool` whose first copy
    // in PATH names a missing interpreter (execvp goes on to the next).
    let envoke = Envoke::new()
        .file("a/noshebang", "echo ran-by-sh\n")
        .file("a/tool", "#!/no/such/interpreter\n")
        .file("b/tool", "#!/bin/sh\necho second-tool\n");
    for script in ["a/noshebang", "a/tool", "b/tool"] {
        let path = envoke.dir().join(script);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        envoke.dir().join("a").display(),
        envoke.dir().join("b").display()
    );
    for (args, expected) in [
        ("run -- noshebang", "ran-by-sh"),
        ("run -- tool", "second-tool"),
        ("run --exec -- noshebang", "ran-by-sh"),
        ("run --exec -- tool", "second-tool"),
    ] {
        let output = run_with_no_core_limit(&envoke, &path, args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "{args}"
        );
    }
    // A symlink loop first in PATH ends execvp's search with ELOOP: no later `looped` runs.
    std::os::unix::fs::symlink("looped", envoke.dir().join("a/looped")).unwrap();
    let later = envoke.dir().join("b/looped");
    std::fs::write(&later, "#!/bin/sh\necho should-not-run\n").unwrap();
    std::fs::set_permissions(&later, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let output = run_with_no_core_limit(&envoke, &path, "run -- looped");
    assert_eq!(output.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&output.stdout).is_empty());
}

#[test]
fn unresolvable_references_stop_the_launch_reporting_every_failure() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "t"}));
    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
GOOD    = "vault://secret/app#token"
NO_PATH = "vault://secret/missing#token"
NO_KEY  = "vault://secret/app#nope"
"#,
    );
    let marker = envoke.dir().join("started");
    let output = envoke.run(["run", "--", "touch", marker.to_str().unwrap()]);
    output
        .assert_code(125)
        .assert_stderr_contains("2 variables cannot be resolved; the command was not started")
        .assert_stderr_contains("NO_PATH (vault://secret/missing#token): not found")
        .assert_stderr_contains(
            "NO_KEY (vault://secret/app#nope): key `nope` missing; the secret has keys: token",
        );
    assert!(!marker.exists(), "the child must not start");
    // --exec fails closed the same way.
    envoke
        .run(["run", "--exec", "--", "touch", marker.to_str().unwrap()])
        .assert_code(125);
    assert!(!marker.exists());
}

#[test]
fn bad_flags_are_envokes_failure() {
    let envoke = Envoke::new();
    envoke
        .run(["run", "--bogus", "--", "true"])
        .assert_code(125);
    envoke.run(["run"]).assert_code(125);
    let version = envoke.run(["--version"]);
    version.assert_code(0);
    assert!(version.stdout.starts_with("envoke "), "{}", version.stdout);
}

#[test]
fn logs_go_to_stderr_and_quiet_silences_warnings() {
    let envoke = Envoke::new()
        .env("LOG_LEVEL", "debug")
        .manifest("[env]\nLOG_LEVEL = \"info\"\n");
    let output = envoke.run(["-v", "run", "--", "sh", "-c", "echo child-out"]);
    output.assert_code(0);
    assert_eq!(output.stdout, "child-out\n", "stdout is the child's alone");
    output.assert_stderr_contains("LOG_LEVEL");
    let quiet = envoke.run(["run", "-q", "--", "true"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "");
}
