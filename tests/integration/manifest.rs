//! The manifest: where it is found, and clear errors for bad input.

use serde_json::json;

use crate::support::{Bao, Envoke};

#[test]
fn malformed_toml_is_reported_with_line_and_column() {
    Envoke::new()
        .manifest("[env]\nA = \"x\"\nB = = 1\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid manifest envoke.toml: line 3, column 5");
}

#[test]
fn unknown_sections_and_keys_are_errors_not_ignored() {
    Envoke::new()
        .manifest("[valut]\naddress = \"http://x\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("valut");
    Envoke::new()
        .manifest("[env]\nA = { reff = \"vault://a/b\" }\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("line 2");
}

#[test]
fn bad_references_and_names_are_each_reported() {
    let output = Envoke::new()
        .manifest(
            r#"
[env]
TYPO        = "vualt://secret/app#token"
EMPTY       = "aws-sm://"
BAD_VERSION = "vault://secret/app?version=latest"
"1BAD"      = "literal"
BOTH        = { ref = "vault://a/b", value = "x" }
"#,
        )
        .run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains("5 variables cannot be resolved")
        .assert_stderr_contains(
            "TYPO (vualt://secret/app#token): invalid reference: unknown scheme `vualt://`",
        )
        .assert_stderr_contains("EMPTY (aws-sm://): invalid reference: empty secret id")
        .assert_stderr_contains(
            "BAD_VERSION (vault://secret/app?version=latest): invalid reference: bad version",
        )
        .assert_stderr_contains("1BAD: invalid variable name")
        .assert_stderr_contains("BOTH: give exactly one of `ref` and `value`");
}

#[test]
fn the_manifest_is_found_by_flag_environment_or_working_directory() {
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "app",
        json!({"a": "from-a", "b": "from-b", "c": "from-c"}),
    );
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nX = \"vault://secret/app#a\"\n")
        .file("other.toml", "[env]\nX = \"vault://secret/app#b\"\n")
        .file("third.toml", "[env]\nX = \"vault://secret/app#c\"\n");
    let (_, env) = envoke.child_env(&[]);
    assert_eq!(env["X"], "from-a");
    let (_, env) = envoke.child_env(&["-m", "other.toml"]);
    assert_eq!(env["X"], "from-b");
    let envoke = envoke.env("ENVOKE_MANIFEST", "third.toml");
    let (_, env) = envoke.child_env(&[]);
    assert_eq!(env["X"], "from-c");
    let (_, env) = envoke.child_env(&["--manifest", "other.toml"]);
    assert_eq!(env["X"], "from-b", "the flag wins over ENVOKE_MANIFEST");
}

#[test]
fn a_named_manifest_that_does_not_exist_is_an_error() {
    Envoke::new()
        .run(["run", "-m", "nope.toml", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("cannot read manifest nope.toml");
}

#[test]
fn without_a_manifest_run_still_works() {
    let (output, env) = Envoke::new().env("PLAIN", "value").child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["PLAIN"], "value");
}

#[test]
fn a_backend_no_reference_uses_is_never_contacted() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"a": "v"}));
    // No AWS configuration at all, and an [aws] endpoint that does not answer.
    let (output, env) = Envoke::new()
        .vault(&bao)
        .manifest("[aws]\nendpoint = \"http://127.0.0.1:9\"\n[env]\nA = \"vault://secret/app#a\"\n")
        .child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["A"], "v");
    // And Vault-free manifests need no Vault token.
    let (output, _) = Envoke::new()
        .manifest("[env]\nA = \"literal\"\n")
        .child_env(&[]);
    output.assert_code(0);
}

#[test]
fn process_settings_are_validated() {
    Envoke::new()
        .manifest("[process]\nstop_timeout = \"soon\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("invalid setting `[process] stop_timeout`");
    Envoke::new()
        .run(["run", "--stop-signal", "NOPE", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("unknown signal `NOPE`");
}
