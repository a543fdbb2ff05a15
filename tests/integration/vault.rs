//! Every Vault reference form, against a real OpenBao dev server.

use std::time::Duration;

use serde_json::json;

use crate::support::proxy::Proxy;
use crate::support::{Bao, Envoke, closed_address};

#[test]
fn kv_v2_and_v1_references_resolve() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app/api", json!({"token": "tok-1", "n": 1}));
    bao.kv2_put(
        "secret",
        "app/api",
        json!({"token": "tok-2", "n": 2, "nested": {"deep": "d"}}),
    );
    bao.mount_kv("kv1", 1);
    bao.kv1_put("kv1", "team/app", json!({"user": "u1", "pass": "p1"}));
    bao.mount_kv("apps/kv2", 2);
    bao.kv2_put("apps/kv2", "svc", json!({"key": "deep-mount"}));

    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
TOKEN     = "vault://secret/app/api#token"
OLD_TOKEN = "vault://secret/app/api?version=1#token"
N         = "vault://secret/app/api#n"
DEEP      = "vault://secret/app/api#/nested/deep"
WHOLE_V1  = "vault://secret/app/api?version=1"
V1_USER   = "vault://kv1/team/app#user"
V1_WHOLE  = "vault://kv1/team/app"
NESTED_MOUNT = "vault://apps/kv2/svc#key"
"#,
    );
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["TOKEN"], "tok-2");
    assert_eq!(env["OLD_TOKEN"], "tok-1");
    assert_eq!(env["N"], "2");
    assert_eq!(env["DEEP"], "d");
    assert_eq!(env["WHOLE_V1"], r#"{"n":1,"token":"tok-1"}"#);
    assert_eq!(env["V1_USER"], "u1");
    assert_eq!(env["V1_WHOLE"], r#"{"pass":"p1","user":"u1"}"#);
    assert_eq!(env["NESTED_MOUNT"], "deep-mount");
}

#[test]
fn many_paths_share_a_few_connections() {
    let bao = Bao::start();
    let mut manifest = String::from("[env]\n");
    for i in 0..60 {
        bao.kv2_put(
            "secret",
            &format!("svc/s{i}"),
            json!({ "v": format!("value-{i}") }),
        );
        manifest += &format!("S{i} = \"vault://secret/svc/s{i}#v\"\n");
    }
    let proxy = Proxy::start(bao.addr.trim_start_matches("http://"));
    // Each answer held back 50 ms: reads sent together are seen in flight together.
    proxy.delay_answers(Duration::from_millis(50));
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_ADDR", &proxy.addr)
        .manifest(&manifest);
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    for i in 0..60 {
        assert_eq!(env[&format!("S{i}")], format!("value-{i}"));
    }
    // 60 reads and a mount lookup; at most 16 in flight, over kept-alive connections.
    let in_flight = proxy.most_in_flight();
    assert!(
        (2..=16).contains(&in_flight),
        "{in_flight} requests in flight at once"
    );
    let connections = proxy.connections();
    assert!(
        (1..=17).contains(&connections),
        "{connections} connections for 61 requests"
    );
}

#[test]
fn a_version_pin_on_kv_v1_is_refused() {
    let bao = Bao::start();
    bao.mount_kv("kv1", 1);
    bao.kv1_put("kv1", "x", json!({"a": "b"}));
    Envoke::new()
        .vault(&bao)
        .manifest("[env]\nA = \"vault://kv1/x?version=2#a\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("A (vault://kv1/x?version=2#a): `?version=N` needs a KV v2 mount");
}

#[test]
fn the_token_comes_from_vault_token_file_when_vault_token_is_unset() {
    let bao = Bao::start();
    bao.kv2_put("secret", "laptop", json!({"k": "from-login"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .env_remove("VAULT_TOKEN")
        .manifest("[env]\nK = \"vault://secret/laptop#k\"\n");
    // `vault login` writes ~/.vault-token.
    std::fs::write(envoke.dir().join(".vault-token"), "envoke-test-root\n").unwrap();
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["K"], "from-login");
}

#[test]
/// Issue 22: VAULT_ADDR wins over the manifest's `[vault] address` (as the vault CLI orders
/// them), and the difference is a warning naming both; without VAULT_ADDR the manifest's is used.
fn vault_addr_overrides_the_manifests_address_with_a_warning() {
    let bao = Bao::start();
    bao.kv2_put("secret", "x", json!({"k": "v"}));
    let envoke = Envoke::new().vault(&bao).manifest(&format!(
        "[vault]\naddress = \"{}\"\n[env]\nK = \"vault://secret/x#k\"\n",
        closed_address()
    ));
    let (output, env) = envoke.child_env(&[]);
    output
        .assert_code(0)
        .assert_stderr_contains("VAULT_ADDR and `address` in [vault] in envoke.toml differ");
    assert_eq!(env["K"], "v");
    let envoke = Envoke::new()
        .env("VAULT_TOKEN", crate::support::ROOT_TOKEN)
        .manifest(&format!(
            "[vault]\naddress = \"{}\"\n[env]\nK = \"vault://secret/x#k\"\n",
            bao.addr
        ));
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0).assert_stderr_lacks("differ");
    assert_eq!(env["K"], "v");
}

#[test]
fn a_token_without_permission_is_access_denied() {
    let bao = Bao::start();
    bao.kv2_put("secret", "allowed", json!({"k": "yes"}));
    bao.kv2_put("secret", "forbidden", json!({"k": "no"}));
    let token = bao.token_with_read("reader", &["secret/data/allowed"]);
    let envoke = Envoke::new()
        .vault(&bao)
        .env("VAULT_TOKEN", &token)
        .manifest(
            "[env]\nOK = \"vault://secret/allowed#k\"\nNO = \"vault://secret/forbidden#k\"\n",
        );
    let output = envoke.run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains("NO (vault://secret/forbidden#k): access denied")
        .assert_never_shows("yes");
    assert!(!output.stderr.contains("OK (vault"), "{}", output.stderr);
}

#[test]
fn an_unreachable_server_is_named() {
    let address = closed_address();
    Envoke::new()
        .env("VAULT_ADDR", &address)
        .env("VAULT_TOKEN", "t")
        .manifest("[env]\nK = \"vault://secret/x#k\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(&format!(
            "K (vault://secret/x#k): backend unreachable at {address}"
        ));
}

#[test]
fn no_token_says_how_to_get_one() {
    Envoke::new()
        .env("VAULT_ADDR", closed_address())
        .manifest("[env]\nK = \"vault://secret/x#k\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("no Vault token: set VAULT_TOKEN or run `vault login`");
}

#[test]
fn variables_naming_one_dynamic_path_share_one_lease() {
    let (pg, bao, envoke) = crate::support::dynamic_database("1h", "24h");
    let (output, env) = envoke.child_env(&["--no-revoke"]);
    output.assert_code(0);
    assert!(
        pg.can_log_in(&env["DB_USER"], &env["DB_PASSWORD"]),
        "username and password come from the same read"
    );
    assert_eq!(
        bao.leases("database/creds/app").len(),
        1,
        "one read, one lease"
    );

    // Without --no-revoke the lease is revoked when envoke exits: the role no longer logs in.
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert!(!pg.can_log_in(&env["DB_USER"], &env["DB_PASSWORD"]));
    assert_eq!(
        bao.leases("database/creds/app").len(),
        1,
        "only the kept one"
    );
}

#[test]
fn check_revokes_the_dynamic_credentials_it_creates() {
    let pg = crate::support::postgres::Postgres::start();
    let bao = Bao::start();
    bao.database_role(&pg, "1h", "24h");
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nDB_USER = \"vault://database/creds/app#username\"\n");
    envoke.run(["check"]).assert_code(0);
    assert_eq!(bao.leases("database/creds/app"), Vec::<String>::new());
}
