//! Every AWS Secrets Manager reference form, against moto.

use std::time::Duration;

use crate::support::proxy::Proxy;
use crate::support::{Envoke, Moto};

#[test]
fn every_aws_reference_form_resolves() {
    let moto = Moto::start();
    let (arn, first_version) = moto.create(
        "prod/db",
        r#"{"password":"pw-one","port":5432,"tls":{"mode":"require"}}"#,
    );
    let second_version = moto.put(
        "prod/db",
        r#"{"password":"pw-two","port":5432,"tls":{"mode":"verify"}}"#,
    );
    moto.create("prod/plain", "plain-text-value");

    let envoke = Envoke::new().aws(&moto).manifest(&format!(
        r#"
[env]
PASSWORD     = "aws-sm://prod/db#password"
PORT         = "aws-sm://prod/db#port"
TLS_MODE     = "aws-sm://prod/db#/tls/mode"
TLS          = "aws-sm://prod/db#tls"
WHOLE        = "aws-sm://prod/db"
PLAIN        = "aws-sm://prod/plain"
BY_ARN       = "aws-sm://{arn}#password"
CURRENT      = "aws-sm://prod/db?version-stage=AWSCURRENT#password"
PREVIOUS     = "aws-sm://prod/db?version-stage=AWSPREVIOUS#password"
FIRST        = "aws-sm://prod/db?version-id={first_version}#password"
SECOND       = "aws-sm://prod/db?version-id={second_version}#password"
"#
    ));
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["PASSWORD"], "pw-two");
    assert_eq!(env["PORT"], "5432", "a number is given as its JSON text");
    assert_eq!(
        env["TLS_MODE"], "verify",
        "a JSON pointer selects nested values"
    );
    assert_eq!(env["TLS"], r#"{"mode":"verify"}"#);
    assert_eq!(
        env["WHOLE"], r#"{"password":"pw-two","port":5432,"tls":{"mode":"verify"}}"#,
        "a JSON secret without #KEY stays one JSON string"
    );
    assert!(
        !env.contains_key("password"),
        "never exploded into variables"
    );
    assert_eq!(env["PLAIN"], "plain-text-value");
    assert_eq!(env["BY_ARN"], "pw-two");
    assert_eq!(env["CURRENT"], "pw-two");
    assert_eq!(env["PREVIOUS"], "pw-one");
    assert_eq!(env["FIRST"], "pw-one");
    assert_eq!(env["SECOND"], "pw-two");
}

#[test]
fn distinct_secrets_cost_one_batch_call_per_twenty() {
    let moto = Moto::start();
    let mut manifest = String::from("[env]\n");
    for i in 0..45 {
        moto.create(&format!("bulk/s{i}"), &format!(r#"{{"v":"value-{i}"}}"#));
        manifest.push_str(&format!("V{i} = \"aws-sm://bulk/s{i}#v\"\n"));
        // The same secret named again, whole and by key, costs nothing more.
        manifest.push_str(&format!("W{i} = \"aws-sm://bulk/s{i}\"\n"));
    }
    // Each answer held back 200 ms: calls sent together are seen in flight together.
    let proxy = Proxy::start(moto.endpoint.trim_start_matches("http://"));
    proxy.delay_answers(Duration::from_millis(200));
    let envoke = Envoke::new()
        .aws(&moto)
        .env("AWS_ENDPOINT_URL", &proxy.addr)
        .manifest(&manifest);
    moto.reset_recording();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["V0"], "value-0");
    assert_eq!(env["V44"], "value-44");
    assert_eq!(env["W7"], r#"{"v":"value-7"}"#);
    let operations = moto.recorded_operations();
    assert_eq!(
        operations,
        vec!["BatchGetSecretValue"; 3],
        "45 distinct secrets = ceil(45/20) = 3 calls"
    );
    assert_eq!(proxy.most_in_flight(), 3, "all calls at once");
}

#[test]
fn a_pinned_reference_uses_get_secret_value() {
    let moto = Moto::start();
    moto.create("pinned", "one");
    moto.put("pinned", "two");
    let envoke = Envoke::new().aws(&moto).manifest(
        "[env]\nA = \"aws-sm://pinned?version-stage=AWSPREVIOUS\"\nB = \"aws-sm://pinned\"\n",
    );
    moto.reset_recording();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!((env["A"].as_str(), env["B"].as_str()), ("one", "two"));
    let mut operations = moto.recorded_operations();
    operations.sort();
    assert_eq!(operations, ["BatchGetSecretValue", "GetSecretValue"]);
}

#[test]
fn binary_secrets_are_given_when_utf8_and_refused_otherwise() {
    let moto = Moto::start();
    moto.create_binary("bin/text", b"binary-but-text");
    moto.create_binary("bin/raw", &[0xff, 0xfe, 0x00, 0x01]);
    let ok = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nTEXT = \"aws-sm://bin/text\"\n");
    let (output, env) = ok.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["TEXT"], "binary-but-text");

    let bad = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nRAW = \"aws-sm://bin/raw\"\n");
    bad.run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "RAW (aws-sm://bin/raw): binary secret (SecretBinary) is not UTF-8",
        );
}

#[test]
fn a_value_with_a_nul_byte_is_refused_naming_the_variable() {
    let moto = Moto::start();
    moto.create("nul", "{\"k\":\"a\\u0000b\"}");
    let envoke = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nWITH_NUL = \"aws-sm://nul#k\"\n");
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("WITH_NUL (aws-sm://nul#k): value contains a NUL byte");
}

#[test]
fn missing_region_or_credentials_say_what_to_set() {
    Envoke::new()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DB_PASSWORD", "aws-sm://prod/db#password")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB_PASSWORD (aws-sm://prod/db#password): no AWS region configured: set AWS_REGION",
        );
    Envoke::new()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", crate::support::closed_address())
        .env("DB_PASSWORD", "aws-sm://prod/db#password")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("no usable AWS credentials");
}

#[test]
fn a_metadata_service_that_answers_wrongly_is_reported_as_missing_credentials() {
    // Off EC2 the chain ends at the instance metadata service; whatever answers there (here
    // moto, which knows nothing of IMDS tokens), the user needs to hear about credentials, not
    // about Secrets Manager.
    let moto = Moto::start();
    Envoke::new()
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &moto.endpoint)
        .env("DB_PASSWORD", "aws-sm://prod/db#password")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB_PASSWORD (aws-sm://prod/db#password): no usable AWS credentials (",
        )
        .assert_stderr_lacks("request to");
}

/// The form parameter `name` of a recorded query-protocol call.
fn parameter<'a>(call: &'a [(String, String)], name: &str) -> Option<&'a str> {
    call.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_assumed_role_is_assumed_once_and_serves_every_region() {
    let moto = Moto::start();
    moto.create("app/db", r#"{"password":"east-pw"}"#);
    moto.create_in("eu-west-1", "app/replica", r#"{"password":"west-pw"}"#);
    let role = "arn:aws:iam::123456789012:role/billing-secrets";
    // docs/authentication.md's example, in the test's default region.
    let aws = crate::support::doc_example(
        "authentication.md",
        "Assuming a role",
        &[("\"eu-west-1\"", &format!("\"{}\"", crate::support::REGION))],
    );
    let envoke = Envoke::new().aws(&moto).manifest(&format!(
        r#"
[env]
DB      = "aws-sm://app/db#password"
REPLICA = "aws-sm://app/replica?region=eu-west-1#password"

{aws}"#
    ));
    moto.reset_recording();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB"], "east-pw");
    assert_eq!(env["REPLICA"], "west-pw");
    let calls = moto.recorded_calls("AssumeRole");
    assert_eq!(calls.len(), 1, "one AssumeRole for both regions' clients");
    assert_eq!(parameter(&calls[0], "RoleArn"), Some(role));
    assert_eq!(parameter(&calls[0], "ExternalId"), Some("billing-4711"));
    assert_eq!(parameter(&calls[0], "RoleSessionName"), Some("billing-api"));
    assert!(
        !env.values().any(|v| v.starts_with("ASIA")),
        "the role's keys stay with envoke"
    );

    let defaults = Envoke::new().aws(&moto).manifest(&format!(
        "[env]\nDB = \"aws-sm://app/db#password\"\n\n[aws]\nrole_arn = \"{role}\"\n"
    ));
    moto.reset_recording();
    let (output, env) = defaults.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB"], "east-pw");
    let calls = moto.recorded_calls("AssumeRole");
    assert_eq!(calls.len(), 1);
    assert_eq!(parameter(&calls[0], "RoleSessionName"), Some("envoke"));
    assert_eq!(parameter(&calls[0], "ExternalId"), None);
}

#[test]
fn external_id_without_role_arn_is_a_manifest_error() {
    Envoke::new()
        .manifest("[aws]\nexternal_id = \"x\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid setting `[aws] external_id`")
        .assert_stderr_contains("needs role_arn");
}

#[test]
fn a_policy_without_batch_get_secret_value_falls_back_to_get_secret_value() {
    // The usual ECS task role: GetSecretValue on the app's secrets, nothing else.
    let moto = Moto::start();
    moto.create("app/db", r#"{"password":"db-pw"}"#);
    moto.create("app/api", "api-token");
    let (key_id, secret_key) = moto.iam_user("task", &["secretsmanager:GetSecretValue"]);
    moto.enforce_iam();
    let envoke = Envoke::new()
        .aws(&moto)
        .env("AWS_ACCESS_KEY_ID", &key_id)
        .env("AWS_SECRET_ACCESS_KEY", &secret_key)
        .manifest("[env]\nDB = \"aws-sm://app/db#password\"\nAPI = \"aws-sm://app/api\"\n");
    moto.reset_recording();
    let (output, env) = envoke.child_env(&["-vv"]);
    output.assert_code(0);
    assert_eq!(env["DB"], "db-pw");
    assert_eq!(env["API"], "api-token");
    let mut operations = moto.recorded_operations();
    operations.sort();
    assert_eq!(
        operations,
        ["BatchGetSecretValue", "GetSecretValue", "GetSecretValue"]
    );
    output
        .assert_stderr_contains("BatchGetSecretValue is denied; fetching the secrets one by one")
        .assert_stderr_lacks("db-pw")
        .assert_stderr_lacks(&secret_key);
}

#[test]
fn no_secrets_manager_permission_is_access_denied_per_variable() {
    let moto = Moto::start();
    moto.create("app/db", r#"{"password":"db-pw"}"#);
    let (key_id, secret_key) = moto.iam_user("nobody", &[]);
    moto.enforce_iam();
    Envoke::new()
        .aws(&moto)
        .env("AWS_ACCESS_KEY_ID", &key_id)
        .env("AWS_SECRET_ACCESS_KEY", &secret_key)
        .manifest("[env]\nDB = \"aws-sm://app/db#password\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB (aws-sm://app/db#password): access denied: secretsmanager:GetSecretValue on app/db",
        )
        .assert_stderr_lacks("panicked")
        .assert_never_shows(&secret_key);
}

#[test]
fn a_reference_with_a_region_is_read_in_that_region() {
    // moto keeps regions apart: the same name holds a different secret in each.
    let moto = Moto::start();
    moto.create("shared/name", "from-us-east-1");
    moto.create_in("eu-west-1", "shared/name", "from-eu-west-1");
    moto.put_in("eu-west-1", "shared/name", "from-eu-west-1-v2");
    moto.create_in("ap-south-1", "only/south", "from-ap-south-1");
    let envoke = Envoke::new().aws(&moto).manifest(
        r#"
[env]
HOME_REGION = "aws-sm://shared/name"
WEST        = "aws-sm://shared/name?region=eu-west-1"
WEST_OLD    = "aws-sm://shared/name?version-stage=AWSPREVIOUS&region=eu-west-1"
SOUTH       = "aws-sm://only/south?region=ap-south-1"
"#,
    );
    moto.reset_recording();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["HOME_REGION"], "from-us-east-1");
    assert_eq!(env["WEST"], "from-eu-west-1-v2");
    assert_eq!(env["WEST_OLD"], "from-eu-west-1");
    assert_eq!(env["SOUTH"], "from-ap-south-1");
    let mut operations = moto.recorded_operations();
    operations.sort();
    assert_eq!(
        operations,
        [
            "BatchGetSecretValue",
            "BatchGetSecretValue",
            "BatchGetSecretValue",
            "GetSecretValue"
        ],
        "one batch per region"
    );

    // Without the region, the secret is looked for in the configured one.
    Envoke::new()
        .aws(&moto)
        .manifest("[env]\nSOUTH = \"aws-sm://only/south\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "SOUTH (aws-sm://only/south): not found: no secret only/south in us-east-1",
        );
}

#[test]
fn a_control_character_in_an_aws_setting_is_an_error_naming_it_not_a_panic() {
    let reference = "[env]\nDB = \"aws-sm://prod/db#password\"\n";
    let base = || {
        Envoke::new()
            .env("AWS_ENDPOINT_URL", crate::support::closed_address())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
            .env("AWS_SECRET_ACCESS_KEY", "secret-key-value")
            .env("AWS_EC2_METADATA_DISABLED", "true")
    };
    for (name, value) in [
        ("AWS_REGION", "us-east-1\n"),
        ("AWS_DEFAULT_REGION", "us-east-1\n"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY\n"),
        ("AWS_SECRET_ACCESS_KEY", "secret-key-value\r\n"),
        ("AWS_SESSION_TOKEN", "token-value\n"),
        ("AWS_PROFILE", "team-x\n"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1\n"),
    ] {
        let output = base()
            .env(name, value)
            .manifest(reference)
            .run(["run", "--", "true"]);
        output
            .assert_code(125)
            .assert_stderr_contains(&format!(
                "DB (aws-sm://prod/db#password): invalid {name}: contains a control character"
            ))
            .assert_stderr_lacks("panicked")
            .assert_never_shows(value.trim_end());
    }
    base()
        .manifest(&format!("{reference}\n[aws]\nregion = \"eu-west-1\\n\"\n"))
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid [aws] region: contains a control character");

    // Checked only when an AWS reference needs AWS.
    base()
        .env("AWS_REGION", "us-east-1\n")
        .run(["run", "--", "true"])
        .assert_code(0);
}

#[test]
fn a_managed_secret_expands_into_a_variable_per_key() {
    let moto = Moto::start();
    moto.create(
        "rds!db-1234",
        r#"{"username":"app","password":"p@ss:1","host":"db.internal","port":5432,"dbname":"billing","engine":"postgres"}"#,
    );
    let envoke = Envoke::new().aws(&moto).manifest(
        r#"
[env]
DB           = "aws-sm://rds!db-1234#*"
PG           = { ref = "aws-sm://rds!db-1234", expand = true, prefix = "PG", keys = ["host", "port"] }
DATABASE_URL = { template = "postgresql://${DB_USERNAME}:${DB_PASSWORD:url}@${DB_HOST}:${DB_PORT}/${DB_DBNAME}" }
"#,
    );
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0).assert_stderr_lacks("p@ss");
    assert_eq!(env["DB_USERNAME"], "app");
    assert_eq!(env["DB_PASSWORD"], "p@ss:1");
    assert_eq!(env["DB_PORT"], "5432");
    assert_eq!(env["DB_ENGINE"], "postgres");
    assert_eq!(env["PGHOST"], "db.internal");
    assert_eq!(env["PGPORT"], "5432");
    assert!(!env.contains_key("PGUSERNAME") && !env.contains_key("DB"));
    assert_eq!(
        env["DATABASE_URL"],
        "postgresql://app:p%40ss%3A1@db.internal:5432/billing"
    );

    // A key that would overwrite a variable of the manifest is an error naming both.
    let conflicting = Envoke::new()
        .aws(&moto)
        .manifest("[env]\nDB = \"aws-sm://rds!db-1234#*\"\nDB_PASSWORD = \"literal\"\n");
    conflicting
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("DB_PASSWORD, from the keys of DB, is also defined on its own")
        .assert_never_shows("p@ss");
}
