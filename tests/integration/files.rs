//! Secret files (`file = true`): only in memory unless allowed, never written or zeroed through a
//! planted symlink, and bytes (a NUL included) rather than environment text.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::{Bao, Envoke, wait_lines_or_explain};

/// A directory on the disk the project lives on (not a tmpfs); `None` when the project is on a
/// tmpfs itself.
fn disk_directory() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kind = nix::sys::statfs::statfs(dir.path())
        .unwrap()
        .filesystem_type();
    if kind == nix::sys::statfs::TMPFS_MAGIC {
        crate::support::cannot_run_here("the project is on a tmpfs here; no disk to refuse");
        return None;
    }
    Some(dir)
}

#[test]
fn secret_files_on_a_disk_are_refused_naming_the_directory_and_the_flag() {
    let Some(disk) = disk_directory() else {
        return;
    };
    let envoke = Envoke::new()
        .env("XDG_RUNTIME_DIR", disk.path())
        .manifest("[env]\nCONF = { value = \"hello\", file = true }\n");
    envoke
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains(&format!(
            "secret files would be written under {}, which is not on a tmpfs or ramfs",
            disk.path().display()
        ))
        .assert_stderr_contains("--allow-disk-files");
    assert_eq!(std::fs::read_dir(disk.path()).unwrap().count(), 0);
    for allowed in [
        envoke.run([
            "run",
            "--allow-disk-files",
            "--",
            "sh",
            "-c",
            r#"cat "$CONF""#,
        ]),
        Envoke::new()
            .env("XDG_RUNTIME_DIR", disk.path())
            .env("ENVOKE_ALLOW_DISK_FILES", "1")
            .manifest("[env]\nCONF = { value = \"hello\", file = true }\n")
            .run(["run", "--", "sh", "-c", r#"cat "$CONF""#]),
    ] {
        allowed.assert_code(0);
        assert_eq!(allowed.stdout, "hello");
    }
    assert_eq!(
        std::fs::read_dir(disk.path()).unwrap().count(),
        0,
        "removed on exit"
    );
}

#[test]
fn a_symlink_planted_in_place_of_a_secret_file_is_removed_not_followed_at_exit() {
    let envoke = Envoke::new()
        .file("victim", "precious")
        .manifest("[env]\nCONF = { value = \"hello\", file = true }\n");
    let victim = envoke.dir().join("victim");
    // The command swaps its secret file for a symlink to another file, then exits: envoke zeroes
    // and removes its files, and must not zero that file through the link.
    let output = envoke
        .command([
            "run",
            "--",
            "sh",
            "-c",
            r#"rm "$CONF" && ln -s "$VICTIM" "$CONF" && echo "$CONF""#,
        ])
        .env("VICTIM", &victim)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let path = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!path.parent().unwrap().exists(), "the directory is removed");
}

#[test]
fn a_symlink_planted_during_a_watch_is_replaced_not_written_through() {
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({"token": "file-1"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .file("victim", "precious")
        .manifest("[env]\nTOKEN_FILE = { ref = \"vault://secret/app#token\", file = true }\n");
    let victim = envoke.dir().join("victim");
    let log = envoke.dir().join("child.log");
    // Plants symlinks in place of the file and of the temporary file a rewrite writes (where an
    // earlier envoke truncated and wrote through the link), then logs the file's content on HUP.
    let script = r#"
rm "$TOKEN_FILE"; ln -s "$VICTIM" "$TOKEN_FILE"
ln -s "$VICTIM" "$(dirname "$TOKEN_FILE")/.TOKEN_FILE.new"
trap 'cat "$TOKEN_FILE" >> "$LOG"; echo >> "$LOG"' HUP
echo planted >> "$LOG"
while :; do sleep 0.05; done
"#;
    let mut child = envoke
        .command([
            "run",
            "--watch",
            "1s",
            "--settle",
            "100ms",
            "--on-change",
            "signal:HUP",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("VICTIM", &victim)
        .env("LOG", &log)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_lines_or_explain(&log, 1, Duration::from_secs(10), String::new);
    bao.kv2_put("secret", "app", json!({"token": "file-2"}));
    let lines = wait_lines_or_explain(&log, 2, Duration::from_secs(10), String::new);
    assert_eq!(
        lines[1], "file-2",
        "the rewrite replaced the link with a file"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// `printf` of `a NUL b`, compared byte for byte with the file `$BLOB`.
const COMPARES_NUL_FILE: &str = r#"printf 'a\000b' | cmp - "$BLOB" && echo same"#;

#[test]
fn a_value_with_a_nul_byte_works_in_a_file_and_is_refused_as_a_variable() {
    let literal = Envoke::new().manifest("[env]\nBLOB = { value = \"a\\u0000b\", file = true }\n");
    let output = literal.run(["run", "--", "sh", "-c", COMPARES_NUL_FILE]);
    output.assert_code(0);
    assert_eq!(output.stdout, "same\n");

    let bao = Bao::start();
    bao.kv2_put("secret", "bin", json!({"blob": "a\u{0}b"}));
    let envoke = Envoke::new()
        .vault(&bao)
        .manifest("[env]\nBLOB = { ref = \"vault://secret/bin#blob\", file = true }\n");
    let output = envoke.run(["run", "--", "sh", "-c", COMPARES_NUL_FILE]);
    output.assert_code(0);
    assert_eq!(output.stdout, "same\n");

    let envoke = Envoke::new().vault(&bao).manifest(
        "[env]\nBLOB = { ref = \"vault://secret/bin#blob\", file = true }\nAS_VARIABLE = \"vault://secret/bin#blob\"\n",
    );
    let output = envoke.run(["run", "--", "true"]);
    output
        .assert_code(125)
        .assert_stderr_contains("1 variable cannot be resolved")
        .assert_stderr_contains("AS_VARIABLE (vault://secret/bin#blob): value contains a NUL byte");
    Envoke::new()
        .manifest("[env]\nLITERAL = \"a\\u0000b\"\n")
        .run(["run", "--", "true"])
        .assert_code(125)
        .assert_stderr_contains("LITERAL: value contains a NUL byte");
}
