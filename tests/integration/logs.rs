//! Logs for machines: `--log-format json`, timestamps, and the audit events (target
//! `envoke::audit`) that say which process got which secret version, when, as whom. Never a
//! value, never a credential. docs/logging.md describes what these tests check.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Bao, Envoke, Moto, ROOT_TOKEN, Supervised, poll};

/// Every line of `stderr` as a JSON object; fails naming the line that is not one, or that lacks
/// `timestamp`, `level` or `message`.
#[track_caller]
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n--- stderr\n{stderr}"));
            for key in ["level", "message"] {
                assert!(event[key].is_string(), "no {key}: {line}");
            }
            assert!(
                is_rfc3339(event["timestamp"].as_str().unwrap_or_default()),
                "timestamp: {line}"
            );
            event
        })
        .collect()
}

/// `2026-01-31T12:34:56.123456Z` and the like: a UTC RFC 3339 date-time.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    text.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && text.ends_with('Z')
}

/// The audit events of one kind (`event` field), in order.
fn audit<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["target"] == "envoke::audit" && e["event"] == kind)
        .collect()
}

/// The `secret.resolve` events by variable.
fn resolutions<'a>(events: &'a [Value], cause: &str) -> BTreeMap<String, &'a Value> {
    audit(events, "secret.resolve")
        .into_iter()
        .filter(|e| e["cause"] == cause)
        .map(|e| (e["variable"].as_str().unwrap().to_owned(), e))
        .collect()
}

/// moto with `s/aws` and OpenBao with `secret/s`, and an envoke whose manifest takes `A` from
/// the one and `B` from the other; the versions of both.
fn both_backends() -> (Moto, Bao, Envoke, String, u64) {
    let moto = Moto::start();
    let bao = Bao::start();
    let (_, aws_version) = moto.create("s/aws", r#"{"k":"aws-secret-value-x1"}"#);
    let vault_version = bao.kv2_put("secret", "s", json!({"k": "vault-secret-value-x2"}));
    let envoke = Envoke::new()
        .aws(&moto)
        .vault(&bao)
        .env("AWS_SESSION_TOKEN", "session-token-x3")
        .env("AWS_SECRET_ACCESS_KEY", "secret-access-key-x4")
        .manifest("[env]\nA = \"aws-sm://s/aws#k\"\nB = \"vault://secret/s#k\"\n");
    (moto, bao, envoke, aws_version, vault_version)
}

const NEVER_SHOWN: [&str; 5] = [
    "aws-secret-value-x1",
    "vault-secret-value-x2",
    "session-token-x3",
    "secret-access-key-x4",
    ROOT_TOKEN,
];

#[test]
fn json_logs_are_one_object_per_line_with_timestamp_level_message_and_no_value() {
    let (_moto, _bao, envoke, _, _) = both_backends();
    for (extra, args) in [
        (
            vec![],
            &["--log-format", "json", "-vvv", "run", "--", "true"][..],
        ),
        (
            vec![("ENVOKE_LOG_FORMAT", "json")],
            &["-vv", "run", "--", "true"],
        ),
        (
            vec![("ENVOKE_LOG_FORMAT", "json"), ("RUST_LOG", "trace")],
            &["run", "--", "true"],
        ),
    ] {
        let output = envoke.run_with(&extra, args);
        output.assert_code(0);
        for secret in NEVER_SHOWN {
            output.assert_never_shows(secret);
        }
        let events = json_lines(&output.stderr);
        assert!(
            events.iter().any(|e| e["message"] == "started the command"),
            "{}",
            output.stderr
        );
        // Fields are flattened next to the message.
        let started = events
            .iter()
            .find(|e| e["message"] == "started the command")
            .unwrap();
        assert!(started["pid"].is_u64(), "{started}");
        assert_eq!(resolutions(&events, "start").len(), 2, "{}", output.stderr);
    }
    // envoke's own failure is a JSON line too, its multi-line message escaped into it.
    let failing = envoke.file("bad.toml", "[env]\nC = \"vault://secret/s#missing\"\n");
    let output = failing.run([
        "--log-format",
        "json",
        "run",
        "-m",
        "bad.toml",
        "--",
        "true",
    ]);
    output.assert_code(125);
    let events = json_lines(&output.stderr);
    let last = events.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("C (vault://secret/s#missing): key `missing` missing"),
        "{last}"
    );
}

#[test]
fn text_logs_to_a_non_terminal_are_timestamped() {
    let envoke = Envoke::new().manifest("[env]\nGREETING = \"hi\"\n");
    let output = envoke.run(["-v", "run", "--", "true"]);
    output.assert_code(0);
    assert!(!output.stderr.is_empty());
    for line in output.stderr.lines() {
        let (timestamp, rest) = line.split_once(' ').unwrap();
        assert!(is_rfc3339(timestamp), "{line}");
        assert!(rest.trim_start().starts_with("INFO"), "{line}");
    }
}

#[test]
fn a_run_audits_each_variable_with_reference_backend_version_identity_and_the_childs_pid() {
    let (_moto, _bao, envoke, aws_version, vault_version) = both_backends();
    // Without -v: audit events are on by default, and are all that shows.
    let output = envoke.run(["--log-format", "json", "run", "--", "sh", "-c", "echo $$"]);
    output.assert_code(0);
    for secret in NEVER_SHOWN {
        output.assert_never_shows(secret);
    }
    let pid: u64 = output.stdout.trim().parse().unwrap();
    let events = json_lines(&output.stderr);
    assert!(
        events.iter().all(|e| e["target"] == "envoke::audit"),
        "{}",
        output.stderr
    );
    let resolved = resolutions(&events, "start");
    assert_eq!(resolved.len(), 2, "{}", output.stderr);
    let a = resolved["A"];
    assert_eq!(a["reference"], "aws-sm://s/aws#k");
    assert_eq!(a["backend"], "aws");
    assert_eq!(a["version"], aws_version.as_str());
    assert_eq!(a["identity"], "environment keys");
    assert_eq!(a["pid"], pid);
    assert_eq!(a["level"], "INFO");
    let b = resolved["B"];
    assert_eq!(b["reference"], "vault://secret/s#k");
    assert_eq!(b["backend"], "vault");
    assert_eq!(b["version"], vault_version.to_string().as_str());
    assert_eq!(b["identity"], "token");
    assert_eq!(b["pid"], pid);

    // With --exec the command keeps envoke's PID, and that is the one audited.
    let output = envoke.run([
        "--log-format=json",
        "run",
        "--exec",
        "--",
        "sh",
        "-c",
        "echo $$",
    ]);
    output.assert_code(0);
    let pid: u64 = output.stdout.trim().parse().unwrap();
    let events = json_lines(&output.stderr);
    assert!(
        resolutions(&events, "start")
            .values()
            .all(|e| e["pid"] == pid)
    );

    // As text, the same events.
    let output = envoke.run(["run", "--", "true"]);
    output
        .assert_code(0)
        .assert_stderr_contains("secret resolved for the command")
        .assert_stderr_contains("event=\"secret.resolve\"")
        .assert_stderr_contains("variable=\"A\"");

    // A check reads the secrets too: audited, given to no process.
    let output = envoke.run(["--log-format", "json", "check"]);
    output.assert_code(0);
    let checked = json_lines(&output.stderr);
    let checked = resolutions(&checked, "check");
    assert_eq!(checked.len(), 2, "{}", output.stderr);
    assert!(checked.values().all(|e| e.get("pid").is_none()));

    // -q silences them.
    let quiet = envoke.run(["-q", "run", "--", "true"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "");
}

/// Waits until envoke's JSON logs hold an event that `wanted` accepts; returns them all.
#[track_caller]
fn wait_event(supervised: &Supervised, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let events = poll(Duration::from_secs(15), || {
        let logs = supervised.logs();
        // The last line may be half written.
        let complete = &logs[..logs.rfind('\n').map_or(0, |i| i + 1)];
        let events = json_lines(complete);
        events.iter().any(&wanted).then_some(events)
    });
    match events {
        Some(events) => events,
        None => panic!("no such event within 15 s\n{}", supervised.logs()),
    }
}

#[test]
fn a_watch_restart_audits_the_new_version_and_the_new_pid() {
    let moto = Moto::start();
    let (_, first) = moto.create("rotating", "first-value-x5");
    let envoke = Envoke::new()
        .aws(&moto)
        .env("ENVOKE_LOG_FORMAT", "json")
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let watched = Supervised::start(
        &envoke,
        &["--watch", "1s", "--settle", "100ms", "--sweep", "1s"],
        r#"echo $$ >> "$LOG"; exec sleep 1000"#,
    );
    let pids = watched.wait_lines(1, Duration::from_secs(15));
    let second = moto.put("rotating", "second-value-x6");
    let pids = watched.wait_lines(pids.len() + 1, Duration::from_secs(10));
    let events = wait_event(&watched, |e| e["cause"] == "restart");
    let start = &resolutions(&events, "start")["VALUE"];
    assert_eq!(start["version"], first.as_str());
    assert_eq!(start["pid"].to_string(), pids[0]);
    let restart = &resolutions(&events, "restart")["VALUE"];
    assert_eq!(restart["version"], second.as_str());
    assert_eq!(restart["pid"].to_string(), pids[1]);
    assert_eq!(restart["reference"], "aws-sm://rotating");
    let (_, logs) = watched.stop();
    assert!(!logs.contains("first-value-x5") && !logs.contains("second-value-x6"));
}

#[test]
fn an_approle_login_is_audited_by_accessor_and_revoked_at_exit() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "app-secret-value"}));
    bao.read_policy("app", &["secret/data/app", "secret/metadata/app"]);
    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    let envoke = Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .env("ENVOKE_VAULT_AUTH", "approle")
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id)
        .manifest("[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n");
    let output = envoke.run(["--log-format", "json", "run", "--", "true"]);
    output
        .assert_code(0)
        .assert_never_shows(&secret_id)
        .assert_never_shows("app-secret-value");
    let events = json_lines(&output.stderr);
    let login = audit(&events, "vault.login");
    assert_eq!(login.len(), 1, "{}", output.stderr);
    assert_eq!(login[0]["method"], "approle");
    assert_eq!(login[0]["mount"], "approle");
    let accessor = login[0]["accessor"].as_str().unwrap();
    assert!(!accessor.is_empty());
    let resolved = &resolutions(&events, "start")["APP_TOKEN"];
    assert_eq!(
        resolved["identity"],
        format!("approle login at auth/approle, accessor {accessor}")
    );
    let logout = audit(&events, "vault.token.revoke");
    assert_eq!(logout.len(), 1, "{}", output.stderr);
    assert_eq!(logout[0]["accessor"], accessor);
}

#[test]
fn a_dynamic_secret_audits_its_lease_renewal_and_revocation() {
    let (_pg, _bao, envoke) = crate::support::dynamic_database("3s", "1h");
    let envoke = envoke.env("ENVOKE_LOG_FORMAT", "json");
    let watched = Supervised::start(
        &envoke,
        &["--watch", "10s"],
        r#"echo "$DB_PASSWORD" >> "$LOG"; exec sleep 1000"#,
    );
    let password = watched.wait_lines(1, Duration::from_secs(15))[0].clone();
    // The lease's renewal falls due 2 s in.
    let events = wait_event(&watched, |e| e["event"] == "vault.lease.renew");
    let resolved = resolutions(&events, "start");
    let lease = resolved["DB_PASSWORD"]["lease"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(lease.starts_with("database/creds/app/"), "{lease}");
    assert_eq!(resolved["DB_USER"]["lease"], lease.as_str());
    let renewed = audit(&events, "vault.lease.renew");
    assert_eq!(renewed[0]["lease"], lease.as_str());
    assert_eq!(renewed[0]["secret"], "vault://database/creds/app");
    assert_eq!(renewed[0]["identity"], "token");
    let (_, logs) = watched.stop();
    assert!(!logs.contains(&password) && !logs.contains(ROOT_TOKEN));
    let events = json_lines(&logs);
    let revoked = audit(&events, "vault.lease.revoke");
    assert_eq!(revoked.len(), 1, "{logs}");
    assert_eq!(revoked[0]["lease"], lease.as_str());
}

/// On a terminal, text logs are for the person who started envoke: one line for the launch,
/// naming the command, its pid and where its secrets came from, and no audit event unless -v.
/// Piped, the audit events are there as before and the summary line is not.
#[test]
fn on_a_terminal_one_summary_line_per_launch_and_audit_events_only_with_v() {
    let (_moto, _bao, envoke, _, _) = both_backends();
    let output = envoke.run_on_terminal(["run", "--", "sh", "-c", "echo child=$$"]);
    output.assert_code(0);
    let pid = output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("child="))
        .unwrap_or_else(|| panic!("no child line\n{}", output.stdout));
    output
        .assert_stdout_contains(&format!(
            "started sh (pid {pid}) with 2 secrets: 1 from AWS us-east-1, 1 from Vault"
        ))
        .assert_stdout_lacks("secret resolved")
        .assert_stdout_lacks("secret.resolve");
    for secret in NEVER_SHOWN {
        output.assert_never_shows(secret);
    }
    // The app's line is the only other one.
    assert_eq!(output.stdout.lines().count(), 2, "{}", output.stdout);

    let verbose = envoke.run_on_terminal(["run", "-v", "--", "true"]);
    verbose
        .assert_code(0)
        .assert_stdout_contains("secret resolved for the command")
        .assert_stdout_contains("started true (pid ");

    let piped = envoke.run(["run", "--", "true"]);
    piped
        .assert_code(0)
        .assert_stderr_contains("event=\"secret.resolve\"")
        .assert_stderr_lacks("started true");
    // JSON on a terminal is for machines: the audit events, as piped.
    let json = envoke.run_on_terminal(["--log-format", "json", "run", "--", "true"]);
    json.assert_code(0)
        .assert_stdout_contains("\"event\":\"secret.resolve\"")
        .assert_stdout_lacks("started true");
    // -q: nothing at all.
    let quiet = envoke.run_on_terminal(["-q", "run", "--", "true"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stdout, "");
}

/// `envoke check` on a terminal prints its table and its verdict, not the audit events.
#[test]
fn check_on_a_terminal_prints_its_table_and_no_audit_line() {
    let (_moto, _bao, envoke, _, _) = both_backends();
    let output = envoke.run_on_terminal(["check"]);
    output
        .assert_code(0)
        .assert_stdout_contains("NAME")
        .assert_stdout_contains("all 2 variables resolve")
        .assert_stdout_lacks("secret resolved")
        .assert_stdout_lacks("started");
    assert_eq!(output.stdout.lines().count(), 4, "{}", output.stdout);
}

/// A failure that is the same for every variable (here a Vault token the server refuses) is
/// reported once, naming the variables; piped and on a terminal alike.
#[test]
fn a_failure_shared_by_every_variable_is_one_line_naming_them() {
    let bao = Bao::start();
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", "not-a-token")
        .manifest(
            "[env]\nDB_USER = \"vault://secret/db#user\"\nDB_PASS = \"vault://secret/db#pass\"\n\
             API_KEY = \"vault://secret/api#key\"\n",
        );
    let piped = envoke.run(["run", "--", "true"]);
    piped.assert_code(125).assert_stderr_contains(
        "3 variables cannot be resolved; the command was not started\n  API_KEY, DB_PASS, DB_USER: ",
    );
    let errors = piped.stderr.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(errors, 1, "{}", piped.stderr);

    let terminal = envoke.run_on_terminal(["run", "--", "true"]);
    terminal
        .assert_code(125)
        .assert_stdout_contains("  API_KEY, DB_PASS, DB_USER: ");
    assert_eq!(terminal.stdout.lines().count(), 2, "{}", terminal.stdout);

    // check: a row per variable, and the reason once under the table.
    let check = envoke.run(["check"]);
    check
        .assert_code(125)
        .assert_stdout_contains("\nAPI_KEY, DB_PASS, DB_USER: the Vault token is invalid");
    let notes = check.stdout.matches("the Vault token is invalid").count();
    assert_eq!(notes, 1, "{}", check.stdout);
}
