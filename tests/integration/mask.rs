//! `--mask`: the child's output passes through envoke with every resolved value replaced by
//! `****`, as it is written, and nothing else about the child changes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{Bao, Envoke, Supervised, wait_for_exit};

/// An envoke whose manifest gives the child `PW` (a secret, `abcdef`) and `LITERAL` (a plain
/// value from the manifest).
fn with_secret(bao: &Bao) -> Envoke {
    bao.kv2_put("secret", "app", json!({"password": "abcdef"}));
    Envoke::new()
        .vault(bao)
        .manifest("[env]\nPW = \"vault://secret/app#password\"\nLITERAL = \"visible-literal\"\n")
}

/// `envoke run [flags] -- sh -c SCRIPT`: exit code, stdout and stderr as bytes.
fn run_raw(envoke: &Envoke, flags: &[&str], script: &str) -> (Option<i32>, Vec<u8>, String) {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let output = envoke.command(&args).output().unwrap();
    (
        output.status.code(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_secret_the_child_prints_is_masked_on_stdout_and_stderr_and_the_rest_is_unchanged() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    let script = r#"
printf 'pw=%s\n' "$PW"
printf 'on stderr: %s!\n' "$PW" >&2
printf 'abc'; sleep 0.2; printf 'def\n'
printf 'bytes \377\001\tstay %s\n' "$LITERAL"
exit 3
"#;
    let (code, stdout, stderr) = run_raw(&envoke, &["--mask"], script);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(
        stdout,
        b"pw=****\n****\nbytes \xff\x01\tstay visible-literal\n",
        "{}",
        String::from_utf8_lossy(&stdout)
    );
    assert!(stderr.contains("on stderr: ****!\n"), "{stderr}");
    assert!(!stderr.contains("abcdef"), "{stderr}");
}

#[test]
fn a_child_killed_by_a_signal_still_gives_128_plus_n() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    let (code, stdout, stderr) = run_raw(&envoke, &["--mask"], r#"echo "$PW"; kill -KILL $$"#);
    assert_eq!(code, Some(137), "{stderr}");
    assert_eq!(stdout, b"****\n");
}

#[test]
fn the_childs_last_output_is_all_written_before_envoke_exits() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    // More than a pipe holds, the secret at the very end, and a tail that could begin it.
    let script = r#"
head -c 300000 /dev/zero | tr '\0' x
printf '\n%s\nabc' "$PW"
exec >&-
"#;
    let (code, stdout, stderr) = run_raw(&envoke, &["--mask"], script);
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected = vec![b'x'; 300_000];
    expected.extend_from_slice(b"\n****\nabc");
    assert!(stdout == expected, "{} bytes, ends {:?}", stdout.len(), {
        let from = stdout.len().saturating_sub(20);
        String::from_utf8_lossy(&stdout[from..]).into_owned()
    });
}

#[test]
fn a_child_that_closes_stdout_early_keeps_stderr_and_its_exit_code() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    let script = r#"echo "out $PW"; exec >&-; sleep 0.3; echo "err $PW" >&2; exit 5"#;
    let (code, stdout, stderr) = run_raw(&envoke, &["--mask"], script);
    assert_eq!(code, Some(5), "{stderr}");
    assert_eq!(stdout, b"out ****\n");
    assert!(stderr.contains("err ****\n"), "{stderr}");
}

#[test]
fn a_line_reaches_envokes_stdout_while_the_child_still_runs() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    let mut child = envoke
        .command([
            "run",
            "--mask",
            "--",
            "sh",
            "-c",
            r#"echo "ready $PW"; sleep 2; echo done"#,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let line_arrived = Instant::now();
    assert_eq!(line, "ready ****\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "done\n");
    assert!(
        line_arrived.elapsed() > Duration::from_millis(1500),
        "the line came only {:?} before the end of the output",
        line_arrived.elapsed()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_reader_that_goes_away_ends_a_writing_child_as_without_mask() {
    let bao = Bao::start();
    let envoke = with_secret(&bao);
    let mut child = envoke
        .command(["run", "--mask", "--", "sh", "-c", r#"exec yes "$PW""#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "****\n");
    drop(stdout);
    let status = wait_for_exit(&mut child, Duration::from_secs(10)).expect("envoke did not end");
    // `yes` dies of SIGPIPE, as it would writing to the closed pipe itself.
    assert_eq!(status.code(), Some(128 + Signal::SIGPIPE as i32));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn after_a_rotation_restart_the_new_value_is_masked_too() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "first-token"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nVALUE = \"vault://secret/app#token\"\n");
    let running = Supervised::start(
        &envoke,
        &["--mask", "--watch", "1s"],
        r#"echo "started with $VALUE"; exec sleep 1000"#,
    );
    assert_eq!(
        running.wait_stdout_lines(1, Duration::from_secs(20)),
        ["started with ****"]
    );
    bao.kv2_put("secret", "app", json!({"token": "second-token"}));
    assert_eq!(
        running.wait_stdout_lines(2, Duration::from_secs(20)),
        ["started with ****", "started with ****"]
    );
    let (code, stdout, stderr) = running.stop_with_output();
    assert_eq!(code, Some(143), "{stderr}");
    for value in ["first-token", "second-token"] {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{stdout}\n{stderr}"
        );
    }
    assert!(stderr.contains("started the command again"), "{stderr}");
}

#[test]
fn with_signal_on_change_a_new_value_in_a_secret_file_is_masked() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "first-token"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nTOKEN_FILE = { ref = \"vault://secret/app#token\", file = true }\n")
        // The environment variable works like the flag.
        .env("ENVOKE_MASK", "1");
    let script = r#"
trap 'echo "now $(cat "$TOKEN_FILE")"' HUP
echo "first $(cat "$TOKEN_FILE")"
while :; do sleep 0.05; done
"#;
    let running = Supervised::start(
        &envoke,
        &["--watch", "1s", "--on-change", "signal:HUP"],
        script,
    );
    assert_eq!(
        running.wait_stdout_lines(1, Duration::from_secs(20)),
        ["first ****"]
    );
    bao.kv2_put("secret", "app", json!({"token": "second-token"}));
    assert_eq!(
        running.wait_stdout_lines(2, Duration::from_secs(20)),
        ["first ****", "now ****"]
    );
    let (_, stdout, stderr) = running.stop_with_output();
    for value in ["first-token", "second-token"] {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{stdout}\n{stderr}"
        );
    }
}

#[test]
fn a_value_too_short_to_mask_is_named_in_a_warning_and_left_visible() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "app",
        json!({"flag": "on", "password": "long-enough"}),
    );
    let envoke = Envoke::new().vault(&bao).manifest(
        "[env]\nFLAG = \"vault://secret/app#flag\"\nPW = \"vault://secret/app#password\"\n",
    );
    let (code, stdout, stderr) = run_raw(&envoke, &["--mask"], r#"echo "$FLAG $PW""#);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, b"on ****\n");
    assert!(
        stderr.contains("FLAG") && stderr.contains("too short to mask"),
        "{stderr}"
    );
}

#[test]
fn without_mask_the_child_writes_to_envokes_own_stdout() {
    let envoke = Envoke::new().manifest("[env]\nA = \"b\"\n");
    let where_stdout_goes = |envoke: &Envoke, flags: &[&str]| {
        let path = envoke.dir().join("out");
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "readlink", "/proc/self/fd/1"]);
        let status = envoke
            .command(&args)
            .stdout(std::fs::File::create(&path).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        read(&path).trim().to_owned()
    };
    let first = where_stdout_goes(&envoke, &[]);
    let own = envoke.dir().join("out").canonicalize().unwrap();
    let own = own.to_string_lossy();
    assert_eq!(first, own);
    let envoke = envoke.env("ENVOKE_MASK", "false");
    assert_eq!(where_stdout_goes(&envoke, &[]), own);
    let envoke = envoke.env("ENVOKE_MASK", "true");
    assert!(where_stdout_goes(&envoke, &[]).starts_with("pipe:"));
}

#[test]
fn mask_with_exec_is_refused() {
    let envoke = Envoke::new();
    envoke
        .run(["run", "--mask", "--exec", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--mask needs envoke between the command and its output");
    Envoke::new()
        .env("ENVOKE_MASK", "1")
        .run(["run", "--exec", "--", "true"])
        .assert_code(125);
}
