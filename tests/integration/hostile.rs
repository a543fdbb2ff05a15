//! A hostile endpoint costs no secret, no panic and no hang: redirects are refused before any
//! credential crosses them, endless or huge bodies are cut off at the cap, and slow answers end
//! at the timeout.

use std::time::{Duration, Instant};

use crate::support::hostile::{Behaviour, Hostile};
use crate::support::{Envoke, ROOT_TOKEN};

fn at_vault(address: &str) -> Envoke {
    Envoke::new()
        .env("VAULT_ADDR", address)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .manifest("[env]\nA = \"vault://secret/app#token\"\n")
}

fn at_aws(address: &str) -> Envoke {
    Envoke::new()
        .env("AWS_ENDPOINT_URL", address)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST")
        .env("AWS_SECRET_ACCESS_KEY", "hostile-test-secret-key")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest("[env]\nA = \"aws-sm://app/db#password\"\n")
}

/// Runs `envoke run -- true`; returns the output and how long it took.
fn timed(envoke: &Envoke) -> (crate::support::Output, Duration) {
    let start = Instant::now();
    let output = envoke.run(["run", "--", "true"]);
    (output, start.elapsed())
}

#[test]
fn a_vault_redirect_is_refused_and_the_token_never_crosses_it() {
    let elsewhere = Hostile::start(Behaviour::Record);
    let redirecting = Hostile::start(Behaviour::Redirect(elsewhere.address.clone()));
    let (output, _) = timed(&at_vault(&redirecting.address));
    output
        .assert_code(125)
        .assert_stderr_contains(&redirecting.address)
        .assert_stderr_contains(&elsewhere.address)
        .assert_stderr_contains("does not follow redirects")
        .assert_never_shows(ROOT_TOKEN);
    assert!(!redirecting.requests().is_empty());
    assert!(
        elsewhere.requests().is_empty(),
        "followed the redirect: {:?}",
        elsewhere.requests()
    );
}

#[test]
fn an_aws_redirect_is_not_followed() {
    let elsewhere = Hostile::start(Behaviour::Record);
    let redirecting = Hostile::start(Behaviour::Redirect(elsewhere.address.clone()));
    let (output, _) = timed(&at_aws(&redirecting.address));
    output.assert_code(125).assert_stderr_lacks("panicked");
    assert!(!redirecting.requests().is_empty());
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
}

#[test]
fn an_endless_or_huge_body_is_cut_off_at_the_cap() {
    for behaviour in [Behaviour::Endless, Behaviour::HugeLength] {
        let server = Hostile::start(behaviour.clone());
        for (backend, envoke) in [
            ("Vault", at_vault(&server.address)),
            ("Secrets Manager", at_aws(&server.address)),
        ] {
            let (output, took) = timed(&envoke);
            output
                .assert_code(125)
                .assert_stderr_contains(&format!("{backend} at"))
                .assert_stderr_contains("larger than 4 MiB");
            assert!(
                took < Duration::from_secs(15),
                "{backend}, {behaviour:?}: took {took:?}"
            );
        }
    }
}

#[test]
fn headers_that_never_end_end_at_the_timeout() {
    let server = Hostile::start(Behaviour::SlowHeaders);
    // Both backends at once: each waits out its 30 s timeout.
    let aws = {
        let envoke = at_aws(&server.address);
        std::thread::spawn(move || timed(&envoke))
    };
    let (output, took) = timed(&at_vault(&server.address));
    output
        .assert_code(125)
        .assert_stderr_contains("unreachable");
    assert!(took < Duration::from_secs(40), "Vault took {took:?}");
    let (output, took) = aws.join().unwrap();
    output
        .assert_code(125)
        .assert_stderr_contains("unreachable");
    assert!(took < Duration::from_secs(40), "AWS took {took:?}");
}

#[test]
fn a_connection_string_where_a_reference_was_expected_is_shown_without_its_password() {
    let envoke = Envoke::new().manifest(
        "[env]\nDATABASE_URL = \"postgres://app:S3cr3tPassw0rd@db/app?sslpassword=K3yPass\"\n",
    );
    for args in [
        &["run", "--", "true"][..],
        &["check", "--format", "json"],
        &["check"],
    ] {
        let output = envoke.run(args);
        output
            .assert_code(125)
            .assert_never_shows("S3cr3tPassw0rd")
            .assert_never_shows("K3yPass");
        assert!(
            output
                .stdout
                .contains("postgres://app:****@db/app?sslpassword=****")
                || output
                    .stderr
                    .contains("postgres://app:****@db/app?sslpassword=****"),
            "{output:?}"
        );
    }
}

#[test]
fn control_characters_in_names_and_references_are_escaped_not_printed() {
    let envoke = Envoke::new()
        .manifest("[env]\n\"FAKE\\nERROR forged line\\u001b[31m\" = \"x\"\n")
        .env("FROM_ENV", "vault://secret/app\u{1b}[31m#key");
    for args in [&["run", "--", "true"][..], &["check"]] {
        let output = envoke.run(args);
        output.assert_code(125);
        let all = format!("{}{}", output.stdout, output.stderr);
        assert!(
            !all.contains('\u{1b}'),
            "an escape reached the terminal: {all:?}"
        );
        assert!(
            !all.lines().any(|l| l.starts_with("ERROR forged line")),
            "a forged log line: {all}"
        );
        assert!(all.contains("FAKE\\nERROR forged line\\u{1b}[31m"), "{all}");
        assert!(all.contains("contains a control character"), "{all}");
    }
}
