//! Composed values: `NAME = { template = "...${VAR}...${VAR:url}..." }` builds a value from other
//! variables, so an application gets its DATABASE_URL from the parts of a secret.

use std::time::Duration;

use serde_json::json;

use crate::support::{Bao, Envoke, Supervised};

const MANIFEST: &str = r#"
[env]
DB_USER      = "vault://secret/rds#username"
DB_PASSWORD  = "vault://secret/rds#password"
DB_HOST      = "db.internal"
DATABASE_URL = { template = "postgresql://${DB_USER}:${DB_PASSWORD:url}@${DB_HOST}:5432/app?cost=$$1" }
"#;

#[test]
fn a_template_composes_a_url_with_the_password_encoded_and_follows_a_rotation() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "rds",
        json!({"username": "app", "password": "p@ss:w/rd?#&1"}),
    );
    let envoke = Envoke::new().vault(&bao).manifest(MANIFEST);
    let (output, env) = envoke.child_env(&["-vvv"]);
    // The composed value is a secret too: no log line shows it (the child's `env` prints it).
    output
        .assert_code(0)
        .assert_stderr_lacks("p@ss:w/rd?#&1")
        .assert_stderr_lacks("p%40ss");
    assert_eq!(
        env["DATABASE_URL"],
        "postgresql://app:p%40ss%3Aw%2Frd%3F%23%261@db.internal:5432/app?cost=$1"
    );

    let running = Supervised::start(
        &envoke,
        &["--watch", "1s", "--settle", "100ms"],
        r#"echo "$DATABASE_URL" >> "$LOG"; exec sleep 60"#,
    );
    running.wait_lines(1, Duration::from_secs(10));
    bao.kv2_put(
        "secret",
        "rds",
        json!({"username": "app", "password": "new pw%2"}),
    );
    let lines = running.wait_lines(2, Duration::from_secs(10));
    assert_eq!(
        lines[1],
        "postgresql://app:new%20pw%252@db.internal:5432/app?cost=$1"
    );
}

#[test]
fn a_template_naming_an_unknown_variable_or_a_circle_is_a_manifest_error() {
    let envoke = Envoke::new().manifest(
        r#"
[env]
URL = { template = "https://${HOST}/" }
A   = { template = "${B}" }
B   = { template = "x${A}" }
C   = { template = "cost $5" }
"#,
    );
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("URL: the template names `HOST`, which is not a variable")
        .assert_stderr_contains("templates name each other in a circle: A → B → A")
        .assert_stderr_contains("C: invalid template: a `$` at byte 5");
}

#[test]
fn a_template_composing_a_nul_byte_is_a_template_error_naming_the_variable_not_a_files_error() {
    // A secret file may hold a NUL byte; a template that puts it into an environment variable
    // cannot. The error used to read "cannot write secret files: ...".
    let bao = Bao::start();
    bao.kv2_put("secret", "bin", json!({"blob": "s3cr3t\u{0}v4lu3"}));
    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
BLOB     = { ref = "vault://secret/bin#blob", file = true }
COMPOSED = { template = "pre-${BLOB}" }
"#,
    );
    let output = envoke.run(["run", "--", "sh", "-c", "echo started"]);
    output
        .assert_code(125)
        .assert_stderr_contains(
            "cannot compose COMPOSED from its template: the value would hold a NUL byte (from \
             the value of BLOB)",
        )
        .assert_stderr_lacks("secret files")
        .assert_stderr_lacks("s3cr3t")
        .assert_stderr_lacks("v4lu3");
    assert_eq!(output.stdout, "", "the command was not started");
}
