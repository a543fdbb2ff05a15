//! Error messages say what to do next: each failure a user meets names the cause and the fix,
//! never a value.

use serde_json::json;

use crate::support::hostile::{Behaviour, Hostile};
use crate::support::{Bao, Envoke, Moto, REGION};

const AWS_MANIFEST: &str = "[env]\nDB = \"aws-sm://prod/db#password\"\n";

/// envoke with AWS test keys and no region or endpoint.
fn aws_without_region() -> Envoke {
    Envoke::new()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest(AWS_MANIFEST)
}

#[test]
fn a_profile_that_does_not_exist_is_named_with_the_files_looked_at() {
    aws_without_region()
        .env("AWS_PROFILE", "nope")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB (aws-sm://prod/db#password): AWS profile `nope` (from AWS_PROFILE) does not \
             exist in ~/.aws/config or ~/.aws/credentials",
        )
        .assert_stderr_lacks("no AWS region configured");

    // Named in the manifest, with the files elsewhere, and a region set: the credentials fail.
    let envoke = aws_without_region()
        .env("AWS_REGION", REGION)
        .file("aws/config", "[profile other]\nregion = eu-west-1\n")
        .manifest(&format!("{AWS_MANIFEST}[aws]\nprofile = \"nope\"\n"));
    let config = envoke.dir().join("aws/config");
    let credentials = envoke.dir().join("aws/credentials");
    envoke
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(&format!(
            "AWS profile `nope` (from `profile` under [aws]) does not exist in {} \
             (AWS_CONFIG_FILE) or {} (AWS_SHARED_CREDENTIALS_FILE)",
            config.display(),
            credentials.display()
        ));
}

#[test]
fn an_sso_profile_not_logged_in_says_aws_sso_login() {
    let envoke = aws_without_region().file(
        ".aws/config",
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n\
         sso_role_name = Developer\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\n\
         sso_region = us-east-1\n",
    );
    // No token in ~/.aws/sso/cache: the SDK fails before any network call.
    envoke
        .run_with(&[("AWS_PROFILE", "dev")], ["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB (aws-sm://prod/db#password): the SSO session of AWS profile `dev` is not logged \
             in or has expired",
        )
        .assert_stderr_contains("run `aws sso login --profile dev`");
}

#[test]
fn an_aws_endpoint_answering_html_or_an_empty_5xx_gives_status_and_excerpt() {
    for (status, content_type, body, expected) in [
        (
            502,
            "text/html",
            "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>",
            "answered HTTP 502 without an error code: \"<html><body> <h1>502 Bad Gateway</h1>",
        ),
        (
            503,
            "application/x-amz-json-1.1",
            "",
            "answered HTTP 503 without an error code: an empty answer",
        ),
    ] {
        let hostile = Hostile::start(Behaviour::Answer {
            status,
            content_type,
            body,
        });
        let output = Envoke::new()
            .env("AWS_ENDPOINT_URL", &hostile.address)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .manifest(AWS_MANIFEST)
            .run(["run", "--", "true"]);
        output.assert_code(125).assert_stderr_contains(&format!(
            "DB (aws-sm://prod/db#password): Secrets Manager at {} {expected}",
            hostile.address
        ));
        assert!(
            output.stderr.lines().all(|l| l.len() < 400),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn a_secret_scheduled_for_deletion_says_how_to_restore_it() {
    let moto = Moto::start();
    moto.create("prod/db", r#"{"password":"deleted-pw"}"#);
    moto.block_on(moto.client().delete_secret().secret_id("prod/db").send())
        .unwrap();
    Envoke::new()
        .aws(&moto)
        .manifest(AWS_MANIFEST)
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "DB (aws-sm://prod/db#password): not found: the secret is scheduled for deletion: \
             restore it with `aws secretsmanager restore-secret --secret-id prod/db`",
        )
        .assert_never_shows("deleted-pw");
}

#[test]
fn a_token_without_vault_addr_says_vault_addr_is_not_set() {
    Envoke::new()
        .env("VAULT_TOKEN", "t")
        .manifest("[env]\nK = \"vault://secret/x#k\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "K (vault://secret/x#k): backend unreachable at https://127.0.0.1:8200: VAULT_ADDR \
             is not set (nor `address` under [vault]), so the vault CLI's default address was \
             tried",
        );
}

#[test]
fn a_bad_token_is_invalid_or_expired_and_a_missing_capability_is_access_denied() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app/api", json!({"password": "pw-value"}));
    let reference = "[env]\nK = \"vault://secret/app/api#password\"\n";
    Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", "not-a-token")
        .manifest(reference)
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "K (vault://secret/app/api#password): the Vault token is invalid or expired (run \
             `vault login`, or check VAULT_TOKEN / BAO_TOKEN)",
        )
        .assert_stderr_lacks("access denied");

    // A revoked token in ~/.vault-token: the file is named.
    let revoked = bao.token_with_read("revoked", &["secret/data/app/api"]);
    bao.api(
        "POST",
        "auth/token/revoke",
        Some(json!({ "token": revoked })),
    );
    let envoke = Envoke::new()
        .vault(&bao)
        .env_remove("VAULT_TOKEN")
        .manifest(reference);
    std::fs::write(envoke.dir().join(".vault-token"), &revoked).unwrap();
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(&format!(
            "the Vault token in {} is invalid or expired",
            envoke.dir().join(".vault-token").display()
        ));

    // A valid token (with the default policy) that may not read the path: access denied.
    bao.read_policy("elsewhere", &["secret/data/elsewhere"]);
    let answer = bao.api(
        "POST",
        "auth/token/create",
        Some(json!({ "policies": ["elsewhere"] })),
    );
    let token = answer["auth"]["client_token"].as_str().unwrap();
    Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", token)
        .manifest(reference)
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "K (vault://secret/app/api#password): access denied: needs read on \
             secret/data/app/api",
        )
        .assert_stderr_lacks("invalid or expired")
        .assert_never_shows("pw-value");
    // check names it too, not only the watcher.
    Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", token)
        .manifest(reference)
        .run(["check"])
        .assert_code(125)
        .assert_stdout_contains("K: access denied: needs read on secret/data/app/api");
}

/// `VAULT_ADDR=https://...` for a server that serves plain HTTP: the fix, not rustls's
/// "received corrupt message of type InvalidContentType" alone.
#[test]
fn https_to_a_plain_http_server_says_to_use_http() {
    let bao = Bao::start();
    let https = bao.addr.replace("http://", "https://");
    Envoke::new()
        .vault(&bao)
        .env("VAULT_ADDR", &https)
        .manifest("[env]\nK = \"vault://secret/app#k\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(&format!("backend unreachable at {https}"))
        .assert_stderr_contains(
            "the server answered without TLS; if it serves plain HTTP, write the address with \
             http:// instead of https://",
        );
}

#[test]
fn a_kv2_path_with_data_in_it_says_to_drop_it() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app/api", json!({"token": "tok-value"}));
    Envoke::new()
        .vault(&bao)
        .manifest("[env]\nT = \"vault://secret/data/app/api#token\"\nM = \"vault://secret/metadata/app/api#token\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "T (vault://secret/data/app/api#token): not found: no secret at \
             secret/data/data/app/api; drop data/ (envoke adds data/ for KV v2): \
             vault://secret/app/api",
        )
        .assert_stderr_contains("drop metadata/ (envoke adds data/ for KV v2): vault://secret/app/api")
        .assert_never_shows("tok-value");
}

#[test]
fn an_unknown_mount_says_no_engine_is_mounted_there() {
    let bao = Bao::start();
    Envoke::new()
        .vault(&bao)
        .manifest("[env]\nK = \"vault://nomount/app/api#k\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "K (vault://nomount/app/api#k): not found: no secrets engine is mounted at \
             `nomount/`, or the token may not see it",
        )
        .assert_stderr_lacks("preflight");
}

#[test]
fn a_deleted_or_destroyed_latest_version_says_so() {
    let bao = Bao::start();
    bao.kv2_put("secret", "gone", json!({"k": "gone-value"}));
    bao.api("DELETE", "secret/data/gone", None);
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nK = \"vault://secret/gone#k\"\n");
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "K (vault://secret/gone#k): not found: version 1 was deleted: undelete it (`vault kv \
             undelete -versions=1`)",
        );
    bao.api(
        "POST",
        "secret/destroy/gone",
        Some(json!({ "versions": [1] })),
    );
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("K (vault://secret/gone#k): not found: version 1 was destroyed");
}

#[test]
fn a_missing_key_lists_the_keys_the_secret_has_never_values() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "db",
        json!({"password": "pw-value", "username": "user-value", "tls": {"mode": "mode-value"}}),
    );
    let output = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nP = \"vault://secret/db#pasword\"\nM = \"vault://secret/db#/tls/mod\"\n")
        .run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains(
            "P (vault://secret/db#pasword): key `pasword` missing; the secret has keys: \
             password, tls, username",
        )
        .assert_stderr_contains(
            "M (vault://secret/db#/tls/mod): key `/tls/mod` missing; `/tls` has keys: mode",
        );
    for value in ["pw-value", "user-value", "mode-value"] {
        output.assert_never_shows(value);
    }
}

#[test]
fn a_shebang_naming_a_missing_interpreter_says_so() {
    let envoke = Envoke::new().file("envoke-test-script", "#!/no/such/interpreter -x\necho hi\n");
    let script = envoke.dir().join("envoke-test-script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for flags in [&[][..], &["--exec"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "./envoke-test-script"]);
        envoke
            .run(&args)
            .assert_code(127)
            .assert_stderr_contains(
                "cannot execute ./envoke-test-script: the interpreter its #! line names, \
                 /no/such/interpreter, does not exist",
            )
            .assert_stderr_lacks("command not found");
    }
    // Found through PATH, too.
    let path = format!(
        "{}:{}",
        envoke.dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    envoke
        .run_with(&[("PATH", &path)], ["run", "--", "envoke-test-script"])
        .assert_code(127)
        .assert_stderr_contains(
            "cannot execute envoke-test-script: the interpreter its #! line names",
        );
}
