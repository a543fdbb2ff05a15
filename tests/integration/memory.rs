//! No value left behind in envoke's own memory: once the command runs, the supervising envoke
//! holds no copy of any value it fetched, in use or freed (SECURITY.md).

use std::io::{Read, Seek, SeekFrom};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::support::{Bao, Envoke, Moto, poll, poll_until};

/// Every writable mapping of process `pid` that holds `needle` (heap, stacks, anonymous
/// memory, data sections: where a value fetched at run time can be; read-only mappings hold only
/// what was in their files).
fn mappings_holding(pid: u32, needle: &[u8]) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = Vec::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields[1].starts_with("rw") {
            continue;
        }
        let (start, end) = fields[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut bytes = vec![0; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut bytes).is_err() {
            continue;
        }
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(line.to_owned());
        }
    }
    found
}

#[test]
fn the_supervising_envoke_keeps_no_copy_of_a_value() {
    let bao = Bao::start();
    let moto = Moto::start();
    let vault_value = "vault-value-7c1d9e04b2";
    let aws_value = "aws-value-3f8a61c5d9";
    bao.kv2_put("secret", "app", json!({ "password": vault_value }));
    moto.create("app", &json!({ "password": aws_value }).to_string());
    let envoke = Envoke::new().vault(&bao).aws(&moto).manifest(
        "[env]\nFROM_VAULT = \"vault://secret/app#password\"\nFROM_AWS = \"aws-sm://app#password\"\n",
    );
    let ready = envoke.dir().join("ready");
    let mut supervisor = envoke
        .command(["run", "--", "sh", "-c", r#"touch "$READY"; exec sleep 60"#])
        .env("READY", &ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll_until(Duration::from_secs(10), "the command to start", || {
        ready.exists()
    });
    // envoke drops the child's environment as soon as the spawn returns, a moment after the
    // command wrote $READY: wait for that drop (a copy it keeps never goes).
    let held = || {
        (
            mappings_holding(supervisor.id(), vault_value.as_bytes()),
            mappings_holding(supervisor.id(), aws_value.as_bytes()),
        )
    };
    let (in_vault, in_aws) = poll(Duration::from_secs(5), || {
        let (in_vault, in_aws) = held();
        (in_vault.is_empty() && in_aws.is_empty()).then_some((in_vault, in_aws))
    })
    .unwrap_or_else(held);
    let _ = kill(Pid::from_raw(supervisor.id() as i32), Signal::SIGTERM);
    supervisor.wait().unwrap();
    assert!(
        in_vault.is_empty(),
        "the Vault value is still in {in_vault:?} after 5 s"
    );
    assert!(
        in_aws.is_empty(),
        "the AWS value is still in {in_aws:?} after 5 s"
    );
}
