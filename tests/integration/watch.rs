//! Rotation: the child is restarted (or signalled) when a referenced secret changes, and left
//! alone when nothing it uses changed or a backend is down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::Proxy;
use crate::support::{Bao, Envoke, Moto, Supervised, read_lines, wait_lines_or_explain};

/// A child that appends `$VALUE` to `$LOG` each time it starts, then waits.
const LOGS_VALUE_ON_START: &str = r#"echo "$VALUE" >> "$LOG"; exec sleep 1000"#;

/// A supervised `sh -c script` under `flags`, once the script logged its first line.
fn watched(envoke: &Envoke, flags: &[&str], script: &str) -> Supervised {
    let watched = Supervised::start(envoke, flags, script);
    watched.wait_lines(1, Duration::from_secs(15));
    watched
}

/// The quickest watch envoke allows: 1 s polls, the 100 ms settle floor, and a sweep at every
/// poll (moto's secrets have no rotation schedule, so they are quiet and only swept).
const FAST: &[&str] = &["--watch", "1s", "--settle", "100ms", "--sweep", "1s"];

#[test]
fn an_aws_put_secret_value_restarts_the_child_with_the_new_value() {
    let moto = Moto::start();
    moto.create("rotating", r#"{"password":"first"}"#);
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating#password\"\n");
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    moto.put("rotating", r#"{"password":"second"}"#);
    let lines = watched.wait_lines(2, Duration::from_secs(10));
    assert_eq!(lines, ["first", "second"]);
    let (code, logs) = watched.stop();
    assert_eq!(code, Some(143), "{logs}");
    assert!(logs.contains("AWSCURRENT moved from version"), "{logs}");
    assert!(
        !logs.contains("first") && !logs.contains("second"),
        "{logs}"
    );
}

#[test]
fn an_aws_stage_moved_by_update_secret_version_stage_restarts_the_child() {
    let moto = Moto::start();
    let (_, first) = moto.create("staged", "one");
    let pending = moto
        .block_on(
            moto.client()
                .put_secret_value()
                .secret_id("staged")
                .secret_string("two")
                .version_stages("AWSPENDING")
                .send(),
        )
        .unwrap()
        .version_id
        .unwrap();
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://staged\"\n");
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    // A pending version alone changes nothing (a sleep: no restart over a poll or more).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(watched.lines(), ["one"]);
    moto.block_on(
        moto.client()
            .update_secret_version_stage()
            .secret_id("staged")
            .version_stage("AWSCURRENT")
            .move_to_version_id(&pending)
            .remove_from_version_id(&first)
            .send(),
    )
    .unwrap();
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["one", "two"]
    );
    watched.stop();
}

#[test]
fn a_new_kv_v2_version_restarts_the_child_and_unrelated_changes_do_not() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "t1", "other": "o1"}));
    bao.kv2_put("secret", "unrelated", json!({"x": "1"}));
    let envoke = Envoke::new().vault(&bao).manifest(
        "[env]\nVALUE = \"vault://secret/app#token\"\nPINNED = \"vault://secret/app?version=1#token\"\n",
    );
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    // An unreferenced key and an unreferenced secret change: no restart.
    bao.kv2_put("secret", "app", json!({"token": "t1", "other": "o2"}));
    bao.kv2_put("secret", "unrelated", json!({"x": "2"}));
    // The poll that sees the new version fetches it again, compares, and says so.
    watched.wait_until(
        Duration::from_secs(15),
        "envoke to find no variable changed",
        || watched.logs().contains("no variable's value did"),
    );
    assert_eq!(watched.lines(), ["t1"], "{}", watched.logs());
    // The referenced key changes: one restart.
    bao.kv2_put("secret", "app", json!({"token": "t2", "other": "o2"}));
    assert_eq!(watched.wait_lines(2, Duration::from_secs(10)), ["t1", "t2"]);
    // A sleep: no second restart over the next polls.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(watched.lines().len(), 2, "exactly one restart");
    let (_, logs) = watched.stop();
    assert!(!logs.contains("t2"), "{logs}");
}

#[test]
fn a_kv_v1_change_is_seen_by_keyed_hash() {
    let bao = Bao::start();
    bao.mount_kv("kv1", 1);
    bao.kv1_put("kv1", "app", json!({"token": "v1-a"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nVALUE = \"vault://kv1/app#token\"\n");
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    bao.kv1_put("kv1", "app", json!({"token": "v1-b"}));
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["v1-a", "v1-b"]
    );
    watched.stop();
}

#[test]
fn signal_mode_rewrites_the_secret_file_and_signals_without_restarting() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "file-1"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nTOKEN_FILE = { ref = \"vault://secret/app#token\", file = true }\n");
    // Logs the file's content at start and on each HUP; $$ shows whether it was restarted. The
    // path is written first: the test reads it once the first line is logged.
    let script = r#"
log_it() { echo "$$ $(cat "$TOKEN_FILE") $(stat -c %a "$TOKEN_FILE")" >> "$LOG"; }
trap log_it HUP
echo "$TOKEN_FILE" > "$LOG.path"
log_it
while :; do sleep 0.05; done
"#;
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--on-change", "signal:HUP"]);
    let watched = watched(&envoke, &flags, script);
    let first = watched.lines()[0].clone();
    let path = std::fs::read_to_string(format!("{}.path", watched.log_path().display())).unwrap();
    let path = PathBuf::from(path.trim());
    assert!(first.ends_with(" file-1 600"), "{first}");
    bao.kv2_put("secret", "app", json!({"token": "file-2"}));
    let lines = watched.wait_lines(2, Duration::from_secs(10));
    let pid = first.split(' ').next().unwrap();
    assert_eq!(
        lines[1],
        format!("{pid} file-2 600"),
        "same process, new content"
    );
    assert!(path.exists());
    watched.stop();
    assert!(!path.exists(), "the secret file is removed on exit");
    assert!(!path.parent().unwrap().exists(), "and its directory");
}

#[test]
fn exit_mode_exits_with_75_after_a_change() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "a"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nVALUE = \"vault://secret/app#token\"\n[watch]\ninterval = \"1s\"\nsettle = \"100ms\"\non_change = \"exit\"\n");
    let mut watched = watched(&envoke, &[], LOGS_VALUE_ON_START);
    bao.kv2_put("secret", "app", json!({"token": "b"}));
    assert_eq!(watched.wait_exit(Duration::from_secs(10)), Some(75));
    assert_eq!(watched.lines(), ["a"]);
}

#[test]
fn a_backend_outage_keeps_the_child_running_and_watching_recovers() {
    let bao = Bao::start();
    let proxy = crate::support::proxy::Proxy::start(bao.addr.trim_start_matches("http://"));
    bao.kv2_put("secret", "app", json!({"token": "tok-before-9f"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_ADDR", &proxy.addr)
        .manifest("[env]\nVALUE = \"vault://secret/app#token\"\n");
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    proxy.fail();
    // The secret rotates during the outage; envoke cannot see it yet.
    bao.kv2_put("secret", "app", json!({"token": "tok-after-9f"}));
    // Two failed checks: envoke acted on the first one before it made the second.
    watched.wait_until(Duration::from_secs(15), "two failed checks", || {
        watched.logs().matches("cannot check for a change").count() >= 2
    });
    assert_eq!(
        watched.lines(),
        ["tok-before-9f"],
        "the child keeps running"
    );
    proxy.recover();
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(15)),
        ["tok-before-9f", "tok-after-9f"]
    );
    let (_, logs) = watched.stop();
    assert!(
        !logs.contains("tok-before-9f") && !logs.contains("tok-after-9f"),
        "{logs}"
    );
}

#[test]
fn a_lease_that_cannot_be_renewed_during_an_outage_is_retried_with_backoff() {
    let (_pg, bao, envoke) = crate::support::dynamic_database("3s", "1h");
    let proxy = crate::support::proxy::Proxy::start(bao.addr.trim_start_matches("http://"));
    let envoke = envoke.env("VAULT_ADDR", &proxy.addr);
    let watched = watched(&envoke, &["--watch", "10s"], LOGS_VALUE_ON_START);
    proxy.fail();
    let failed = Instant::now();
    // The renewal falls due 2 s in and fails; retries back off (1-2 s, 2-4 s, ...), not spin.
    watched.wait_until(Duration::from_secs(15), "a failed renewal", || {
        watched.logs().contains("cannot check for a change")
    });
    // A sleep: the rest of a 6 s window in which retries must not pile up.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(failed.elapsed()));
    let window = failed.elapsed();
    let retries = watched.logs().matches("cannot check for a change").count();
    assert!(
        (1..=6).contains(&retries),
        "{retries} failed checks in {window:?}\n{}",
        watched
            .logs()
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    proxy.recover();
}

#[test]
fn dynamic_credentials_are_renewed_replaced_before_max_ttl_and_revoked_on_exit() {
    let (pg, _bao, envoke) = crate::support::dynamic_database("3s", "9s");
    let script = r#"echo "$DB_USER $DB_PASSWORD" >> "$LOG"; exec sleep 1000"#;
    let started = Instant::now();
    let watched = watched(&envoke, &["--watch", "1s", "--settle", "100ms"], script);
    let first = watched.lines()[0].clone();
    let (user, password) = first.split_once(' ').unwrap();
    // Past default_ttl, the renewed lease keeps the credentials alive (a sleep: the clock has to
    // pass the TTL; the renewal itself shows only in that the login still works).
    std::thread::sleep(Duration::from_millis(4500).saturating_sub(started.elapsed()));
    assert!(
        pg.can_log_in(user, password),
        "renewed past default_ttl\n{}",
        watched.logs()
    );
    assert_eq!(watched.lines().len(), 1, "renewal is not a change");
    // Before max_ttl, fresh credentials replace them (a restart with a new user).
    let lines = watched.wait_lines(2, Duration::from_secs(9));
    assert!(started.elapsed() < Duration::from_secs(9) + Duration::from_millis(900));
    let (new_user, new_password) = lines[1].split_once(' ').unwrap();
    assert_ne!(new_user, user);
    assert!(pg.can_log_in(new_user, new_password));
    assert!(
        !pg.can_log_in(user, password),
        "the replaced lease was revoked"
    );
    let (_, logs) = watched.stop();
    assert!(
        !pg.can_log_in(new_user, new_password),
        "revoked on exit\n{logs}"
    );
    assert!(
        !logs.contains(new_password) && !logs.contains(password),
        "{logs}"
    );
}

#[test]
fn exec_cannot_watch_or_hold_secret_files() {
    let envoke = Envoke::new().manifest("[env]\nA = { value = \"x\", file = true }\n");
    envoke
        .run(["run", "--exec", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--exec leaves no envoke behind");
    Envoke::new()
        .run(["run", "--exec", "--watch", "1s", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--exec leaves no envoke behind");
}

#[test]
fn a_literal_secret_file_is_private_and_removed_on_exit() {
    let envoke = Envoke::new().manifest("[env]\nCONF = { value = \"hello\", file = true }\n");
    let output = envoke.run([
        "run",
        "--",
        "sh",
        "-c",
        r#"echo "$CONF"; cat "$CONF"; echo; stat -c %a "$(dirname "$CONF")""#,
    ]);
    output.assert_code(0);
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(&lines[1..], ["hello", "700"], "{}", output.stdout);
    assert!(!Path::new(lines[0]).exists(), "removed on exit");
}

#[test]
fn credentials_from_credential_process_keep_working_while_the_child_is_supervised() {
    // aws-vault, granted, 1Password and Okta helpers hand out short-lived keys through
    // `credential_process`. Keys that expire within seconds make the SDK run the helper again for
    // every poll: a child of envoke that the SDK waits for by pid, while envoke's reaper collects
    // the orphans the command leaves behind (one every 50 ms here) with waitpid(-1).
    let moto = Moto::start();
    moto.create("rotating", r#"{"password":"first"}"#);
    let envoke = Envoke::new().aws(&moto);
    let helper_log = envoke.dir().join("helper.log");
    let helper = envoke.dir().join("credentials.sh");
    let in_five_seconds = r#"$(date -u -d @$(($(date +%s) + 5)) +%Y-%m-%dT%H:%M:%SZ)"#;
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho run >> '{}'\nprintf '{{\"Version\": 1, \"AccessKeyId\": \"helper\",              \"SecretAccessKey\": \"helper\", \"Expiration\": \"%s\"}}' \"{in_five_seconds}\"\n",
            helper_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let envoke = envoke
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_PROFILE", "helper")
        .file(
            ".aws/config",
            &format!(
                "[profile helper]\ncredential_process = {}\n",
                helper.display()
            ),
        )
        .manifest("[env]\nVALUE = \"aws-sm://rotating#password\"\n");
    let leaves_orphans = r#"echo "$VALUE" >> "$LOG"; while :; do (sleep 0.05 &); sleep 0.05; done"#;
    let watched = watched(&envoke, FAST, leaves_orphans);
    // A helper run per poll, each racing the reaper's waitpid(-1) over about a hundred orphans.
    wait_lines_or_explain(&helper_log, 6, Duration::from_secs(20), || watched.logs());
    moto.put("rotating", r#"{"password":"second"}"#);
    let lines = watched.wait_lines(2, Duration::from_secs(10));
    assert_eq!(lines, ["first", "second"]);
    let (code, logs) = watched.stop();
    assert_eq!(code, Some(143), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
}

#[test]
fn a_signalled_command_keeps_its_replaced_credentials_for_the_stop_timeout() {
    // Renewed at 4 s for 6 s more; at 8 s only 5 s are left: replaced then, with the old
    // credentials good until 13 s unless envoke revokes them, 2 s (the stop timeout) after.
    let (pg, _bao, envoke) = crate::support::dynamic_database("6s", "13s");
    let script = r#"echo "$DB_USER $DB_PASSWORD" >> "$LOG"; trap 'echo reload >> "$LOG"' HUP; while :; do sleep 0.05; done"#;
    let flags = [
        "--watch",
        "1s",
        "--settle",
        "100ms",
        "--on-change",
        "signal:HUP",
        "--stop-timeout",
        "2s",
    ];
    let watched = watched(&envoke, &flags, script);
    let first = watched.lines()[0].clone();
    let (user, password) = first.split_once(' ').unwrap();
    let lines = watched.wait_lines(2, Duration::from_secs(14));
    let signalled = Instant::now();
    assert_eq!(lines[1], "reload");
    assert!(
        pg.can_log_in(user, password),
        "revoked before the command could reload\n{}",
        watched.logs()
    );
    watched.wait_until(
        Duration::from_secs(4).saturating_sub(signalled.elapsed()),
        "the old credentials to be revoked after the stop timeout",
        || !pg.can_log_in(user, password),
    );
    let (code, logs) = watched.stop();
    assert_eq!(code, Some(143), "{logs}");
    assert!(logs.contains("revoked lease"), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
}

#[test]
fn a_secret_in_another_region_is_watched_in_its_region() {
    let moto = Moto::start();
    moto.create("rotating", r#"{"password":"home"}"#);
    moto.create_in("eu-west-1", "rotating", r#"{"password":"west-first"}"#);
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating?region=eu-west-1#password\"\n");
    let watched = watched(&envoke, FAST, LOGS_VALUE_ON_START);
    moto.put_in("eu-west-1", "rotating", r#"{"password":"west-second"}"#);
    let lines = watched.wait_lines(2, Duration::from_secs(10));
    assert_eq!(lines, ["west-first", "west-second"]);
    let (_, logs) = watched.stop();
    assert!(
        logs.contains("aws-sm://rotating?region=eu-west-1"),
        "{logs}"
    );
}

#[test]
fn a_watch_interval_or_settle_below_its_floor_is_an_error_not_a_busy_loop() {
    let envoke = Envoke::new();
    envoke
        .run(["run", "--watch", "1ns", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid --watch (ENVOKE_WATCH): 1ns is below the floor of 1s");
    envoke
        .run(["run", "--watch", "1s", "--settle", "10ms", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid --settle: 10ms is below the floor of 100ms");
    Envoke::new()
        .env("ENVOKE_WATCH", "999ms")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--watch (ENVOKE_WATCH): 999ms is below the floor of 1s");
    Envoke::new()
        .manifest("[watch]\ninterval = \"300ms\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid setting `[watch] interval` in envoke.toml: 300ms");
    Envoke::new()
        .manifest("[watch]\ninterval = \"1s\"\nsettle = \"0s\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid setting `[watch] settle` in envoke.toml: 0s is below");
    // At the floors, watching runs.
    Envoke::new()
        .run(["run", "--watch", "1s", "--settle", "100ms", "--", "true"])
        .assert_code(0);
}

#[test]
fn a_watch_duration_above_a_year_is_an_error_not_a_stopped_watch() {
    // `Instant + 300000000000y` overflowed: the watcher panicked and watching silently stopped.
    for (flag, error) in [
        (
            "--watch",
            "invalid --watch (ENVOKE_WATCH): 300000000000years is above the ceiling of 1year",
        ),
        (
            "--sweep",
            "invalid --sweep: 300000000000years is above the ceiling of 1year",
        ),
        ("--splay", "invalid --splay: "),
        ("--settle", "invalid --settle: "),
    ] {
        let mut args = vec!["run", "--watch", "1s", flag, "300000000000y", "--", "true"];
        if flag == "--watch" {
            args.drain(1..3);
        }
        Envoke::new()
            .run(args)
            .assert_code(125)
            .assert_stderr_contains(error)
            .assert_stderr_contains("above the ceiling of 1year");
    }
    Envoke::new()
        .manifest("[watch]\ninterval = \"1s\"\nsplay = \"2y\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid setting `[watch] splay` in envoke.toml: 2years is above");
    Envoke::new()
        .env("ENVOKE_SWEEP", "400d")
        .run(["run", "--watch", "1s", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--sweep");
    // At the ceiling, watching runs.
    Envoke::new()
        .run([
            "run", "--watch", "1s", "--sweep", "1y", "--splay", "1y", "--", "true",
        ])
        .assert_code(0);
}

/// The recorded Secrets Manager operations named `operation`.
fn count(moto: &Moto, operation: &str) -> usize {
    moto.recorded_operations()
        .iter()
        .filter(|o| *o == operation)
        .count()
}

#[test]
fn a_secret_whose_rotation_is_far_away_is_not_described_at_every_poll_and_a_due_one_is() {
    let moto = Moto::start();
    moto.create("far", "far-1");
    moto.create("soon", "soon-1");
    moto.schedule_rotation("far", 30);
    // A 1-day schedule: NextRotationDate is tomorrow, and its 24 h window is open now.
    moto.schedule_rotation("soon", 1);
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nFAR = \"aws-sm://far\"\nSOON = \"aws-sm://soon\"\n");
    let flags = ["--watch", "1s", "--settle", "100ms", "--sweep", "1h"];
    let watched = watched(
        &envoke,
        &flags,
        r#"echo "$SOON $FAR" >> "$LOG"; exec sleep 1000"#,
    );
    // The first poll describes both (no schedule known yet).
    watched.wait_until(
        Duration::from_secs(15),
        "the first poll to describe `far`",
        || {
            moto.recorded_secret_ids("DescribeSecret")
                .contains(&"far".to_owned())
        },
    );
    moto.reset_recording();
    // Three polls later (each describes `soon`), `far` was described at none of them.
    watched.wait_until(
        Duration::from_secs(15),
        "three more descriptions of `soon`",
        || {
            moto.recorded_secret_ids("DescribeSecret")
                .iter()
                .filter(|id| *id == "soon")
                .count()
                >= 3
        },
    );
    let described = moto.recorded_secret_ids("DescribeSecret");
    assert!(
        described.iter().all(|id| id == "soon"),
        "{described:?}\n{}",
        watched.logs()
    );
    assert_eq!(count(&moto, "ListSecrets"), 0, "no sweep within the hour");
    // A rotation of the due secret is seen at the next poll.
    moto.put("soon", "soon-2");
    let changed = Instant::now();
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["soon-1 far-1", "soon-2 far-1"]
    );
    assert!(
        changed.elapsed() < Duration::from_secs(4),
        "{:?}",
        changed.elapsed()
    );
    let (_, logs) = watched.stop();
    assert!(logs.contains("(seen by DescribeSecret)"), "{logs}");
}

#[test]
fn the_sweep_finds_a_manual_change_of_a_quiet_secret_with_list_secrets() {
    let moto = Moto::start();
    moto.create("quiet", "quiet-1");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://quiet\"\n");
    let flags = ["--watch", "1s", "--settle", "100ms", "--sweep", "2s"];
    let watched = watched(&envoke, &flags, LOGS_VALUE_ON_START);
    watched.wait_until(Duration::from_secs(15), "a first DescribeSecret", || {
        count(&moto, "DescribeSecret") > 0
    });
    moto.reset_recording();
    moto.put("quiet", "quiet-2");
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["quiet-1", "quiet-2"]
    );
    let (_, logs) = watched.stop();
    // ListSecrets may lag behind: what it shows is confirmed before anything is done.
    assert!(
        logs.contains("ListSecrets shows another version; confirming with DescribeSecret"),
        "{logs}"
    );
    assert!(count(&moto, "ListSecrets") >= 1);
    assert_eq!(count(&moto, "DescribeSecret"), 1, "{logs}");
}

#[test]
fn a_denied_list_secrets_falls_back_to_describe_secret_and_says_so_once() {
    let moto = Moto::start();
    moto.create("quiet", "quiet-1");
    let (key, secret) = moto.iam_user(
        "no-list",
        &[
            "secretsmanager:GetSecretValue",
            "secretsmanager:BatchGetSecretValue",
            "secretsmanager:DescribeSecret",
        ],
    );
    let (admin_key, admin_secret) = moto.iam_user("admin", &["secretsmanager:*"]);
    moto.enforce_iam();
    let envoke = Envoke::new()
        .aws(&moto)
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .manifest("[env]\nVALUE = \"aws-sm://quiet\"\n");
    let flags = ["--watch", "1s", "--settle", "100ms", "--sweep", "1s"];
    let watched = watched(&envoke, &flags, LOGS_VALUE_ON_START);
    watched.wait_until(Duration::from_secs(15), "a denied ListSecrets", || {
        watched.logs().contains("ListSecrets is denied")
    });
    let admin = moto.client_as(&admin_key, &admin_secret);
    moto.block_on(
        admin
            .put_secret_value()
            .secret_id("quiet")
            .secret_string("quiet-2")
            .send(),
    )
    .unwrap();
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["quiet-1", "quiet-2"]
    );
    // A sleep: more sweeps, none of which says the denial again.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, logs) = watched.stop();
    assert!(logs.contains("(seen by DescribeSecret)"), "{logs}");
    assert_eq!(logs.matches("ListSecrets is denied").count(), 1, "{logs}");
    assert!(!logs.contains("ERROR"), "{logs}");
}

#[test]
fn the_recheck_signal_checks_at_once_then_at_most_every_ten_seconds_and_is_not_forwarded() {
    let moto = Moto::start();
    moto.create("rotating", "first");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let script =
        r#"trap 'echo usr2 >> "$LOG"' USR2; echo "$VALUE" >> "$LOG"; while :; do sleep 0.05; done"#;
    let usr2 = |pid: u32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGUSR2,
        )
        .unwrap();
    };
    let flags = [
        "--watch",
        "1h",
        "--settle",
        "100ms",
        "--recheck-signal",
        "USR2",
    ];
    let watched = watched(&envoke, &flags, script);
    moto.put("rotating", "second");
    let sent = Instant::now();
    usr2(watched.pid());
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["first", "second"]
    );
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    // A burst of rechecks within 10 s of the last: one check, when the 10 s are up. Nothing
    // changed since: it describes, finds nothing, restarts nothing.
    moto.reset_recording();
    for _ in 0..5 {
        usr2(watched.pid());
        // Apart, so that they arrive as five signals rather than merge into one pending one.
        std::thread::sleep(Duration::from_millis(20));
    }
    // A sleep: no check for the burst while the gap lasts.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&moto, "DescribeSecret"), 0, "not before the gap ends");
    watched.wait_until(
        Duration::from_secs(15),
        "the one check at the end of the gap",
        || count(&moto, "DescribeSecret") == 1,
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(9900),
        "{:?}",
        sent.elapsed()
    );
    // A sleep: no second check for the same burst.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&moto, "DescribeSecret"), 1, "the burst is one check");
    let (_, logs) = watched.stop();
    assert!(logs.contains("minimum gap between rechecks"), "{logs}");
    assert_eq!(
        read_lines(&envoke.dir().join("child.log")),
        ["first", "second"]
    );

    // Without the flag, USR2 is the command's, as always.
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let forwarding = crate::watch::watched(&envoke, &["--watch", "1h"], script);
    usr2(forwarding.pid());
    assert_eq!(
        forwarding.wait_lines(2, Duration::from_secs(10)),
        ["second", "usr2"]
    );
}

#[test]
fn the_recheck_signal_replaces_revoked_leases_at_once_without_a_splay() {
    // The incident runbook: revoke the leases, send the recheck signal. The lease is nowhere
    // near its renewal, and the splay is long: the dead credentials are replaced at once.
    let (pg, bao, envoke) = crate::support::dynamic_database("1h", "1h");
    let script = r#"echo "$DB_USER $DB_PASSWORD" >> "$LOG"; exec sleep 1000"#;
    let flags = [
        "--watch",
        "1h",
        "--settle",
        "100ms",
        "--splay",
        "1h",
        "--recheck-signal",
        "USR2",
    ];
    let watched = watched(&envoke, &flags, script);
    let first = watched.lines()[0].clone();
    let (user, password) = first.split_once(' ').unwrap();
    bao.api("POST", "sys/leases/revoke-prefix/database/creds/app", None);
    assert!(!pg.can_log_in(user, password), "revoked");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watched.pid() as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    let lines = watched.wait_lines(2, Duration::from_secs(5));
    let (new_user, new_password) = lines[1].split_once(' ').unwrap();
    assert_ne!(new_user, user);
    assert!(pg.can_log_in(new_user, new_password));
    let (_, logs) = watched.stop();
    assert!(logs.contains("lease cannot be renewed"), "{logs}");
    assert!(!logs.contains("delay_ms="), "{logs}");
}

#[test]
fn splay_delays_the_restart_and_a_stop_during_it_is_prompt() {
    let (moto, _envoke, watched, delay, logged) = rotated_under_a_splay();
    assert!(delay <= Duration::from_secs(3), "{delay:?}");
    watched.wait_lines(2, Duration::from_secs(15));
    assert!(
        logged.elapsed() + Duration::from_millis(50) >= delay,
        "restarted {:?} after a splay of {delay:?}",
        logged.elapsed()
    );
    watched.stop();

    // A TERM during a long splay ends envoke at once, with the child's status.
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let flags = [FAST, &["--splay", "1h"]].concat();
    let waiting = crate::watch::watched(&envoke, &flags, LOGS_VALUE_ON_START);
    moto.put("rotating", "third");
    let delay = wait_for_splay(&waiting);
    assert!(delay > Duration::from_secs(2), "{delay:?}");
    let stopping = Instant::now();
    let (code, logs) = waiting.stop();
    assert_eq!(code, Some(143), "{logs}");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
}

#[test]
fn exit_after_a_splay_leaves_the_command_its_old_credentials_until_it_is_stopped() {
    // The lease nears its max TTL at 4 s: replaced then, with a splay of up to 1 s (half what
    // the old lease has left). The command runs on the old credentials until envoke stops it.
    let (pg, _bao, envoke) = crate::support::dynamic_database("6s", "6s");
    let script = r#"echo "$DB_USER $DB_PASSWORD" >> "$LOG"; trap 'echo stopped >> "$LOG"; exit 0' TERM; while :; do sleep 0.05; done"#;
    let flags = [
        "--watch",
        "1s",
        "--settle",
        "100ms",
        "--on-change",
        "exit",
        "--splay",
        "1h",
        "--stop-timeout",
        "200ms",
    ];
    let mut watched = watched(&envoke, &flags, script);
    let first = watched.lines()[0].clone();
    let (user, password) = first.split_once(' ').unwrap();
    wait_for_splay(&watched);
    let stopped = || watched.lines().iter().any(|line| line == "stopped");
    // The command writes `stopped` before it exits, and envoke revokes after it exited: a
    // failed login must come after that line.
    watched.wait_until(Duration::from_secs(15), "the command to be stopped", || {
        if !pg.can_log_in(user, password) {
            assert!(
                stopped(),
                "revoked while the command still ran\n{}",
                watched.logs()
            );
        }
        stopped()
    });
    assert_eq!(watched.wait_exit(Duration::from_secs(5)), Some(75));
    assert!(!pg.can_log_in(user, password), "revoked at exit");
    assert!(!watched.logs().contains("WARN"), "{}", watched.logs());
}

#[test]
fn a_restart_after_a_splay_starts_the_command_on_what_is_current_after_it() {
    let (moto, _envoke, watched, mut delay, mut logged) = rotated_under_a_splay();
    let mut expected = vec!["first".to_owned()];
    let mut current = "second".to_owned();
    // The splay is random: one too short to rotate again inside it runs out (the command
    // restarts on the current value), and the secret rotates anew, until a splay leaves time.
    let mut splays = 1;
    while delay < Duration::from_millis(500) {
        assert!(splays < 8, "seven splays in a row under 500 ms of 3 s");
        expected.push(current.clone());
        watched.wait_lines(expected.len(), Duration::from_secs(10));
        current = format!("rotation-{splays}");
        moto.put("rotating", &current);
        splays += 1;
        delay = wait_for_splay_number(&watched, splays);
        logged = Instant::now();
    }
    // Rotated again during the splay: the restart after it starts on this value.
    moto.put("rotating", "last");
    assert!(
        logged.elapsed() + Duration::from_millis(100) < delay,
        "the put came after the splay"
    );
    expected.push("last".to_owned());
    let lines = watched.wait_lines(expected.len(), Duration::from_secs(10));
    assert_eq!(lines, expected, "{}", watched.logs());
    // And nothing more: the restart remembered the version it started with (a sleep: no
    // further restart over the next polls).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        watched.lines().len(),
        expected.len(),
        "{:?}",
        watched.lines()
    );
    watched.stop();
}

/// A command watching secret `rotating` (moto) with `--splay 3s`, rotated once: the moto, the
/// envoke (its directory), the supervised command, the splay envoke chose and when it said so.
fn rotated_under_a_splay() -> (Moto, Envoke, Supervised, Duration, Instant) {
    let moto = Moto::start();
    moto.create("rotating", "first");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://rotating\"\n");
    let flags = [FAST, &["--splay", "3s"]].concat();
    let watched = watched(&envoke, &flags, LOGS_VALUE_ON_START);
    moto.put("rotating", "second");
    let delay = wait_for_splay(&watched);
    (moto, envoke, watched, delay, Instant::now())
}

/// Waits for the splay's log line; the delay it chose.
fn wait_for_splay(watched: &Supervised) -> Duration {
    wait_for_splay_number(watched, 1)
}

/// Waits for the `number`th splay's log line (from 1); the delay it chose.
fn wait_for_splay_number(watched: &Supervised, number: usize) -> Duration {
    watched.wait_until(Duration::from_secs(15), "the splay's log line", || {
        watched.logs().matches("delay_ms=").count() >= number
    });
    let logs = watched.logs();
    let (at, _) = logs.match_indices("delay_ms=").nth(number - 1).unwrap();
    let digits: String = logs[at + "delay_ms=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Duration::from_millis(digits.parse().unwrap())
}

#[test]
fn bad_sweep_splay_and_recheck_settings_are_errors_naming_them() {
    let envoke = Envoke::new();
    envoke
        .run([
            "run",
            "--watch",
            "1s",
            "--recheck-signal",
            "TERM",
            "--",
            "true",
        ])
        .assert_code(125)
        .assert_stderr_contains("invalid --recheck-signal (ENVOKE_RECHECK_SIGNAL): SIGTERM");
    envoke
        .run(["run", "--recheck-signal", "USR2", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--recheck-signal")
        .assert_stderr_contains("add --watch");
    envoke
        .run(["run", "--watch", "1s", "--splay", "nonsense", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--splay");
    Envoke::new()
        .manifest("[watch]\ninterval = \"1s\"\nsweep = 5\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("`[watch] sweep`");
    Envoke::new()
        .manifest("[watch]\ninterval = \"1s\"\nrecheck_signal = \"CHLD\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("`[watch] recheck_signal`");
}

#[test]
fn winch_cont_and_other_signals_nobody_sends_on_purpose_cannot_be_the_recheck_signal() {
    // A terminal resize would check every secret.
    Envoke::new()
        .run([
            "run",
            "--watch",
            "1s",
            "--recheck-signal",
            "WINCH",
            "--",
            "true",
        ])
        .assert_code(125)
        .assert_stderr_contains("invalid --recheck-signal (ENVOKE_RECHECK_SIGNAL): SIGWINCH")
        .assert_stderr_contains("the terminal sends it at every resize");
    Envoke::new()
        .env("ENVOKE_RECHECK_SIGNAL", "URG")
        .run(["run", "--watch", "1s", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("--recheck-signal");
    Envoke::new()
        .manifest("[watch]\ninterval = \"1s\"\nrecheck_signal = \"CONT\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("`[watch] recheck_signal`")
        .assert_stderr_contains("job control");
    Envoke::new()
        .run([
            "run",
            "--watch",
            "1s",
            "--recheck-signal",
            "ALRM",
            "--",
            "true",
        ])
        .assert_code(0);
}

#[test]
fn a_name_that_begins_hundreds_of_others_is_described_not_listed_page_after_page() {
    // ListSecrets filters by name prefix: `dup` finds dup-0 ... dup-499 first, more than the
    // 5 pages of 100 a sweep reads, and `solo`, listed in the same call, is starved with it.
    let moto = Moto::start();
    for i in 0..500 {
        moto.create(&format!("dup-{i}"), "x");
    }
    moto.create("dup", "dup-1");
    moto.create("solo", "solo-1");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nDUP = \"aws-sm://dup\"\nSOLO = \"aws-sm://solo\"\n");
    let flags = ["--watch", "1s", "--settle", "100ms", "--sweep", "1s"];
    let watched = watched(
        &envoke,
        &flags,
        r#"echo "$DUP $SOLO" >> "$LOG"; exec sleep 1000"#,
    );
    watched.wait_until(Duration::from_secs(15), "`dup` to be given up on", || {
        watched
            .logs()
            .contains("too many other secrets by this name")
    });
    // A sleep that orders: the poll that said so may still be reading pages (it logs nothing
    // when it ends); the count below starts after it.
    std::thread::sleep(Duration::from_millis(1200));
    moto.reset_recording();
    let window = Instant::now();
    watched.wait_until(
        Duration::from_secs(15),
        "a sweep and a description of `dup`",
        || {
            count(&moto, "ListSecrets") >= 1
                && moto
                    .recorded_secret_ids("DescribeSecret")
                    .contains(&"dup".to_owned())
        },
    );
    // A sleep: the rest of a 2.5 s window in which sweeps must not read page after page.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(window.elapsed()));
    let polls = count(&moto, "ListSecrets");
    let described = moto.recorded_secret_ids("DescribeSecret");
    assert!(
        (1..=4).contains(&polls),
        "one page a sweep for solo alone: {polls}"
    );
    assert!(
        !described.is_empty() && described.iter().all(|id| id == "dup"),
        "{described:?}"
    );
    moto.put("solo", "solo-2");
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(10)),
        ["dup-1 solo-1", "dup-1 solo-2"]
    );
    let (_, logs) = watched.stop();
    assert_eq!(
        logs.matches("too many other secrets by this name").count(),
        1,
        "only dup, once: {logs}"
    );
}

/// `--watch 1s` with every other setting at its default (the sweep among them), at the default
/// log level: what a user who writes `--watch` gets.
const DEFAULTS: &[&str] = &["--watch", "1s", "--settle", "100ms"];

#[test]
fn with_the_default_sweep_every_kind_of_change_is_seen_within_the_interval() {
    // Secrets with no rotation schedule: quiet, so only the sweep checks them.
    let moto = Moto::start();
    moto.create("put", "put-1");
    let (_, staged_first) = moto.create("staged", "staged-1");
    let staged_second = moto.put("staged", "staged-2");
    moto.create("rotated", "same");
    let envoke = Envoke::new().aws(&moto).manifest(
        "[env]\nPUT = \"aws-sm://put\"\nSTAGED = \"aws-sm://staged\"\nROTATED = \"aws-sm://rotated\"\n",
    );
    let watched = Supervised::start_at_default_level(
        &envoke,
        DEFAULTS,
        r#"echo "$PUT $STAGED" >> "$LOG"; exec sleep 1000"#,
    );
    watched.wait_lines(1, Duration::from_secs(15));
    wait_for_first_describe(&watched, &moto, &["put", "staged", "rotated"]);
    // A value put by hand (PutSecretValue).
    moto.put("put", "put-2");
    let put = Instant::now();
    watched.wait_lines(2, Duration::from_secs(10));
    // A stage moved (UpdateSecretVersionStage: AWSCURRENT back to the first version).
    moto.move_stage("staged", "AWSCURRENT", &staged_second, &staged_first);
    let moved = Instant::now();
    let lines = watched.wait_lines(3, Duration::from_secs(10));
    assert_eq!(
        lines,
        ["put-1 staged-2", "put-2 staged-2", "put-2 staged-1"]
    );
    // A rotate-now (RotateSecret): AWSCURRENT moves to a new version. (moto, with no Lambda to
    // run, leaves that version without a value: envoke says so and the command keeps running.)
    moto.rotate_now("rotated");
    watched.wait_until(Duration::from_secs(10), "the rotation to be seen", || {
        watched
            .logs()
            .contains("(seen by DescribeSecret) secret=aws-sm://rotated cause=\"sweep\"")
    });
    // Each within the 1 s interval (±10%), a sweep and the restart: well under the old hour.
    for (what, since) in [("the put", put), ("the stage move", moved)] {
        assert!(
            since.elapsed() < Duration::from_secs(8),
            "{what}: {:?}",
            since.elapsed()
        );
    }
    // Why, at the default level: which secret, from which version to which, seen how.
    watched.assert_logged(&[
        "(seen by DescribeSecret) secret=aws-sm://put cause=\"sweep\"",
        "(seen by DescribeSecret) secret=aws-sm://staged cause=\"sweep\"",
        "restarted the command with the new values",
    ]);
    let logs = watched.logs();
    assert!(
        !logs.contains("put-2") && !logs.contains("staged-1"),
        "{logs}"
    );
}

#[test]
fn a_longer_sweep_is_the_documented_trade_off_a_change_waits_for_it() {
    let moto = Moto::start();
    moto.create("quiet", "one");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://quiet\"\n");
    let flags = ["--watch", "1s", "--settle", "100ms", "--sweep", "8s"];
    let watched = watched(&envoke, &flags, LOGS_VALUE_ON_START);
    wait_for_first_describe(&watched, &moto, &["quiet"]);
    moto.put("quiet", "two");
    // Not before the sweep (a sleep: proving that nothing happens).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(watched.lines(), ["one"], "{}", watched.logs());
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(15)),
        ["one", "two"]
    );
}

#[test]
fn a_throttled_list_secrets_falls_back_to_describe_and_keeps_watching() {
    let moto = Moto::start();
    moto.create("quiet", "one");
    let proxy = Proxy::start(moto.endpoint.trim_start_matches("http://"));
    proxy.answer_instead(
        "secretsmanager.ListSecrets",
        "400 Bad Request",
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    );
    let envoke = Envoke::new()
        .aws(&moto)
        .env("AWS_ENDPOINT_URL", &proxy.addr)
        .manifest("[env]\nVALUE = \"aws-sm://quiet\"\n");
    let watched = watched(&envoke, DEFAULTS, LOGS_VALUE_ON_START);
    watched.wait_until(Duration::from_secs(20), "a throttled sweep", || {
        watched.logs().contains("ListSecrets failed")
    });
    moto.put("quiet", "two");
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(20)),
        ["one", "two"],
        "{}",
        watched.logs()
    );
    let logs = watched.logs();
    assert!(
        logs.contains("describing the quiet secrets one by one"),
        "{logs}"
    );
    assert!(logs.contains("(seen by DescribeSecret)"), "{logs}");
}

#[test]
fn a_change_of_the_recheck_secret_checks_everything_and_restarts_after_the_splay() {
    let moto = Moto::start();
    moto.create("app", "app-1");
    moto.create("fleet/recheck", "0");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nVALUE = \"aws-sm://app\"\n");
    // A sweep far away: only the recheck can see the change of `app` within the test.
    let flags = [
        "--watch",
        "1s",
        "--settle",
        "100ms",
        "--sweep",
        "1h",
        "--splay",
        "1s",
        "--recheck-on",
        "aws-sm://fleet/recheck",
    ];
    let watched = Supervised::start_at_default_level(&envoke, &flags, LOGS_VALUE_ON_START);
    watched.wait_lines(1, Duration::from_secs(15));
    wait_for_first_describe(&watched, &moto, &["app"]);
    moto.put("app", "app-2");
    // A sleep, proving that nothing happens: `app` is quiet and the sweep an hour away.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(watched.lines(), ["app-1"], "{}", watched.logs());
    moto.put("fleet/recheck", "1");
    assert_eq!(
        watched.wait_lines(2, Duration::from_secs(15)),
        ["app-1", "app-2"],
        "{}",
        watched.logs()
    );
    watched.assert_logged(&[
        "the recheck secret moved from version",
        "(seen by DescribeSecret) secret=aws-sm://app cause=\"recheck secret\"",
        "waiting a random delay before acting on the change",
        "restarted the command with the new values",
    ]);
    // Only its version was asked, never its value.
    assert!(
        !moto
            .recorded_secret_ids("GetSecretValue")
            .contains(&"fleet/recheck".to_owned()),
        "{:?}",
        moto.recorded_secret_ids("GetSecretValue")
    );
}

#[test]
fn a_vault_recheck_secret_works_the_same_way() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "v": "app-1" }));
    bao.kv2_put("secret", "recheck", json!({ "n": "0" }));
    let envoke = Envoke::new().vault(&bao).manifest(
        "[env]\nVALUE = \"vault://secret/app#v\"\n\n\
             [watch]\ninterval = \"1s\"\nrecheck_on = \"vault://secret/recheck\"\n",
    );
    let watched =
        Supervised::start_at_default_level(&envoke, &["--settle", "100ms"], LOGS_VALUE_ON_START);
    watched.wait_lines(1, Duration::from_secs(15));
    bao.kv2_put("secret", "recheck", json!({ "n": "1" }));
    watched.wait_until(Duration::from_secs(15), "the recheck", || {
        watched
            .logs()
            .contains("the recheck secret moved from version 1 to 2")
    });
    // The policy grants reading its version.
    let policy = envoke.run(["policy", "--vault", "--watch"]);
    policy.assert_code(0);
    assert!(
        policy.stdout.contains("path \"secret/metadata/recheck\""),
        "{}",
        policy.stdout
    );
}

#[test]
fn a_recheck_secret_needs_watching_and_a_version_that_can_move() {
    let envoke = Envoke::new();
    envoke
        .run([
            "run",
            "--recheck-on",
            "aws-sm://fleet/recheck",
            "--",
            "true",
        ])
        .assert_code(125)
        .assert_stderr_contains("--recheck-on (ENVOKE_RECHECK_ON)")
        .assert_stderr_contains("nothing watches");
    envoke
        .run([
            "run",
            "--watch",
            "1s",
            "--recheck-on",
            "aws-sm://fleet/recheck?version-id=abc",
            "--",
            "true",
        ])
        .assert_code(125)
        .assert_stderr_contains("pinned to a version");
    envoke
        .run([
            "run",
            "--watch",
            "1s",
            "--recheck-on",
            "nope://x",
            "--",
            "true",
        ])
        .assert_code(125)
        .assert_stderr_contains("is not a reference");
}

/// Waits until the watch's first poll has described each of `secrets` (their rotation schedules
/// are unknown until then, so that poll describes them all); the recording starts afresh.
fn wait_for_first_describe(watched: &Supervised, moto: &Moto, secrets: &[&str]) {
    watched.wait_until(
        Duration::from_secs(15),
        "the first poll's descriptions",
        || {
            let described = moto.recorded_secret_ids("DescribeSecret");
            secrets.iter().all(|s| described.contains(&(*s).to_owned()))
        },
    );
    moto.reset_recording();
}
