//! What the child's environment holds: references from envoke's own environment, inherited
//! variables, overrides.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{Bao, Envoke, Moto};

#[test]
fn references_in_the_environment_are_resolved_without_a_manifest() {
    let moto = Moto::start();
    let bao = Bao::start();
    let (arn, _) = moto.create("prod/db", r#"{"password":"pw"}"#);
    moto.create("prod/plain", "plain");
    bao.kv2_put("secret", "app", json!({"token": "tok"}));
    let envoke = Envoke::new()
        .aws(&moto)
        .vault(&bao)
        .env("DB_PASSWORD", "aws-sm://prod/db#password")
        .env("BY_ARN", format!("{arn}#password"))
        .env("BARE_ARN", &arn)
        .env("API_TOKEN", "vault://secret/app#token")
        .env("PROXY", "https://proxy.example:3128")
        .env("DATABASE_URL", "postgres://user@db/app");
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB_PASSWORD"], "pw");
    assert_eq!(env["BY_ARN"], "pw");
    assert_eq!(env["BARE_ARN"], r#"{"password":"pw"}"#);
    assert_eq!(env["API_TOKEN"], "tok");
    assert_eq!(
        env["PROXY"], "https://proxy.example:3128",
        "other URLs pass through"
    );
    assert_eq!(env["DATABASE_URL"], "postgres://user@db/app");
}

#[test]
fn no_env_refs_leaves_environment_references_alone() {
    let envoke = Envoke::new().env("DB_PASSWORD", "aws-sm://prod/db#password");
    let (output, env) = envoke.child_env(&["--no-env-refs"]);
    output.assert_code(0);
    assert_eq!(env["DB_PASSWORD"], "aws-sm://prod/db#password");

    let envoke = envoke.env("ENVOKE_NO_ENV_REFS", "1");
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB_PASSWORD"], "aws-sm://prod/db#password");
}

#[test]
fn an_invalid_reference_in_the_environment_stops_the_launch() {
    Envoke::new()
        .env("BROKEN", "vault://secret")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("BROKEN (vault://secret): invalid reference in the environment");
}

#[test]
fn the_child_sees_exactly_the_inherited_environment_plus_the_manifest_without_envokes_token() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "app",
        json!({"token": "api-token-x7", "user": "u"}),
    );
    let envoke = Envoke::new()
        .vault(&bao)
        .env("KEEP_ME", "kept")
        .env("LOG_LEVEL", "debug")
        .manifest(
            r#"
[env]
API_TOKEN = "vault://secret/app#token"
API_USER  = { ref = "vault://secret/app#user" }
LOG_LEVEL = "info"
HOMEPAGE  = { value = "vault://this/is/a/literal" }
"#,
        );
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    let mut expected: BTreeMap<String, String> = envoke
        .environment()
        .iter()
        .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
        .collect();
    // envoke's own credential is envoke's: the child does not inherit it.
    expected.remove("VAULT_TOKEN");
    for (k, v) in [
        ("API_TOKEN", "api-token-x7"),
        ("API_USER", "u"),
        ("LOG_LEVEL", "info"),
        ("HOMEPAGE", "vault://this/is/a/literal"),
    ] {
        expected.insert(k.into(), v.into());
    }
    assert_eq!(env, expected);
    // The override is announced by name, and the value shows nowhere.
    output
        .assert_stderr_contains("overrides an inherited environment variable")
        .assert_stderr_contains("LOG_LEVEL")
        // (A value of its own: the audit events name the identity "token".)
        .assert_stderr_lacks("api-token-x7");
    assert!(!output.stderr.contains("KEEP_ME"));
}

#[test]
fn no_secret_value_appears_in_logs_at_any_verbosity() {
    let moto = Moto::start();
    let bao = Bao::start();
    moto.create("s/aws", r#"{"k":"aws-secret-value-x1"}"#);
    bao.kv2_put("secret", "s", json!({"k": "vault-secret-value-x2"}));
    // envoke's own credentials must not show either: the AWS SDK's signing trace prints the
    // session token unless its targets are kept quiet.
    let credentials = [
        "session-token-x3",
        "secret-access-key-x4",
        crate::support::ROOT_TOKEN,
    ];
    let envoke = Envoke::new()
        .aws(&moto)
        .vault(&bao)
        .env("AWS_SESSION_TOKEN", credentials[0])
        .env("AWS_SECRET_ACCESS_KEY", credentials[1])
        .manifest(
            "[env]\nA = \"aws-sm://s/aws#k\"\nB = \"vault://secret/s#k\"\nC = \"vault://secret/s#missing\"\n",
        );
    for flags in [&["-vvv"][..], &["-vv"], &["-v"], &[]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "true"]);
        envoke
            .run(&args)
            .assert_code(125)
            .assert_never_shows("aws-secret-value-x1")
            .assert_never_shows("vault-secret-value-x2")
            .assert_never_shows(crate::support::ROOT_TOKEN);
    }
    for directives in [
        "trace",
        "aws_sigv4=trace,aws_smithy_runtime=trace,hyper=trace,trace",
    ] {
        for args in [&["check", "--format", "json"][..], &["run", "--", "true"]] {
            let output = envoke.run_with(&[("RUST_LOG", directives)], args);
            output
                .assert_code(125)
                .assert_never_shows("aws-secret-value-x1")
                .assert_never_shows("vault-secret-value-x2");
            for credential in credentials {
                output.assert_never_shows(credential);
            }
        }
    }
    // The filter was on: envoke's own debug lines are there.
    let output = envoke.run_with(&[("RUST_LOG", "trace")], ["check", "--format", "json"]);
    assert!(
        output.stderr.contains("aws: BatchGetSecretValue") && output.stderr.contains("vault: read"),
        "{}",
        output.stderr
    );
}
