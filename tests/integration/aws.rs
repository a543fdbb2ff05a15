//! Every AWS Secrets Manager reference form, against moto.

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
    let envoke = Envoke::new().aws(&moto).manifest(&manifest);
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
