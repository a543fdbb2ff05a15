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
        .assert_stderr_contains("BOTH: give exactly one of `ref`, `value` and `template`");
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

/// Runs envoke, failing the test (and killing envoke) when it takes longer than `limit`: the
/// inputs below used to make it wait forever or grow without bound.
fn run_within(
    envoke: &Envoke,
    args: &[&str],
    limit: std::time::Duration,
) -> crate::support::Output {
    use std::io::Read;
    let mut child = envoke
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = crate::support::wait_for_exit(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("envoke {args:?} still running after {limit:?}");
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
    crate::support::Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

#[test]
fn a_fifo_as_manifest_is_an_error_at_once_not_a_wait() {
    let envoke = Envoke::new();
    let fifo = envoke.dir().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    run_within(
        &envoke,
        &["run", "-m", "fifo.toml", "--", "true"],
        SECONDS_5,
    )
    .assert_code(125)
    .assert_stderr_contains("manifest fifo.toml is a FIFO, not a regular file");
    // Also as the default manifest: whatever is called envoke.toml is read, or refused.
    std::fs::rename(&fifo, envoke.dir().join("envoke.toml")).unwrap();
    run_within(&envoke, &["run", "--", "true"], SECONDS_5)
        .assert_code(125)
        .assert_stderr_contains("manifest envoke.toml is a FIFO");
}

const SECONDS_5: std::time::Duration = std::time::Duration::from_secs(5);

#[test]
fn a_device_or_a_directory_as_manifest_is_an_error_at_once() {
    let envoke = Envoke::new().file("conf.d/x", "");
    run_within(
        &envoke,
        &["run", "-m", "/dev/zero", "--", "true"],
        SECONDS_5,
    )
    .assert_code(125)
    .assert_stderr_contains("manifest /dev/zero is a device, not a regular file");
    run_within(&envoke, &["run", "-m", "conf.d", "--", "true"], SECONDS_5)
        .assert_code(125)
        .assert_stderr_contains("manifest conf.d is a directory, not a regular file");
}

#[test]
fn a_manifest_over_4_mib_is_refused_without_being_parsed() {
    let mut text = String::from("[env]\nA = \"x\"\n");
    text.push_str(&"# padding\n".repeat(4 * 1024 * 1024 / 10 + 1));
    let envoke = Envoke::new().file("big.toml", &text);
    run_within(&envoke, &["run", "-m", "big.toml", "--", "true"], SECONDS_5)
        .assert_code(125)
        .assert_stderr_contains("manifest big.toml is larger than 4 MiB");
    // Just under the cap is a manifest like any other.
    let envoke = Envoke::new().file("big.toml", &text[..4 * 1024 * 1024]);
    run_within(&envoke, &["run", "-m", "big.toml", "--", "true"], SECONDS_5).assert_code(0);
}

/// Runs envoke in `dir` (below the scratch directory).
fn run_in(envoke: &Envoke, dir: &str, args: &[&str]) -> crate::support::Output {
    let dir = envoke.dir().join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = envoke.command(args).current_dir(dir).output().unwrap();
    crate::support::Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn the_manifest_is_found_from_a_subdirectory() {
    let envoke = Envoke::new().manifest("[env]\nGREETING = \"found\"\n");
    let output = run_in(
        &envoke,
        "src/deep",
        &["-v", "run", "--", "sh", "-c", "printf %s \"$GREETING\""],
    );
    output
        .assert_code(0)
        .assert_stderr_contains("using the manifest")
        .assert_stderr_contains("../../envoke.toml");
    assert_eq!(output.stdout, "found");
}

#[test]
fn no_manifest_up_to_the_repository_root_warns_on_run_and_fails_check() {
    // A manifest above the repository belongs to something else: the search stops at `.git`.
    let envoke = Envoke::new()
        .manifest("[env]\nGREETING = \"not ours\"\n")
        .file("repo/.git/HEAD", "ref: refs/heads/main\n");
    let output = run_in(
        &envoke,
        "repo/app",
        &["run", "--", "sh", "-c", "printf %s \"$GREETING\""],
    );
    output
        .assert_code(0)
        .assert_stderr_contains("starting the command with no secrets");
    assert_eq!(output.stdout, "");
    run_in(&envoke, "repo/app", &["check"])
        .assert_code(125)
        .assert_stderr_contains("nothing to check");
    run_in(&envoke, "repo/app", &["check", "--allow-empty"]).assert_code(0);
    run_in(&envoke, "repo/app", &["run", "--allow-empty", "--", "true"])
        .assert_code(0)
        .assert_stderr_lacks("no secrets");
}

#[test]
fn a_dotenv_file_where_the_app_would_load_it_is_reported() {
    let envoke = Envoke::new()
        .manifest("[env]\nGREETING = \"hi\"\n")
        .file(".env", "DATABASE_URL=postgres://stale\n")
        .file("app/src/keep", "");
    envoke
        .run(["run", "--", "true"])
        .assert_code(0)
        .assert_stderr_contains("a .env file is where the application may load it")
        .assert_never_shows("postgres://stale");
    // From a subdirectory too, as Flask's load_dotenv searches upward.
    let below = run_in(&envoke, "app/src", &["run", "--", "true"]);
    below
        .assert_code(0)
        .assert_stderr_contains("each variable the manifest leaves out still comes from it")
        .assert_never_shows("postgres://stale");
    assert!(
        below
            .stderr
            .contains(&envoke.dir().join(".env").display().to_string()),
        "{}",
        below.stderr
    );
    envoke
        .run(["-q", "run", "--", "true"])
        .assert_code(0)
        .assert_stderr_lacks(".env");
}

#[test]
fn a_profile_overrides_and_adds_variables_and_settings() {
    let bao = Bao::start();
    bao.kv2_put("secret", "prod/db", json!({"password": "prod-pw"}));
    bao.kv2_put("secret", "staging/db", json!({"password": "staging-pw"}));
    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
DB_PASSWORD = "vault://secret/prod/db#password"
LOG_LEVEL   = "warn"

[profiles.staging.env]
DB_PASSWORD = "vault://secret/staging/db#password"
DEBUG       = "1"

[profiles.broken.vault]
address = "http://127.0.0.1:9"
"#,
    );
    let (output, env) = envoke.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["DB_PASSWORD"], "prod-pw");
    assert!(!env.contains_key("DEBUG"));

    let (output, env) = envoke.child_env(&["--profile", "staging"]);
    output.assert_code(0);
    assert_eq!(env["DB_PASSWORD"], "staging-pw");
    assert_eq!(env["DEBUG"], "1");
    assert_eq!(
        env["LOG_LEVEL"], "warn",
        "what the profile leaves alone stays"
    );

    // The environment's VAULT_ADDR wins over the profile's [vault] (issue 22: the user's own
    // settings decide where credentials go), with a warning naming both.
    let output = envoke.run_with(&[("ENVOKE_PROFILE", "broken")], ["check"]);
    output
        .assert_code(0)
        .assert_stderr_contains("VAULT_ADDR and `address` in [vault]");
    // Without VAULT_ADDR, the profile's address is the one used.
    let output = envoke
        .command(["check", "--profile", "broken"])
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&output.stdout).contains("unreachable"));
    envoke.run(["check", "--profile", "staging"]).assert_code(0);
    envoke
        .run(["run", "--profile", "prod", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(
            "no profile `prod` in the manifest (its profiles: broken, staging)",
        );
}

/// Issue 23: `--profile dev` read `[env]`'s production secrets, so dev laptops needed read
/// access to production. With `inherit = false` the profile's `env` is all there is.
#[test]
fn a_profile_with_inherit_false_takes_nothing_from_env() {
    let bao = Bao::start();
    bao.kv2_put("secret", "dev/db", json!({"password": "dev-pw"}));
    let envoke = Envoke::new().vault(&bao).manifest(
        r#"
[env]
MAIL_PASSWORD = "aws-sm://shop/prod#MAIL_PASSWORD"
LOG_LEVEL     = "warn"

[profiles.dev]
inherit = false

[profiles.dev.env]
DB_PASSWORD = "vault://secret/dev/db#password"

[profiles.inheriting.env]
DB_PASSWORD = "vault://secret/dev/db#password"
"#,
    );
    // No AWS at all: reading the production secret would fail the launch.
    let (output, env) = envoke.child_env(&["--profile", "dev"]);
    output.assert_code(0).assert_stderr_lacks("shop/prod");
    assert_eq!(env["DB_PASSWORD"], "dev-pw");
    assert!(!env.contains_key("MAIL_PASSWORD"), "{env:?}");
    assert!(!env.contains_key("LOG_LEVEL"), "{env:?}");
    // Without it, the profile still inherits [env], production secret included.
    let (output, _) = envoke.child_env(&["--profile", "inheriting"]);
    output
        .assert_code(125)
        .assert_stderr_contains("MAIL_PASSWORD");
    Envoke::new()
        .manifest("[profiles.dev]\ninherit = \"no\"\n")
        .run(["check", "--profile", "dev"])
        .assert_code(125)
        .assert_stderr_contains("`[profiles.dev] inherit`");
}

#[test]
fn a_found_manifest_that_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let envoke = Envoke::new().manifest("[env]\nGREETING = \"planted\"\n");
    let manifest = envoke.dir().join("envoke.toml");
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o666)).unwrap();
    run_in(&envoke, "sub", &["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("found ../envoke.toml, but it is writable by other users");
    // Named on purpose, it is the user's choice.
    run_in(
        &envoke,
        "sub",
        &["run", "-m", "../envoke.toml", "--", "true"],
    )
    .assert_code(0);
}

/// A found `envoke.toml` that is a symbolic link is not followed: the link's owner, not the
/// file's, put it there (another user's link in a shared directory pointing at any file the
/// victim owns passed the old check, which looked at the target). `-m` names one on purpose.
#[test]
fn a_found_manifest_that_is_a_symlink_is_not_followed() {
    let envoke = Envoke::new().file("real.toml", "[env]\nGREETING = \"linked\"\n");
    std::os::unix::fs::symlink("real.toml", envoke.dir().join("envoke.toml")).unwrap();
    let output = envoke.run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains("found envoke.toml, but it is a symbolic link")
        .assert_stderr_contains("-m");
    envoke
        .run(["run", "-m", "envoke.toml", "--", "true"])
        .assert_code(0);
}

/// What another local user can do, with a real second user: plant `envoke.toml` (a file, a
/// link to one of the victim's files, a dangling link) in a directory everyone may write
/// (`/tmp`, a sticky 1777 directory). The search never looks in such a directory, so the
/// victim's `envoke run` below it neither uses the plant nor fails because of it; a manifest of
/// another user in the victim's own directory (a hard link, say) is refused.
#[test]
fn another_users_manifest_is_neither_used_nor_able_to_stop_a_run() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let Some(attacker) = crate::support::ThrowawayUser::create() else {
        return;
    };
    let envoke = Envoke::new().file("victim-own.toml", "[env]\nGREETING = \"victim-file\"\n");
    let shared = envoke.dir().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir(shared.join("work")).unwrap();
    let plant = shared.join("envoke.toml");
    let greeting = |output: &crate::support::Output| output.stdout.trim().to_owned();
    for planted in ["file", "link to the victim's file", "dangling link"] {
        let _ = std::fs::remove_file(&plant);
        match planted {
            "file" => std::fs::write(&plant, "[env]\nGREETING = \"planted\"\n").unwrap(),
            "dangling link" => std::os::unix::fs::symlink("/nonexistent", &plant).unwrap(),
            _ => std::os::unix::fs::symlink(envoke.dir().join("victim-own.toml"), &plant).unwrap(),
        }
        std::os::unix::fs::lchown(&plant, Some(attacker.uid), Some(attacker.uid)).unwrap();
        let output = run_in(
            &envoke,
            "shared/work",
            &["run", "--", "sh", "-c", "echo \"$GREETING\""],
        );
        output.assert_code(0);
        assert_eq!(greeting(&output), "", "{planted}: {}", output.stderr);
    }
    // In the victim's own directory, a file of another user's is refused, naming the owner.
    let own = envoke.dir().join("mine");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(own.join("envoke.toml"), "[env]\nGREETING = \"theirs\"\n").unwrap();
    chown(own.join("envoke.toml"), Some(attacker.uid), None).unwrap();
    run_in(&envoke, "mine", &["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("it belongs to another user");
}

/// A cloned repository's `envoke.toml` may not choose where credentials go: `[vault] address`
/// pointing at a recording server is refused by check, policy and run until the user trusts the
/// file (`envoke trust`), a changed file asks again, and even then VAULT_ADDR wins over it with a
/// warning naming both. The recorder never sees a request.
#[test]
fn a_found_manifest_chooses_no_address_until_trusted_and_the_environment_wins() {
    use crate::support::hostile::{Behaviour, Hostile};
    let bao = crate::support::Bao::start();
    bao.kv2_put("secret", "app", serde_json::json!({"token": "real"}));
    let recorder = Hostile::start(Behaviour::Record);
    let manifest = format!(
        "[vault]\naddress = \"{}\"\ntoken_file = \"../.npmrc\"\n[env]\nAPP = \"vault://secret/app#token\"\n",
        recorder.address
    );
    let envoke = Envoke::new().vault(&bao).untrusted().manifest(&manifest);
    for args in [
        &["check"][..],
        &["policy", "--vault"],
        &["run", "--", "true"],
    ] {
        envoke
            .run(args)
            .assert_code(125)
            .assert_stderr_contains(
                "envoke.toml (found by searching, not named with -m) sets [vault] address",
            )
            .assert_stderr_contains("`envoke trust envoke.toml`");
    }
    // Named with -m, it is the user's choice; VAULT_ADDR still wins, with a warning.
    let named = envoke.run(["run", "-m", "envoke.toml", "--", "true"]);
    named.assert_code(0).assert_stderr_contains(
        "VAULT_ADDR and `address` in [vault] in envoke.toml differ: using VAULT_ADDR",
    );

    envoke
        .run(["trust"])
        .assert_code(0)
        .assert_stderr_contains("[vault] address");
    let (output, env) = envoke.child_env(&[]);
    output
        .assert_code(0)
        .assert_stderr_contains("differ: using VAULT_ADDR");
    assert_eq!(env["APP"], "real");
    // Changed after it was trusted: asked again.
    std::fs::write(
        envoke.dir().join("envoke.toml"),
        manifest.replace("APP", "APP2"),
    )
    .unwrap();
    envoke
        .run(["check"])
        .assert_code(125)
        .assert_stderr_contains("envoke trust envoke.toml");
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
}
