//! The way off a .env file: `envoke import` stores its secrets in Secrets Manager or Vault and
//! writes the manifest that references them; the application then gets exactly the values it
//! had, and nothing printed on the way holds one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::support::proxy::Proxy;
use crate::support::{Bao, Envoke, Moto};

const DOTENV: &str = r#"# the app's settings
export DATABASE_PASSWORD="p@ss w0rd \"q\""
OPENAI_API_KEY=sk-live-abc123  # production key
TLS_KEY="-----BEGIN KEY-----
abc+/=
-----END KEY-----"
SINGLE='single $quoted \n'
LOG_LEVEL=info
DB_PORT=5432
API_URL=https://api.example.com/v1
EMPTY=
"#;

/// What the application saw before the move: the .env's values.
fn original() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("DATABASE_PASSWORD", "p@ss w0rd \"q\""),
        ("OPENAI_API_KEY", "sk-live-abc123"),
        ("TLS_KEY", "-----BEGIN KEY-----\nabc+/=\n-----END KEY-----"),
        ("SINGLE", "single $quoted \\n"),
        ("LOG_LEVEL", "info"),
        ("DB_PORT", "5432"),
        ("API_URL", "https://api.example.com/v1"),
        ("EMPTY", ""),
    ])
}

const SECRETS: [&str; 4] = ["p@ss w0rd", "sk-live-abc123", "abc+/=", "single $quoted"];

#[track_caller]
fn assert_child_has_the_original_values(envoke: &Envoke) {
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    for (name, value) in original() {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
}

#[test]
fn a_dry_run_stores_nothing_and_prints_no_secret() {
    let moto = Moto::start();
    let envoke = Envoke::new().aws(&moto).file(".env", DOTENV);
    moto.reset_recording();
    let output = envoke.run(["import", ".env", "--to", "aws-sm://app/prod"]);
    output.assert_code(0);
    for secret in SECRETS {
        output.assert_never_shows(secret);
    }
    assert!(
        output
            .stdout
            .contains(r#"OPENAI_API_KEY    = "aws-sm://app/prod#OPENAI_API_KEY""#),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains(r#"LOG_LEVEL         = "info"   # kept as a literal: a setting word"#),
        "{}",
        output.stdout
    );
    output
        .assert_stderr_contains("kept DB_PORT as a literal: a port number")
        .assert_stderr_contains("nothing was stored");
    assert!(
        moto.recorded_operations().is_empty(),
        "{:?}",
        moto.recorded_operations()
    );
    assert!(!envoke.dir().join("envoke.toml").exists());
}

#[test]
fn import_to_secrets_manager_then_run_gives_the_original_values() {
    let moto = Moto::start();
    for split in [false, true] {
        let prefix = if split { "app/split" } else { "app/one" };
        let envoke = Envoke::new().aws(&moto).file(".env", DOTENV);
        let mut args = vec!["import", ".env", "--to"];
        let to = format!("aws-sm://{prefix}");
        args.push(&to);
        args.push("--write");
        if split {
            args.push("--split");
        }
        moto.reset_recording();
        let output = envoke.run(&args);
        output
            .assert_code(0)
            .assert_stderr_contains("stored the 5 secret values")
            .assert_stderr_contains("delete .env");
        for secret in SECRETS {
            output.assert_never_shows(secret);
        }
        let created = moto.recorded_operations();
        assert_eq!(
            created.iter().filter(|o| *o == "CreateSecret").count(),
            if split { 5 } else { 1 },
            "{created:?}"
        );
        assert_eq!(
            std::fs::read_to_string(envoke.dir().join(".env")).unwrap(),
            DOTENV,
            "the .env file is never changed"
        );
        assert_child_has_the_original_values(&envoke);
    }
}

#[test]
fn import_to_vault_then_run_gives_the_original_values_and_nothing_is_overwritten() {
    let bao = Bao::start();
    let envoke = Envoke::new().vault(&bao).file(".env", DOTENV);
    envoke
        .run(["import", ".env", "--to", "vault://secret/app", "--write"])
        .assert_code(0);
    assert_child_has_the_original_values(&envoke);

    // A second import does not overwrite the manifest without --force; with it, the same values
    // write nothing: the secret keeps its version.
    envoke
        .run(["import", ".env", "--to", "vault://secret/app", "--write"])
        .assert_code(125)
        .assert_stderr_contains("envoke.toml exists");
    envoke
        .run([
            "import",
            ".env",
            "--to",
            "vault://secret/app",
            "--write",
            "--force",
        ])
        .assert_code(0)
        .assert_stderr_contains("leaves DATABASE_PASSWORD");
    let metadata = bao.api("GET", "secret/metadata/app", None);
    assert_eq!(metadata["data"]["current_version"], 1);
    assert_child_has_the_original_values(&envoke);
}

#[test]
fn a_broken_dotenv_file_is_reported_by_line_without_its_values() {
    let envoke = Envoke::new().file(".env", "A=ok\nB=\"sk-unclosed-secret\nC=1\n");
    envoke
        .run(["import", ".env", "--to", "vault://secret/app"])
        .assert_code(125)
        .assert_stderr_contains("line 2: B has a quote that is never closed")
        .assert_never_shows("sk-unclosed-secret");
    Envoke::new()
        .file(".env", "A=sk-123\n")
        .run(["import", ".env"])
        .assert_code(125)
        .assert_stderr_contains("say where the secrets go");
}

/// Runs `envoke import` with `args` in the background; its output once it ends.
fn import_in_background(envoke: &Envoke, args: &[&str]) -> std::process::Child {
    envoke
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_import_into_an_existing_vault_secret_keeps_its_other_keys_and_changes_one_only_with_force() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "shared",
        json!({ "OTHER_APP_PASSWORD": "keepme", "API_KEY": "old-key-value" }),
    );
    let envoke = Envoke::new()
        .vault(&bao)
        .file(".env", "API_KEY=new-key-value\nDB_PASSWORD=pw-1\n");
    let to = ["import", ".env", "--to", "vault://secret/shared", "--write"];
    // A changed key stops the import before anything is written, naming keys only.
    let refused = envoke.run(to);
    refused
        .assert_code(125)
        .assert_stderr_contains("adds DB_PASSWORD; changes API_KEY")
        .assert_stderr_contains("keeps OTHER_APP_PASSWORD (not in the .env)")
        .assert_stderr_contains("1 stored key would change (API_KEY)")
        .assert_stderr_contains("--force");
    for value in ["keepme", "old-key-value", "new-key-value", "pw-1"] {
        refused.assert_never_shows(value);
    }
    assert_eq!(
        bao.api("GET", "secret/metadata/shared", None)["data"]["current_version"],
        1
    );
    assert!(!envoke.dir().join("envoke.toml").exists());
    // With --force the .env's value wins, and the key the .env does not have stays.
    envoke.run([&to[..], &["--force"]].concat()).assert_code(0);
    let data = bao.api("GET", "secret/data/shared", None);
    assert_eq!(
        data["data"]["data"],
        json!({ "OTHER_APP_PASSWORD": "keepme", "API_KEY": "new-key-value", "DB_PASSWORD": "pw-1" })
    );
}

#[test]
fn an_import_into_an_existing_aws_secret_keeps_its_other_keys_and_a_plain_string_is_not_replaced() {
    let moto = Moto::start();
    moto.create(
        "shop/prod",
        r#"{"SECRET_KEY":"sk-keep","MAIL_PASSWORD":"mail-old"}"#,
    );
    moto.create("shop/plain", "a-plain-password");
    let envoke = Envoke::new()
        .aws(&moto)
        .file(".env", "STRIPE_KEY=sk-stripe\n");
    envoke
        .run(["import", ".env", "--to", "aws-sm://shop/prod", "--write"])
        .assert_code(0)
        .assert_stderr_contains(
            "adds STRIPE_KEY; keeps MAIL_PASSWORD, SECRET_KEY (not in the .env)",
        );
    let stored: serde_json::Value = serde_json::from_str(&moto.value("shop/prod")).unwrap();
    assert_eq!(
        stored,
        json!({ "SECRET_KEY": "sk-keep", "MAIL_PASSWORD": "mail-old", "STRIPE_KEY": "sk-stripe" })
    );
    // A secret that is not a JSON object is never turned into one without --force.
    envoke
        .run([
            "import",
            ".env",
            "--to",
            "aws-sm://shop/plain",
            "--write",
            "-o",
            "plain.toml",
        ])
        .assert_code(125)
        .assert_stderr_contains("the stored value is not a JSON object")
        .assert_never_shows("a-plain-password");
    assert_eq!(moto.value("shop/plain"), "a-plain-password");
}

#[test]
fn split_secrets_that_differ_are_changed_only_with_force() {
    let moto = Moto::start();
    moto.create("svc/A", "stored-a");
    let envoke = Envoke::new().aws(&moto).file(".env", "A=new-a\nB=new-b\n");
    let args = [
        "import",
        ".env",
        "--to",
        "aws-sm://svc",
        "--split",
        "--write",
    ];
    envoke
        .run(args)
        .assert_code(125)
        .assert_stderr_contains("adds B; changes A")
        .assert_stderr_contains("1 stored secret would change (A)");
    assert_eq!(moto.value("svc/A"), "stored-a");
    envoke
        .run([&args[..], &["--force"]].concat())
        .assert_code(0);
    assert_eq!(moto.value("svc/A"), "new-a");
    assert_eq!(moto.value("svc/B"), "new-b");
}

#[test]
fn a_write_between_envokes_read_and_its_write_is_never_overwritten() {
    // Vault: the read's answer is held back while another writer makes version 2; envoke's
    // check-and-set on version 1 is refused.
    let bao = Bao::start();
    bao.kv2_put("secret", "race", json!({ "KEEP": "v1" }));
    let proxy = Proxy::start(bao.addr.trim_start_matches("http://"));
    proxy.delay_answers(Duration::from_millis(1500));
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_ADDR", &proxy.addr)
        .file(".env", "NEW=value-new\n");
    let child = import_in_background(
        &envoke,
        &["import", ".env", "--to", "vault://secret/race", "--write"],
    );
    proxy.wait_for_answer("GET /v1/secret/data/race", Duration::from_secs(20));
    bao.kv2_put("secret", "race", json!({ "KEEP": "v2", "OTHER": "theirs" }));
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("changed while envoke was importing"),
        "{stderr}"
    );
    assert!(stderr.contains("check-and-set"), "{stderr}");
    let data = bao.api("GET", "secret/data/race", None);
    assert_eq!(
        data["data"]["data"],
        json!({ "KEEP": "v2", "OTHER": "theirs" })
    );

    // AWS: the GetSecretValue answer is held back while another writer puts a version; envoke
    // sees AWSCURRENT moved and stops.
    let moto = Moto::start();
    moto.create("race", r#"{"KEEP":"v1"}"#);
    let proxy = Proxy::start(moto.endpoint.trim_start_matches("http://"));
    proxy.delay_answers(Duration::from_millis(1500));
    let envoke = Envoke::new()
        .aws(&moto)
        .env("AWS_ENDPOINT_URL", &proxy.addr)
        .file(".env", "NEW=value-new\n");
    let child = import_in_background(
        &envoke,
        &["import", ".env", "--to", "aws-sm://race", "--write"],
    );
    proxy.wait_for_answer("secretsmanager.GetSecretValue", Duration::from_secs(20));
    moto.put("race", r#"{"KEEP":"v2","OTHER":"theirs"}"#);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("AWSCURRENT moved from version"), "{stderr}");
    assert_eq!(moto.value("race"), r#"{"KEEP":"v2","OTHER":"theirs"}"#);
}

/// A .env with what the common loaders agree on, and python-dotenv's reading of it.
const LOADER_CASES: &str = "\u{feff}HOST=db\n\
export\tUSER_NAME=app\n\
URL=postgres://${USER_NAME}@${HOST}/app\n\
GREETING=\"hello\\n$HOST\"\n\
LITERAL='${HOST} stays'\n\
FILL_ME=   # fill me in\n\
TABBED=b\t#c\n\
DEFAULTED=${MISSING:-fallback}\r\n\
ESCAPED=cost\\$5\rLONE_CR=next\n";

/// What python-dotenv (the loader Flask uses) gives for `text`, by name.
fn python_dotenv(dir: &std::path::Path, text: &str) -> BTreeMap<String, String> {
    let path = dir.join("loader.env");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    )
    .args([
        "-c",
        "import json, sys; from dotenv import dotenv_values; \
         print(json.dumps(dotenv_values(sys.argv[1])))",
    ])
    .arg(&path)
    .env_remove("MISSING")
    .output()
    .expect("the venv's python (scripts/setup installs python-dotenv)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_child_gets_what_python_dotenv_would_have_loaded() {
    let bao = Bao::start();
    let envoke = Envoke::new().vault(&bao).file(".env", LOADER_CASES);
    let expected = python_dotenv(envoke.dir(), LOADER_CASES);
    // Where python-dotenv differs from the other common loaders (docker compose, dotenvy, Ruby's
    // dotenv), envoke follows the majority (docs/migrating-from-dotenv.md): python-dotenv leaves
    // a bare `$HOST` and `\$` alone, and expands `${HOST}` inside single quotes. Every other
    // value must be python-dotenv's.
    let mut expected = expected;
    expected.insert("GREETING".into(), "hello\ndb".into());
    expected.insert("ESCAPED".into(), "cost$5".into());
    expected.insert("LITERAL".into(), "${HOST} stays".into());
    let output = envoke.run(["import", ".env", "--to", "vault://secret/app", "--write"]);
    output
        .assert_code(0)
        .assert_stderr_contains("expanded the variables in URL, GREETING, DEFAULTED");
    let (run, env) = envoke.child_env(&[]);
    run.assert_code(0);
    for (name, value) in &expected {
        assert_eq!(
            env.get(name),
            Some(value),
            "{name}: python-dotenv gives {value:?}"
        );
    }
    assert_eq!(env["URL"], "postgres://app@db/app");
    assert_eq!(env["LITERAL"], "${HOST} stays");
}

#[test]
fn no_expand_keeps_dollar_text_and_a_command_substitution_is_refused() {
    let moto = Moto::start();
    let envoke = Envoke::new()
        .aws(&moto)
        .file(".env", "HOST=db\nURL=postgres://${HOST}/app\n");
    envoke
        .run([
            "import",
            ".env",
            "--to",
            "aws-sm://app",
            "--write",
            "--no-expand",
        ])
        .assert_code(0);
    let (_, env) = envoke.child_env(&[]);
    assert_eq!(env["URL"], "postgres://${HOST}/app");

    Envoke::new()
        .file(".env", "A=1\nTOKEN=$(cat /etc/secret-token)\n")
        .run(["import", ".env", "--to", "aws-sm://app"])
        .assert_code(125)
        .assert_stderr_contains("line 2")
        .assert_stderr_contains("never runs")
        .assert_never_shows("/etc/secret-token");
    Envoke::new()
        .file(".env", "URL=postgres://${DB_USER}@db/app\n")
        .env("DB_USER", "laptop-user")
        .run(["import", ".env", "--to", "aws-sm://app"])
        .assert_code(125)
        .assert_stderr_contains("does not define")
        .assert_never_shows("laptop-user");
}

#[test]
fn only_provably_harmless_values_stay_literal_and_the_user_decides_the_rest() {
    let envoke = Envoke::new().file(
        ".env",
        "SLACK_HOOK=https://hooks.example.com/services/T000/B000/XXXX\n\
         API_BASE=https://api.example.com\n\
         TIMEOUT=30\n\
         FEATURE_FLAG=green\n",
    );
    let output = envoke.run([
        "import",
        ".env",
        "--to",
        "aws-sm://app",
        "--literal",
        "FEATURE_FLAG",
        "--secret",
        "TIMEOUT",
    ]);
    output.assert_code(0);
    let manifest: toml::Table = output.stdout.parse().expect("the manifest is valid TOML");
    let env = manifest["env"].as_table().unwrap();
    assert_eq!(env["SLACK_HOOK"].as_str(), Some("aws-sm://app#SLACK_HOOK"));
    assert_eq!(
        env["API_BASE"]["value"].as_str(),
        Some("https://api.example.com")
    );
    assert_eq!(env["TIMEOUT"].as_str(), Some("aws-sm://app#TIMEOUT"));
    assert_eq!(env["FEATURE_FLAG"].as_str(), Some("green"));
    output.assert_stderr_contains("2 secret values go to aws-sm://app");
    let quiet = envoke.run(["-q", "import", ".env", "--to", "aws-sm://app"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "", "-q silences the notes");
    envoke
        .run(["import", ".env", "--to", "aws-sm://app", "--secret", "NOPE"])
        .assert_code(125)
        .assert_stderr_contains("--secret NOPE: the .env has no variable NOPE");
    for bad in [
        "vault://secret/a\"b",
        "vault://secret/app/%2e%2e/other",
        "vault://secret/a/../b",
    ] {
        envoke
            .run(["import", ".env", "--to", bad])
            .assert_code(125)
            .assert_stderr_contains("is not a destination");
    }
}
