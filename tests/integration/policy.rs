//! `envoke policy` prints the least-privilege policy a manifest needs, and `check --watch` proves
//! what watching will ask: the policies are given to real servers and used.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Bao, Envoke, Moto, Supervised, closed_address, dynamic_database};

/// The actions of an IAM policy document, and the resources of each action.
fn statements(policy: &Value) -> Vec<(String, Value)> {
    policy["Statement"]
        .as_array()
        .expect("a Statement array")
        .iter()
        .flat_map(|statement| {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            statement["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a.as_str().unwrap().to_owned(),
                        statement["Resource"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn resources(policy: &Value, action: &str) -> Option<Value> {
    statements(policy)
        .into_iter()
        .find(|(a, _)| a == action)
        .map(|(_, r)| r)
}

/// A token whose only policy is `hcl` (not even the default one).
fn token_with_policy(bao: &Bao, name: &str, hcl: &str) -> String {
    bao.api(
        "POST",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": hcl })),
    );
    let answer = bao.api(
        "POST",
        "auth/token/create",
        Some(json!({ "policies": [name], "no_default_policy": true })),
    );
    answer["auth"]["client_token"].as_str().unwrap().to_owned()
}

#[test]
fn aws_policy_names_exactly_the_referenced_secrets() {
    let envoke = Envoke::new()
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest(
            r#"
[env]
DB      = "aws-sm://prod/db#password"
DB_USER = "aws-sm://prod/db#username"
EAST    = "aws-sm://prod/api?region=us-east-1"
OLD     = "aws-sm://prod/db?version-stage=AWSPREVIOUS#password"
PINNED  = "aws-sm://prod/pinned?version-id=v-1"
BY_ARN  = "aws-sm://arn:aws:secretsmanager:us-west-2:123456789012:secret:team/key-AbCdEf"
LITERAL = "not a secret"
"#,
        );
    let output = envoke.run(["policy", "--aws"]);
    output
        .assert_code(0)
        .assert_stderr_contains("# kms:Decrypt");
    let policy: Value = serde_json::from_str(&output.stdout).expect("JSON on stdout");
    assert_eq!(policy["Version"], "2012-10-17");
    assert_eq!(
        resources(&policy, "secretsmanager:GetSecretValue").unwrap(),
        json!([
            "arn:aws:secretsmanager:eu-central-1:*:secret:prod/db-??????",
            "arn:aws:secretsmanager:eu-central-1:*:secret:prod/pinned-??????",
            "arn:aws:secretsmanager:us-east-1:*:secret:prod/api-??????",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/key-AbCdEf",
        ])
    );
    // IAM has no resource type for it; Secrets Manager checks GetSecretValue per secret.
    assert_eq!(
        resources(&policy, "secretsmanager:BatchGetSecretValue").unwrap(),
        "*"
    );
    assert_eq!(resources(&policy, "secretsmanager:DescribeSecret"), None);
    assert_eq!(resources(&policy, "secretsmanager:ListSecrets"), None);

    let watched = envoke.run(["policy", "--aws", "--watch"]);
    watched.assert_code(0);
    let policy: Value = serde_json::from_str(&watched.stdout).unwrap();
    // A version id never changes: it is not watched.
    assert_eq!(
        resources(&policy, "secretsmanager:DescribeSecret").unwrap(),
        json!([
            "arn:aws:secretsmanager:eu-central-1:*:secret:prod/db-??????",
            "arn:aws:secretsmanager:us-east-1:*:secret:prod/api-??????",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/key-AbCdEf",
        ])
    );
    // The sweep's: no resource-level permissions.
    assert_eq!(
        resources(&policy, "secretsmanager:ListSecrets").unwrap(),
        "*"
    );
    assert_eq!(
        envoke.run(["policy", "--aws", "--watch"]).stdout,
        watched.stdout,
        "the same manifest prints the same policy"
    );
}

#[test]
fn aws_policy_notes_what_json_cannot_say() {
    let envoke = Envoke::new().manifest(
        "[aws]\nrole_arn = \"arn:aws:iam::123456789012:role/app\"\n[env]\nDB = \"aws-sm://prod/db?version-stage=AWSPENDING\"\n",
    );
    let output = envoke.run(["policy", "--aws"]);
    output
        .assert_code(0)
        .assert_stderr_contains("sts:AssumeRole")
        .assert_stderr_contains("arn:aws:iam::123456789012:role/app")
        .assert_stderr_contains("no region configured");
    let policy: Value = serde_json::from_str(&output.stdout).unwrap();
    // Only a stage: GetSecretValue one by one, no batch.
    assert_eq!(
        statements(&policy),
        [(
            "secretsmanager:GetSecretValue".to_owned(),
            json!(["arn:aws:secretsmanager:*:*:secret:prod/db-??????"])
        )]
    );
    Envoke::new()
        .manifest("[env]\nV = \"vault://secret/app\"\n")
        .run(["policy", "--aws"])
        .assert_code(125)
        .assert_stderr_contains("references no AWS secret");
    Envoke::new()
        .manifest("[env]\nV = \"vault://secret\"\n")
        .run(["policy", "--vault"])
        .assert_code(125)
        .assert_stderr_contains("no policy printed");
}

#[test]
fn aws_policy_is_enough_and_watching_needs_its_watch_form() {
    let moto = Moto::start();
    moto.create("app/db", r#"{"password":"pw-policy-1"}"#);
    moto.create("app/api", "tok-policy-2");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nDB = \"aws-sm://app/db#password\"\nAPI = \"aws-sm://app/api\"\n");
    // moto checks actions only (against Resource "*"): the users get the policies' actions; the
    // resources are the other test's business.
    let actions = |flags: &[&str]| -> Vec<String> {
        let mut args = vec!["policy", "--aws"];
        args.extend_from_slice(flags);
        let output = envoke.run(&args);
        output.assert_code(0);
        let policy: Value = serde_json::from_str(&output.stdout).unwrap();
        let actions: BTreeSet<String> = statements(&policy).into_iter().map(|(a, _)| a).collect();
        actions.into_iter().collect()
    };
    let plain = actions(&[]);
    let watching = actions(&["--watch"]);
    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let (plain_key, plain_secret) = moto.iam_user("plain", &as_str(&plain));
    let (watch_key, watch_secret) = moto.iam_user("watching", &as_str(&watching));
    moto.enforce_iam();
    let with_key = |key: &str, secret: &str| {
        Envoke::new()
            .aws(&moto)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
    };
    let plain = with_key(&plain_key, &plain_secret)
        .manifest("[env]\nDB = \"aws-sm://app/db#password\"\nAPI = \"aws-sm://app/api\"\n");
    let (output, env) = plain.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB"], "pw-policy-1");

    let check = plain.run(["check", "--watch", "--format", "json"]);
    check.assert_code(125).assert_never_shows("pw-policy-1");
    let report: Value = serde_json::from_str(&check.stdout).unwrap();
    for row in report["variables"].as_array().unwrap() {
        assert_eq!(row["status"], "watch denied", "{report}");
        let error = row["error"].as_str().unwrap();
        assert!(
            error.starts_with("watching needs secretsmanager:DescribeSecret on app/"),
            "{error}"
        );
    }
    let text = plain.run(["check", "--watch"]);
    text.assert_code(125);
    assert!(
        text.stdout.contains("watch denied")
            && text
                .stdout
                .contains("2 of 2 variables resolve but cannot be watched"),
        "{}",
        text.stdout
    );

    let watching = with_key(&watch_key, &watch_secret)
        .manifest("[env]\nDB = \"aws-sm://app/db#password\"\nAPI = \"aws-sm://app/api\"\n");
    let check = watching.run(["check", "--watch"]);
    check.assert_code(0);
    assert!(
        check
            .stdout
            .contains("all 2 variables resolve and can be watched"),
        "{}",
        check.stdout
    );
    let run = Supervised::start(
        &watching,
        &["-vv", "--watch", "1s"],
        "echo up >> \"$LOG\"; sleep 30",
    );
    run.wait_lines(1, Duration::from_secs(20));
    let window = Instant::now();
    run.wait_until(
        Duration::from_secs(15),
        "a poll that finds no change",
        || run.logs().contains("no change"),
    );
    // A sleep: the rest of a 2.5 s window (a few polls) without a denial.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(window.elapsed()));
    let (_, logs) = run.stop();
    assert!(
        !logs.contains("denied") && !logs.contains("will retry"),
        "{logs}"
    );
    assert!(logs.contains("no change"), "{logs}");
}

#[test]
fn vault_policy_is_enough_to_run_and_watch_and_its_plain_form_is_not_enough_to_watch() {
    let (_pg, bao, _) = dynamic_database("4s", "1h");
    bao.mount_kv("kv1", 1);
    bao.kv2_put("secret", "app/db", json!({"password": "pw-vault-1"}));
    bao.kv2_put("secret", "app/db", json!({"password": "pw-vault-2"}));
    bao.kv1_put("kv1", "app", json!({"token": "tok-vault-3"}));
    let manifest = r#"
[env]
DB_PASSWORD = "vault://secret/app/db#password"
FIRST       = "vault://secret/app/db?version=1#password"
TOKEN       = "vault://kv1/app#token"
DB_USER     = "vault://database/creds/app#username"
"#;
    let admin = Envoke::new().vault(&bao).manifest(manifest);
    let watch_policy = admin.run(["policy", "--vault", "--watch"]);
    watch_policy.assert_code(0);
    let hcl = &watch_policy.stdout;
    for rule in [
        "path \"secret/data/app/db\"",
        "path \"secret/metadata/app/db\"",
        "path \"kv1/app\"",
        "path \"database/creds/app\"",
        "path \"sys/leases/renew\"",
        "path \"sys/leases/revoke\"",
        "path \"sys/internal/ui/mounts/secret/app/db\"",
    ] {
        assert_eq!(hcl.matches(rule).count(), 1, "{rule} once in\n{hcl}");
    }
    assert!(
        !hcl.contains("ASSUMED") && !hcl.contains("kv1/data"),
        "{hcl}"
    );
    let plain_policy = admin.run(["policy", "--vault"]);
    plain_policy.assert_code(0);
    assert!(
        !plain_policy.stdout.contains("metadata") && !plain_policy.stdout.contains("renew"),
        "{}",
        plain_policy.stdout
    );

    // The watch policy: a run that watches sees no denial over a few polls and a lease renewal
    // (the lease lives 4 s, renewed at about 2.7 s), and revokes the lease at exit.
    let token = token_with_policy(&bao, "envoke-watch", hcl);
    let workload = Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &token)
        .manifest(manifest);
    workload.run(["check", "--watch"]).assert_code(0);
    let run = Supervised::start(
        &workload,
        &["-vv", "--watch", "1s", "--settle", "100ms"],
        "echo \"$DB_PASSWORD\" >> \"$LOG\"; sleep 30",
    );
    assert_eq!(run.wait_lines(1, Duration::from_secs(20)), ["pw-vault-2"]);
    let window = Instant::now();
    run.wait_until(Duration::from_secs(15), "a lease renewal", || {
        run.logs().contains("lease renewed")
    });
    // A sleep: the rest of a 4 s window (a few polls) without a restart or a denial.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(window.elapsed()));
    assert_eq!(run.lines().len(), 1, "restarted: {}", run.logs());
    let (_, logs) = run.stop();
    for denial in ["denied", "permission", "will retry", "cannot revoke"] {
        assert!(!logs.contains(denial), "{denial}:\n{logs}");
    }
    assert!(logs.contains("lease renewed"), "{logs}");
    assert!(bao.leases("database/creds/app").is_empty(), "{logs}");

    // The plain policy runs, but watching it is denied, naming what is missing.
    let token = token_with_policy(&bao, "envoke-plain", &plain_policy.stdout);
    let workload = workload.env("VAULT_TOKEN", &token);
    workload.run(["run", "--", "true"]).assert_code(0);
    let check = workload.run(["check", "--watch", "--format", "json"]);
    check.assert_code(125).assert_never_shows("pw-vault-2");
    let report: Value = serde_json::from_str(&check.stdout).unwrap();
    let row = |name: &str| {
        report["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("DB_PASSWORD")["status"], "watch denied", "{report}");
    assert_eq!(
        row("DB_PASSWORD")["error"],
        "watching needs read on secret/metadata/app/db"
    );
    assert_eq!(row("DB_USER")["status"], "watch denied", "{report}");
    assert_eq!(
        row("DB_USER")["error"],
        "watching needs update on sys/leases/renew"
    );
    // Pinned, and re-read: nothing more to ask.
    assert_eq!(row("FIRST")["status"], "ok");
    assert_eq!(row("TOKEN")["status"], "ok");
    // Without watching, check asks nothing more.
    workload.run(["check"]).assert_code(0);
}

#[test]
fn vault_policy_without_a_server_assumes_kv2_and_says_so() {
    let envoke = Envoke::new()
        .env("VAULT_ADDR", closed_address())
        .manifest("[vault]\nauth = \"approle\"\n[env]\nDB = \"vault://secret/app/db#password\"\n");
    // No role id, no secret id, no server: still a policy.
    let output = envoke.run(["policy", "--vault"]);
    output
        .assert_code(0)
        .assert_stderr_contains("the engines were assumed");
    let hcl = &output.stdout;
    assert!(hcl.contains("path \"secret/data/app/db\""), "{hcl}");
    assert!(
        hcl.contains("ASSUMED KV v2 at secret/; on KV v1 or another engine the rule is path \"secret/app/db\""),
        "{hcl}"
    );
    assert!(hcl.contains("auth/approle/login"), "{hcl}");
    assert!(hcl.contains("path \"auth/token/renew-self\""), "{hcl}");
    assert!(hcl.contains("path \"auth/token/revoke-self\""), "{hcl}");
}

/// The first ```LANG block after `### {heading}` in docs/permissions.md.
fn permissions_doc_block(heading: &str, lang: &str, nth: usize) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/docs/permissions.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let section = text.split(&format!("### {heading}\n")).nth(1).unwrap();
    section
        .split(&format!("```{lang}\n"))
        .nth(nth)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no {lang} block in {heading}"))
        .to_owned()
}

#[test]
fn the_permissions_doc_shows_what_envoke_prints() {
    let manifest = permissions_doc_block("An example", "toml", 1);
    let aws = Envoke::new()
        .env("AWS_REGION", "eu-west-1")
        .manifest(&manifest)
        .run(["policy", "--aws", "--watch"]);
    aws.assert_code(0);
    assert_eq!(aws.stdout, permissions_doc_block("An example", "json", 1));
    let bao = Bao::start();
    let vault = Envoke::new()
        .vault(&bao)
        .manifest(&manifest)
        .run(["policy", "--vault", "--watch"]);
    vault.assert_code(0);
    assert_eq!(vault.stdout, permissions_doc_block("An example", "hcl", 1));
}

#[test]
fn a_login_methods_policy_asks_the_server_with_the_shells_token_and_keeps_the_logins_rules() {
    // An operator at a desk: the Deployment's ENVOKE_VAULT_AUTH=kubernetes, and an admin token
    // in the shell. The login cannot work here; the token asks which engines serve the paths,
    // and the rules are still the login's (its renew-self and revoke-self among them).
    let bao = Bao::start();
    bao.kv2_put("secret", "app/db", json!({ "password": "x" }));
    let envoke = Envoke::new()
        .vault(&bao)
        .env("ENVOKE_VAULT_AUTH", "kubernetes")
        .env("ENVOKE_VAULT_ROLE", "app")
        .manifest("[env]\nDB = \"vault://secret/app/db#password\"\n");
    let output = envoke.run(["policy", "--vault"]);
    output.assert_code(0);
    assert!(
        output.stdout.contains("path \"auth/token/renew-self\""),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("path \"secret/data/app/db\""),
        "{}",
        output.stdout
    );
    assert!(!output.stdout.contains("ASSUMED"), "{}", output.stdout);
}
