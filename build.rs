//! Records what `envoke --version` reports besides the version: the commit the binary was built
//! from and the target it was built for, so that a bug report names the exact build.
//!
//! The commit comes from `ENVOKE_COMMIT` when set (scripts/release sets it; a source archive has
//! no .git), else from `git rev-parse`, else "unknown". No git, no crate: a missing git is not an
//! error, the build goes on.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ENVOKE_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(reference) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        println!("cargo:rerun-if-changed=.git/{reference}");
    }
    let commit = std::env::var("ENVOKE_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=ENVOKE_COMMIT={commit}");
    println!("cargo:rustc-env=ENVOKE_TARGET={target}");
}

/// The short hash of HEAD, when this is a git checkout and git is installed.
fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?;
    let commit = commit.trim();
    (output.status.success() && commit.bytes().all(|b| b.is_ascii_hexdigit()) && !commit.is_empty())
        .then(|| commit.to_owned())
}
