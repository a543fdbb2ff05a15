//! The way off a .env file: `envoke import` stores its secrets in Secrets Manager or Vault and
//! writes the manifest that references them; the application then gets exactly the values it
//! had, and nothing printed on the way holds one.

use std::collections::BTreeMap;

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
            .assert_stderr_contains("stored 4 secret values")
            .assert_stderr_contains("delete .env");
        for secret in SECRETS {
            output.assert_never_shows(secret);
        }
        let created = moto.recorded_operations();
        assert_eq!(
            created.iter().filter(|o| *o == "CreateSecret").count(),
            if split { 4 } else { 1 },
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

    // A second import does not overwrite the manifest without --force; with it, the secret gets
    // a new version.
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
        .assert_code(0);
    let metadata = bao.api("GET", "secret/metadata/app", None);
    assert_eq!(metadata["data"]["current_version"], 2);
    assert_child_has_the_original_values(&envoke);
}

#[test]
fn a_broken_dotenv_file_is_reported_by_line_without_its_values() {
    let envoke = Envoke::new().file(".env", "A=ok\nB=\"sk-unclosed-secret\nC=1\n");
    envoke
        .run(["import", ".env", "--to", "vault://secret/app"])
        .assert_code(125)
        .assert_stderr_contains("line 2: a quote that is never closed")
        .assert_never_shows("sk-unclosed-secret");
    Envoke::new()
        .file(".env", "A=sk-123\n")
        .run(["import", ".env"])
        .assert_code(125)
        .assert_stderr_contains("say where the secrets go");
}
