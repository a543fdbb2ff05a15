//! `envoke check`: a status per variable, never a value.

use serde_json::{Value, json};

use crate::support::{Bao, Envoke, Moto, closed_address};

#[test]
fn check_reports_every_status_as_json() {
    let moto = Moto::start();
    let bao = Bao::start();
    let (_, aws_version) = moto.create("prod/db", r#"{"password":"pw-check-1"}"#);
    bao.kv2_put("secret", "app", json!({"token": "tok-check-2"}));
    bao.kv2_put("secret", "app", json!({"token": "tok-check-3"}));
    let envoke = Envoke::new()
        .aws(&moto)
        .vault(&bao)
        .env("FROM_ENV", "vault://secret/app#token")
        .manifest(
            r#"
[env]
DB_PASSWORD = "aws-sm://prod/db#password"
API_TOKEN   = "vault://secret/app#token"
MISSING     = "aws-sm://prod/missing"
NO_KEY      = "vault://secret/app#nope"
BAD         = "vault://secret"
LITERAL     = "not a reference"
"#,
        );
    let output = envoke.run(["check", "--format", "json"]);
    output
        .assert_code(125)
        .assert_never_shows("pw-check-1")
        .assert_never_shows("tok-check-3");
    let report: Value = serde_json::from_str(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], false);
    let rows = report["variables"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {report}"))
    };
    assert_eq!(row("DB_PASSWORD")["status"], "ok");
    assert_eq!(row("DB_PASSWORD")["provider"], "aws");
    assert_eq!(row("DB_PASSWORD")["version"], aws_version.as_str());
    assert_eq!(row("DB_PASSWORD")["reference"], "aws-sm://prod/db#password");
    assert_eq!(row("API_TOKEN")["status"], "ok");
    assert_eq!(row("API_TOKEN")["provider"], "vault");
    assert_eq!(row("API_TOKEN")["version"], "2");
    assert_eq!(row("FROM_ENV")["status"], "ok");
    assert_eq!(row("MISSING")["status"], "not found");
    assert_eq!(row("NO_KEY")["status"], "key missing");
    assert_eq!(row("BAD")["status"], "invalid");
    assert_eq!(row("LITERAL")["status"], "literal");
    assert_eq!(row("LITERAL")["reference"], "(literal)");
    assert_eq!(rows.len(), 7, "every variable, literals too: {report}");
    output.assert_never_shows("not a reference");
}

#[test]
fn check_exits_zero_when_everything_resolves() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "tok-ok"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nAPI_TOKEN = \"vault://secret/app#token\"\n");
    let output = envoke.run(["check"]);
    output.assert_code(0).assert_never_shows("tok-ok");
    assert!(output.stdout.contains("API_TOKEN"), "{}", output.stdout);
    assert!(
        output.stdout.contains("all 1 variables resolve"),
        "{}",
        output.stdout
    );
}

#[test]
fn check_reports_unreachable_and_access_denied() {
    let bao = Bao::start();
    bao.kv2_put("secret", "forbidden", json!({"k": "v"}));
    let token = bao.token_with_read("nothing", &["secret/data/other"]);
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", &token)
        .env("AWS_ENDPOINT_URL", closed_address())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest("[env]\nDENIED = \"vault://secret/forbidden#k\"\nDOWN = \"aws-sm://x\"\n");
    let output = envoke.run(["check", "--format", "json"]);
    output.assert_code(125);
    let report: Value = serde_json::from_str(&output.stdout).unwrap();
    let status = |name: &str| {
        report["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("DENIED").as_deref(), Some("access denied"));
    assert_eq!(status("DOWN").as_deref(), Some("unreachable"));
}

#[test]
fn a_policy_is_not_printed_for_a_reference_that_would_widen_it() {
    let envoke = Envoke::new()
        .env("VAULT_TOKEN", "t")
        .manifest("[env]\nA = \"vault://secret/app*\"\nB = \"aws-sm://prod/*\"\n");
    envoke
        .run(["policy", "--vault"])
        .assert_code(125)
        .assert_stderr_contains("vault://secret/app* has a character that means more in a policy");
    envoke
        .run(["policy", "--aws"])
        .assert_code(125)
        .assert_stderr_contains("aws-sm://prod/* has a character");
}

/// IAM reads `${aws:username}` in a resource as a policy variable and `*`/`?` as wildcards,
/// wherever they are in the ARN: a secret id, an ARN's account, or the region the ARN is built
/// with (`[aws] region`, AWS_REGION) holding one would grant more than the secret it names.
#[test]
fn an_aws_policy_refuses_wildcards_and_policy_variables_in_region_account_and_secret_id() {
    let refused = |envoke: Envoke, shown: &str| {
        let output = envoke.run(["policy", "--aws"]);
        output
            .assert_code(125)
            .assert_stderr_contains(shown)
            .assert_stderr_contains("no policy printed");
        assert!(output.stdout.is_empty(), "{}", output.stdout);
    };
    let manifest = |text: &str| Envoke::new().manifest(text);
    refused(
        manifest("[env]\nA = \"aws-sm://prod/${aws:username}\"\n"),
        "aws-sm://prod/${aws:username}",
    );
    refused(
        manifest(
            "[env]\nA = \"aws-sm://arn:aws:secretsmanager:eu-west-1:${aws:PrincipalAccount}:secret:x-AbCdEf\"\n",
        ),
        "${aws:PrincipalAccount}",
    );
    refused(
        manifest("[aws]\nregion = \"*\"\n[env]\nA = \"aws-sm://prod/db\"\n"),
        "[aws] region",
    );
    refused(
        manifest("[env]\nA = \"aws-sm://prod/db\"\n").env("AWS_REGION", "${aws:RequestedRegion}"),
        "AWS_REGION",
    );
    refused(
        manifest("[env]\nA = \"aws-sm://prod/db\"\n").env("AWS_REGION", "eu-west-?"),
        "AWS_REGION",
    );
}

/// Issue 23: a profile took production secrets from `[env]` and nothing said so. `check
/// --profile` marks each inherited row, in the table and in JSON; without a profile the table
/// has no FROM column.
#[test]
fn check_with_a_profile_marks_what_it_inherits_from_env() {
    let bao = Bao::start();
    bao.kv2_put("secret", "prod/mail", json!({"password": "mail-pw"}));
    bao.kv2_put("secret", "dev/db", json!({"password": "dev-pw"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .env("FROM_ENV", "vault://secret/dev/db#password")
        .manifest(
            r#"
[env]
MAIL_PASSWORD = "vault://secret/prod/mail#password"
DB_PASSWORD   = "vault://secret/prod/db#password"

[profiles.dev.env]
DB_PASSWORD = "vault://secret/dev/db#password"
"#,
        );
    let output = envoke.run(["check", "--profile", "dev"]);
    output.assert_code(0).assert_never_shows("mail-pw");
    let line = |name: &str| {
        output
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {}", output.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("NAME"), "NAME PROVIDER VERSION STATUS FROM REFERENCE");
    assert_eq!(
        line("MAIL_PASSWORD"),
        "MAIL_PASSWORD vault 1 ok env (inherited) vault://secret/prod/mail#password"
    );
    assert_eq!(
        line("DB_PASSWORD"),
        "DB_PASSWORD vault 1 ok profile vault://secret/dev/db#password"
    );
    assert_eq!(
        line("FROM_ENV"),
        "FROM_ENV vault 1 ok environment vault://secret/dev/db#password"
    );
    output.assert_stdout_contains(
        "1 of 3 variables are inherited from [env], not defined by profile dev \
         (`inherit = false` in [profiles.dev] leaves them out)",
    );

    let output = envoke.run(["check", "--profile", "dev", "--format", "json"]);
    let report: Value = serde_json::from_str(&output.stdout).expect("JSON on stdout");
    let row = |name: &str| {
        report["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {report}"))
    };
    assert_eq!(row("MAIL_PASSWORD")["from"], "env");
    assert_eq!(row("MAIL_PASSWORD")["inherited"], true);
    assert_eq!(row("DB_PASSWORD")["from"], "profile");
    assert_eq!(row("DB_PASSWORD")["inherited"], false);
    assert_eq!(row("FROM_ENV")["from"], "environment");

    // Without a profile: no column, no field, no note.
    let output = envoke.run(["check"]);
    output.assert_stdout_lacks("inherited");
    let header = output.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "PROVIDER", "VERSION", "STATUS", "REFERENCE"],
        "{}",
        output.stdout
    );
    let output = envoke.run(["check", "--format", "json"]);
    output
        .assert_stdout_lacks("\"from\"")
        .assert_stdout_lacks("\"inherited\"");
}

/// Issue 23: `check` counted "6 variables" for a 9-variable manifest and left out templates and
/// literals. Each gets a row with its status, never its value.
#[test]
fn check_lists_literals_and_templates_with_their_status_never_their_values() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "db",
        json!({"user": "u-check", "password": "pw-check-9"}),
    );
    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
DB_USER     = "vault://secret/db#user"
DB_PASSWORD = "vault://secret/db#password"
DB_HOST     = "db.internal.example"
LOG_LEVEL   = { value = "vault://looks/like/a#ref" }
DB_URL      = { template = "postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST}/app" }
DSN         = { template = "${DB_URL}?sslmode=require" }
"#,
    );
    let output = envoke.run(["check"]);
    output
        .assert_code(0)
        .assert_never_shows("pw-check-9")
        .assert_never_shows("u-check")
        .assert_never_shows("db.internal.example")
        .assert_never_shows("looks/like")
        .assert_never_shows("postgresql")
        .assert_never_shows("sslmode")
        .assert_stdout_contains("all 6 variables resolve\n");
    let line = |output: &crate::support::Output, name: &str| {
        output
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {}", output.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line(&output, "DB_HOST"), "DB_HOST - - literal (literal)");
    assert_eq!(
        line(&output, "LOG_LEVEL"),
        "LOG_LEVEL - - literal (literal)"
    );
    assert_eq!(line(&output, "DB_URL"), "DB_URL - - ok (template)");
    assert_eq!(line(&output, "DSN"), "DSN - - ok (template)");

    // A template is only as good as what it names: here a missing key two templates down.
    let broken = Envoke::new().vault(&bao).manifest(
        r#"
[env]
DB_PASSWORD = "vault://secret/db#nope"
DB_HOST     = "db.internal.example"
DB_URL      = { template = "postgresql://${DB_HOST}:${DB_PASSWORD}/app" }
DSN         = { template = "${DB_URL}?sslmode=require" }
"#,
    );
    let output = broken.run(["check"]);
    output
        .assert_code(125)
        .assert_never_shows("db.internal.example")
        .assert_stdout_contains("3 of 4 variables do not resolve\n")
        .assert_stdout_contains("the template names `DB_PASSWORD`, which has no value");
    assert_eq!(line(&output, "DB_URL"), "DB_URL - - key missing (template)");
    assert_eq!(line(&output, "DSN"), "DSN - - key missing (template)");

    let output = broken.run(["check", "--format", "json"]);
    let report: Value = serde_json::from_str(&output.stdout).expect("JSON on stdout");
    let rows = report["variables"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{report}");
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("DB_HOST")["status"], "literal");
    assert_eq!(row("DB_HOST")["provider"], "-");
    assert_eq!(row("DB_HOST")["reference"], "(literal)");
    assert_eq!(row("DSN")["status"], "key missing");
    assert_eq!(row("DSN")["reference"], "(template)");
}
