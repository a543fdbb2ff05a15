//! Authentication: envoke logs in to OpenBao with a platform identity (approle, jwt, kubernetes,
//! cert), keeps that login alive, revokes it at exit, and keeps its own credentials from the
//! child. The manifests are docs/authentication.md's examples, with the test's paths put in.

use std::time::Duration;

use serde_json::json;

use crate::support::auth::{client_certificate, now, rsa_key, signed_jwt, token_reviewer};
use crate::support::{Bao, Envoke, ROOT_TOKEN, Supervised, poll_until};

fn doc_example(method: &str, replace: &[(&str, &str)]) -> String {
    crate::support::doc_example("authentication.md", method, replace)
}

/// OpenBao with `secret/app` holding `token`, and a policy `app` that may read it.
fn server_with_app_secret(bao: &Bao) {
    bao.kv2_put("secret", "app", json!({"token": "app-secret-value"}));
    bao.read_policy("app", &["secret/data/app", "secret/metadata/app"]);
}

/// An envoke pointed at `bao` without any token: it must log in.
fn logging_in(bao: &Bao, vault_section: &str) -> Envoke {
    Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .manifest(&format!(
            "{vault_section}\n[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n"
        ))
}

/// An envoke that logs in with a new AppRole `app` (its secret_id in the manifest).
fn logging_in_with_approle(bao: &Bao) -> Envoke {
    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    logging_in(
        bao,
        &format!(
            "[vault]\nauth = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id = \"{secret_id}\""
        ),
    )
}

#[test]
fn approle_with_a_secret_id_file_logs_in_and_nothing_of_it_reaches_the_child() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    let vault = doc_example(
        "approle",
        &[
            ("6b1c5bd3-41e4-4b4e-a4b5-0e5a5e1d2a11", &role_id),
            ("/run/secrets/vault-secret-id", "secret-id"),
        ],
    );
    let envoke = logging_in(&bao, &vault)
        // As a Kubernetes secret mounts it: with a trailing newline.
        .file("secret-id", &format!("{secret_id}\n"))
        .env("ENVOKE_STOP_TIMEOUT", "5s")
        .env("VAULT_SECRET_ID", "ignored-the-file-wins");
    let before = bao.token_accessors().len();
    let (output, env) = envoke.child_env(&["-v"]);
    output
        .assert_code(0)
        .assert_stderr_contains("logged in to Vault")
        .assert_never_shows(&secret_id);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    for own in ["VAULT_SECRET_ID", "ENVOKE_STOP_TIMEOUT"] {
        assert!(!env.contains_key(own), "the child inherited {own}");
    }
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the login token is revoked when envoke exits"
    );

    // --pass-env keeps one on purpose; --no-revoke keeps the login.
    let (output, env) = envoke.child_env(&["--pass-env", "VAULT_SECRET_ID", "--no-revoke"]);
    output.assert_code(0);
    assert_eq!(env["VAULT_SECRET_ID"], "ignored-the-file-wins");
    assert!(!env.contains_key("ENVOKE_STOP_TIMEOUT"));
    assert_eq!(
        bao.token_accessors().len(),
        before + 1,
        "kept with --no-revoke"
    );
}

#[test]
fn approle_from_the_environment_and_a_failed_login_names_method_mount_and_reason() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    let envoke = logging_in(&bao, "")
        .env("ENVOKE_VAULT_AUTH", "approle")
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id);
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert!(!env.contains_key("VAULT_ROLE_ID") && !env.contains_key("VAULT_SECRET_ID"));

    let wrong = "00000000-0000-0000-0000-000000000000";
    let output = envoke
        .env("VAULT_SECRET_ID", wrong)
        .run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains("APP_TOKEN (vault://secret/app#token)")
        .assert_stderr_contains("cannot log in to Vault with approle at auth/approle")
        .assert_stderr_contains("invalid")
        .assert_never_shows(wrong)
        .assert_stderr_lacks("panicked");
}

#[test]
fn jwt_login_with_a_key_pair_made_here() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = rsa_key(dir.path(), "signer");
    bao.enable_auth("jwt", "jwt");
    bao.api(
        "POST",
        "auth/jwt/config",
        Some(json!({ "jwt_validation_pubkeys": [public] })),
    );
    bao.api(
        "POST",
        "auth/jwt/role/ci",
        Some(json!({
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "token_policies": ["app"],
        })),
    );
    let jwt = signed_jwt(
        &key,
        &json!({"sub": "ci-job-1", "aud": "vault", "iat": now(), "exp": now() + 600}),
    );
    let vault = doc_example("jwt", &[("/var/run/secrets/tokens/vault", "tokens/vault")]);
    let envoke = logging_in(&bao, &vault).file("tokens/vault", &jwt);
    let before = bao.token_accessors().len();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0).assert_never_shows(&jwt);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the JWT login is revoked at exit"
    );

    // A JWT signed by another key is refused, and the launch stops.
    let (other, _) = rsa_key(dir.path(), "other");
    let forged = signed_jwt(
        &other,
        &json!({"sub": "ci-job-1", "aud": "vault", "iat": now(), "exp": now() + 600}),
    );
    envoke
        .file("tokens/vault", &forged)
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("cannot log in to Vault with jwt at auth/jwt");
}

#[test]
fn kubernetes_login_through_a_token_review() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = rsa_key(dir.path(), "cluster");
    let (any_ca, _, _) = client_certificate(dir.path());
    let reviewer = token_reviewer("prod", "app", "8d2a1f0e-uid");
    bao.enable_auth("kubernetes", "kubernetes");
    bao.api(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": reviewer,
            "kubernetes_ca_cert": std::fs::read_to_string(any_ca).unwrap(),
            "disable_local_ca_jwt": true,
        })),
    );
    bao.api(
        "POST",
        "auth/kubernetes/role/app",
        Some(json!({
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["prod"],
            "token_policies": ["app"],
        })),
    );
    let jwt = signed_jwt(
        &key,
        &json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:prod:app",
            "kubernetes.io/serviceaccount/namespace": "prod",
            "kubernetes.io/serviceaccount/service-account.name": "app",
            "kubernetes.io/serviceaccount/service-account.uid": "8d2a1f0e-uid",
        }),
    );
    let vault = doc_example(
        "kubernetes",
        &[(
            "# jwt_file defaults to the pod's service-account token",
            "jwt_file = \"serviceaccount/token\"",
        )],
    );
    let envoke = logging_in(&bao, &vault).file("serviceaccount/token", &jwt);
    let before = bao.token_accessors().len();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0).assert_never_shows(&jwt);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the Kubernetes login is revoked at exit"
    );
}

#[test]
fn cert_login_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let bao = Bao::start_tls(dir.path());
    server_with_app_secret(&bao);
    let (client_ca, client_cert, client_key) = client_certificate(dir.path());
    bao.enable_auth("cert", "cert");
    bao.api(
        "POST",
        "auth/cert/certs/app",
        Some(json!({
            "certificate": std::fs::read_to_string(client_ca).unwrap(),
            "token_policies": ["app"],
        })),
    );
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let vault = doc_example(
        "cert",
        &[
            ("/etc/vault/ca.pem", &path(bao.ca.as_ref().unwrap())),
            ("/etc/vault/client.pem", &path(&client_cert)),
            ("/etc/vault/client-key.pem", &path(&client_key)),
        ],
    );
    let envoke = logging_in(&bao, &vault);
    let before = bao.token_accessors().len();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the cert login is revoked at exit"
    );
}

#[test]
fn a_token_with_a_control_character_is_refused_naming_the_setting() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let envoke = logging_in(&bao, "").env("VAULT_TOKEN", format!("{ROOT_TOKEN}\n"));
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid VAULT_TOKEN: contains a control character")
        .assert_stderr_lacks("panicked")
        .assert_never_shows(ROOT_TOKEN);
    envoke
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("VAULT_NAMESPACE", "team\u{1b}[31m")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid VAULT_NAMESPACE");
    // In a file, surrounding whitespace is trimmed: `vault login` and agents end it with \n.
    let (output, env) = logging_in(&bao, "")
        .file("token", &format!("{ROOT_TOKEN}\n"))
        .env("VAULT_TOKEN_FILE", "token")
        .child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert!(!env.contains_key("VAULT_TOKEN_FILE"));
}

#[test]
fn openbao_names_work_and_a_given_token_is_never_revoked() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let token = bao.token_with_read("given", &["secret/data/app"]);
    let envoke = Envoke::new()
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &token)
        .manifest("[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n");
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["APP_TOKEN"], "app-secret-value");
    assert!(
        !env.contains_key("BAO_TOKEN"),
        "envoke's token stays envoke's"
    );
    assert!(
        bao.token_is_valid(&token),
        "a token the user gave is not revoked"
    );
}

/// A child that logs its PID and `$APP_TOKEN` each time it starts, then waits.
const LOGS_START: &str = r#"echo "$$ $APP_TOKEN" >> "$LOG"; exec sleep 60"#;

#[test]
fn the_login_is_renewed_then_replaced_while_the_child_keeps_running() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    // Tokens live 3 s, at most 7 s: envoke must renew, then log in again, to keep watching.
    let (role_id, secret_id) = bao.approle("app", "app", "3s", "7s");
    let envoke = logging_in(
        &bao,
        &format!(
            "[vault]\nauth = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id = \"{secret_id}\""
        ),
    );
    let running = Supervised::start(
        &envoke,
        &["-vv", "--watch", "1s", "--settle", "100ms"],
        LOGS_START,
    );
    running.wait_lines(1, Duration::from_secs(10));
    // Past the first token's max TTL: only a fresh login can still read the metadata (a sleep:
    // the clock has to pass it, and the child must not restart meanwhile).
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        running.lines().len(),
        1,
        "the child kept running: {:?}",
        running.lines()
    );
    bao.kv2_put("secret", "app", json!({"token": "rotated-value"}));
    let lines = running.wait_lines(2, Duration::from_secs(10));
    assert!(lines[1].ends_with(" rotated-value"), "{lines:?}");
    let (_, logs) = running.stop();
    assert!(
        logs.matches("logged in to Vault").count() >= 2,
        "a fresh login after the max TTL\n{logs}"
    );
    assert!(logs.contains("renewed envoke's Vault token"), "{logs}");
    assert!(!logs.contains(&secret_id) && !logs.contains("app-secret-value"));
}

#[test]
fn a_rewritten_token_file_is_followed_during_a_watch() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let short = bao.api(
        "POST",
        "auth/token/create",
        Some(json!({ "policies": ["app"], "ttl": "3s", "renewable": false, "no_default_policy": true })),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = bao.token_with_read("long", &["secret/data/app", "secret/metadata/app"]);
    let vault = doc_example(
        "token (the default)",
        &[("/run/vault/token", "agent/token")],
    );
    let envoke = logging_in(&bao, &vault).file("agent/token", &format!("{short}\n"));
    let running = Supervised::start(&envoke, &["--watch", "1s", "--settle", "100ms"], LOGS_START);
    running.wait_lines(1, Duration::from_secs(10));
    // As an agent does: write the new token beside the file, then rename it into place.
    let next = envoke.dir().join("agent/token.new");
    std::fs::write(&next, format!("{long}\n")).unwrap();
    std::fs::rename(&next, envoke.dir().join("agent/token")).unwrap();
    poll_until(Duration::from_secs(10), "the first token to expire", || {
        !bao.token_is_valid(&short)
    });
    bao.kv2_put("secret", "app", json!({"token": "rotated-value"}));
    let lines = running.wait_lines(2, Duration::from_secs(10));
    assert!(lines[1].ends_with(" rotated-value"), "{lines:?}");
}

#[test]
fn a_watch_that_is_denied_says_so_once_with_the_permission_it_needs() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let token = bao.token_with_read("data-only", &["secret/data/app"]);
    let output = Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &token)
        .manifest("[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n")
        .run(["run", "--watch", "1s", "--", "sleep", "3.5"]);
    output.assert_code(0);
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| l.contains("permission denied"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", output.stderr);
    assert!(errors[0].contains("ERROR"), "{}", errors[0]);
    assert!(
        errors[0].contains("read on secret/metadata/app"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_command_that_cannot_start_leaves_no_login_behind() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let envoke = logging_in_with_approle(&bao);
    let before = bao.token_accessors().len();
    envoke
        .run(["run", "--", "no-such-command-for-envoke"])
        .assert_code(127);
    assert_eq!(bao.token_accessors().len(), before, "the login was revoked");
}

/// The way a container ends (`docker stop`, a rolling update): TERM while the command runs. The
/// login is revoked then too, not only after the command exits by itself.
#[test]
fn a_term_while_the_command_runs_revokes_the_login() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let envoke = logging_in_with_approle(&bao);
    let before = bao.token_accessors().len();
    let running = Supervised::start(
        &envoke,
        &[],
        r#"echo "$APP_TOKEN" >> "$LOG"; exec sleep 600"#,
    );
    running.wait_lines(1, Duration::from_secs(30));
    assert_eq!(
        bao.token_accessors().len(),
        before + 1,
        "logged in while the command runs"
    );
    let (code, logs) = running.stop();
    assert_eq!(code, Some(128 + 15), "{logs}");
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the login is revoked after TERM\n{logs}"
    );
}

/// TERM while envoke connects — the Vault login made, the AWS side still looking for its region
/// (at an instance-metadata endpoint that never answers) — revokes that login: the command
/// never starts and no token of envoke's outlives it.
#[test]
fn a_term_while_connecting_revokes_the_login_already_made() {
    let bao = Bao::start();
    server_with_app_secret(&bao);
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    let envoke = Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id)
        .env("ENVOKE_VAULT_AUTH", "approle")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{}", silent.local_addr().unwrap()),
        )
        .manifest(
            "[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n\
             OTHER = \"aws-sm://app/other\"\n",
        );
    let before = bao.token_accessors().len();
    let running = Supervised::start(&envoke, &[], r#"echo started >> "$LOG""#);
    running.wait_until(Duration::from_secs(30), "envoke's login", || {
        bao.token_accessors().len() == before + 1
    });
    let log = running.log_path().to_path_buf();
    let (code, logs) = running.stop();
    assert_eq!(code, Some(128 + 15), "{logs}");
    assert!(logs.contains("interrupted while connecting"), "{logs}");
    assert!(!log.exists(), "the command started\n{logs}");
    assert_eq!(
        bao.token_accessors().len(),
        before,
        "the login made before TERM is revoked\n{logs}"
    );
}

/// A credential file that another user may write lets them choose envoke's identity (their
/// token, their secret id), and so the command's values: refused as ssh refuses such a key,
/// naming the file and the fix, before anything is sent.
#[test]
fn credential_files_others_can_write_are_refused_naming_the_file_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let bao = Bao::start();
    server_with_app_secret(&bao);
    let envoke = Envoke::new()
        .env("VAULT_ADDR", &bao.addr)
        .file("token", &format!("{ROOT_TOKEN}\n"))
        .manifest("[env]\nAPP_TOKEN = \"vault://secret/app#token\"\n");
    let token = envoke.dir().join("token");
    let envoke = envoke.env("VAULT_TOKEN_FILE", &token);
    let mut modes = vec![0o666];
    // Group-writable counts when the group is not the user's private group (`nogroup` here).
    if std::os::unix::fs::chown(&token, None, Some(65534)).is_ok() {
        modes.push(0o620);
    }
    for mode in modes {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        envoke
            .run(["run", "--", "true"])
            .assert_code(125)
            .assert_stderr_contains(&token.display().to_string())
            .assert_stderr_contains("writable by other users")
            .assert_stderr_contains(&format!("chmod 600 {}", token.display()))
            .assert_never_shows(ROOT_TOKEN);
    }
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    envoke.run(["run", "--", "true"]).assert_code(0);

    let (role_id, secret_id) = bao.approle("app", "app", "1h", "2h");
    let envoke = logging_in(
        &bao,
        &format!("[vault]\nauth = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"sid\""),
    )
    .file("sid", &secret_id);
    let sid = envoke.dir().join("sid");
    std::fs::set_permissions(&sid, std::fs::Permissions::from_mode(0o602)).unwrap();
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("chmod 600 sid")
        .assert_never_shows(&secret_id);
    std::fs::set_permissions(&sid, std::fs::Permissions::from_mode(0o600)).unwrap();
    envoke.run(["run", "--", "true"]).assert_code(0);
}
