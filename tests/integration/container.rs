//! The release image in a real container, as ECS and Kubernetes run it: the static envoke is PID 1
//! of a `FROM scratch` image, on a read-only root filesystem, as user 10001, with the host's
//! network (support/container.rs). What a user checks there: the secrets arrive (also over TLS
//! with a company's own CA, and by names from /etc/hosts), `podman stop` reaches the command once
//! and its exit code is the container's, a rotation restarts the command, orphans are reaped,
//! secret files stay on a tmpfs and are gone after the stop, and bad input is exit 125 with a
//! clear line, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use crate::support::container::{Container, podman_ok};
use crate::support::dns::Dns;
use crate::support::tls::TlsMoto;
use crate::support::{Bao, Moto, ROOT_TOKEN};

/// The port of an `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` address.
fn port(address: &str) -> &str {
    address.rsplit(':').next().unwrap()
}

/// A container pointed at `bao` and `moto` the way a task definition would, by names: Vault by
/// `localhost` and the AWS endpoint by a name podman writes into the container's /etc/hosts.
/// musl resolves both without glibc's NSS.
fn pointed_at(container: Container, bao: &Bao, moto: &Moto) -> Container {
    container
        .option("--add-host=secrets.envoke.test:127.0.0.1")
        .vault(format!("http://localhost:{}", port(&bao.addr)))
        .aws(format!(
            "http://secrets.envoke.test:{}",
            port(&moto.endpoint)
        ))
}

#[test]
fn as_pid_1_the_command_gets_its_secrets_from_openbao_and_moto() {
    let Some(container) = Container::new() else {
        return;
    };
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "password": "vault-in-a-box" }));
    let moto = Moto::start();
    moto.create("shop/db", "aws-in-a-box");
    let output = pointed_at(container, &bao, &moto)
        .env("DB_PASSWORD", "vault://secret/app#password")
        .env("SHOP_DB", "aws-sm://shop/db")
        .run(&[
            "run",
            "--",
            "sh",
            "-c",
            r#"echo "pid=$$ parent=$PPID vault=$DB_PASSWORD aws=$SHOP_DB""#,
        ]);
    output.assert_code(0);
    // The command is envoke's child and envoke is PID 1.
    output.assert_stdout_contains("parent=1 vault=vault-in-a-box aws=aws-in-a-box");
}

#[test]
fn names_resolve_through_resolv_conf_a_nameserver_and_a_search_domain() {
    let Some(container) = Container::new() else {
        return;
    };
    let dns = Dns::start("envoke.test");
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "password": "found-by-dns" }));
    // `vault` has no dot: the search domain makes it vault.envoke.test, which only the DNS
    // server knows (podman writes both into the container's /etc/resolv.conf).
    let output = container
        .option(format!("--dns={}", dns.address))
        .option("--dns-search=envoke.test")
        .vault(format!("http://vault:{}", port(&bao.addr)))
        .env("DB_PASSWORD", "vault://secret/app#password")
        .run(&["run", "--", "sh", "-c", r#"echo "db=$DB_PASSWORD""#]);
    output.assert_code(0);
    output.assert_stdout_contains("db=found-by-dns");
    assert!(
        dns.asked().iter().any(|name| name == "vault.envoke.test"),
        "the DNS server was not asked: {:?}",
        dns.asked()
    );
}

#[test]
fn over_tls_with_the_companys_own_ca_the_secrets_arrive() {
    let Some(container) = Container::new() else {
        return;
    };
    let certificates = tempfile::tempdir().unwrap();
    let bao = Bao::start_tls(certificates.path());
    bao.kv2_put("secret", "app", json!({ "password": "vault-over-tls" }));
    let moto = TlsMoto::start();
    moto.create("shop/db", "aws-over-tls");
    let vault_ca = std::fs::read_to_string(bao.ca.as_ref().unwrap()).unwrap();
    let moto_ca = std::fs::read_to_string(&moto.ca).unwrap();
    let output = container
        .file("vault-ca.pem", &vault_ca)
        .file("moto-ca.pem", &moto_ca)
        .vault(&bao.addr)
        .env("VAULT_CACERT", "/work/vault-ca.pem")
        .aws(&moto.endpoint)
        .env("SSL_CERT_FILE", "/work/moto-ca.pem")
        .env("DB_PASSWORD", "vault://secret/app#password")
        .env("SHOP_DB", "aws-sm://shop/db")
        .run(&[
            "run",
            "--",
            "sh",
            "-c",
            r#"echo "vault=$DB_PASSWORD aws=$SHOP_DB""#,
        ]);
    output.assert_code(0);
    output.assert_stdout_contains("vault=vault-over-tls aws=aws-over-tls");
}

#[test]
fn podman_stop_delivers_one_term_and_the_containers_exit_code_is_the_commands() {
    let Some(container) = Container::new() else {
        return;
    };
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "password": "p" }));
    let running = container
        .vault(&bao.addr)
        .env("DB_PASSWORD", "vault://secret/app#password")
        .start(&[
            "run",
            "--",
            "sh",
            "-c",
            "trap 'echo TERM >> /work/signals; exit 3' TERM; echo ready > /work/ready; \
             while :; do sleep 0.1; done",
        ]);
    running.wait_lines("ready", 1, Duration::from_secs(30));
    let code = running.stop(Duration::from_secs(20));
    assert_eq!(code, 3, "{}", running.logs());
    let signals = std::fs::read_to_string(running.work().join("signals")).unwrap();
    assert_eq!(signals, "TERM\n", "the command got TERM once");
}

#[test]
fn a_rotation_under_watch_restarts_the_command_inside_the_container() {
    let Some(container) = Container::new() else {
        return;
    };
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "password": "before" }));
    let running = container
        .vault(&bao.addr)
        .env("DB_PASSWORD", "vault://secret/app#password")
        .start(&[
            "run",
            "--watch",
            "1s",
            "--settle",
            "100ms",
            "--",
            "sh",
            "-c",
            r#"echo "$DB_PASSWORD" >> /work/starts; exec sleep 600"#,
        ]);
    assert_eq!(
        running.wait_lines("starts", 1, Duration::from_secs(30)),
        ["before"]
    );
    bao.kv2_put("secret", "app", json!({ "password": "after" }));
    assert_eq!(
        running.wait_lines("starts", 2, Duration::from_secs(30)),
        ["before", "after"],
        "restarted once, with the new value"
    );
    // `exec sleep` ends with TERM: 128 + 15.
    assert_eq!(running.stop(Duration::from_secs(20)), 143);
}

#[test]
fn orphans_are_reaped_by_envoke_as_pid_1() {
    let Some(container) = Container::new() else {
        return;
    };
    // The subshell exits at once, so its `sleep` is orphaned to PID 1 (envoke). Once that sleep
    // ends, only PID 1 can reap it: unreaped, it stays in /proc as a zombie.
    let script = r#"
        ( sleep 0.5 & echo $! > /work/orphan )
        orphan=$(cat /work/orphan)
        grep '^PPid:' /proc/$orphan/status
        sleep 2
        if [ -e /proc/$orphan ]; then grep '^State:' /proc/$orphan/status; else echo reaped; fi
    "#;
    let output = container.run(&["run", "--", "sh", "-c", script]);
    output.assert_code(0);
    output.assert_stdout_contains("PPid:\t1");
    output.assert_stdout_contains("reaped");
}

#[test]
fn secret_files_land_on_the_tmpfs_and_are_gone_after_stop() {
    let Some(container) = Container::new() else {
        return;
    };
    let bao = Bao::start();
    bao.kv2_put("secret", "tls", json!({ "key": "-----BEGIN KEY-----" }));
    // A directory of the host's /dev/shm (a tmpfs) stands for the container's tmpfs, so that the
    // test sees what is left in it after the container is gone.
    let shm = tempfile::Builder::new()
        .prefix("envoke-container-")
        .tempdir_in("/dev/shm")
        .unwrap();
    std::fs::set_permissions(shm.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let running = container
        .file(
            "envoke.toml",
            "[env]\nTLS_KEY_FILE = { ref = \"vault://secret/tls#key\", file = true }\n",
        )
        .option(format!("--volume={}:/run/secrets", shm.path().display()))
        .env("XDG_RUNTIME_DIR", "/run/secrets")
        .vault(&bao.addr)
        .start(&[
            "run",
            "-m",
            "/work/envoke.toml",
            "--",
            "sh",
            "-c",
            r#"cat "$TLS_KEY_FILE" > /work/key; echo "$TLS_KEY_FILE" > /work/path;
               while :; do sleep 0.1; done"#,
        ]);
    let path = running
        .wait_lines("path", 1, Duration::from_secs(30))
        .remove(0);
    assert!(path.starts_with("/run/secrets/"), "{path}");
    assert_eq!(
        std::fs::read_to_string(running.work().join("key")).unwrap(),
        "-----BEGIN KEY-----"
    );
    let host_path = shm
        .path()
        .join(path.trim().strip_prefix("/run/secrets/").unwrap());
    assert!(
        host_path.exists(),
        "the file is on the tmpfs while the command runs"
    );
    running.stop(Duration::from_secs(20));
    let left: Vec<_> = walk(shm.path());
    assert!(left.is_empty(), "left on the tmpfs after stop: {left:?}");
}

/// Every entry below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn bad_input_in_the_container_is_exit_125_with_a_clear_line_never_a_panic() {
    let Some(container) = Container::new() else {
        return;
    };
    let bao = Bao::start();
    let output = container
        .vault(&bao.addr)
        .env("DB_PASSWORD", "vault://secret/missing#password")
        .run(&["run", "--", "sh", "-c", "echo started"]);
    output.assert_code(125);
    output.assert_stderr_contains("DB_PASSWORD");
    output.assert_stderr_contains("vault://secret/missing#password");
    output.assert_stderr_lacks("panicked");
    assert!(!output.stdout.contains("started"));

    // A FIFO where the manifest should be: refused, not waited on.
    let Some(container) = Container::new() else {
        return;
    };
    nix::unistd::mkfifo(
        &container.work().join("envoke.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let output = container.run(&["run", "-m", "/work/envoke.toml", "--", "true"]);
    output.assert_code(125);
    output.assert_stderr_contains("/work/envoke.toml");
    output.assert_stderr_lacks("panicked");
}

#[test]
fn with_no_trust_roots_in_the_image_an_https_endpoint_fails_naming_the_fix() {
    let Some(container) = Container::new() else {
        return;
    };
    let certificates = tempfile::tempdir().unwrap();
    let bao = Bao::start_tls(certificates.path());
    bao.kv2_put("secret", "app", json!({ "password": "unreachable" }));
    let moto = TlsMoto::start();
    moto.create("shop/db", "unreachable");
    // The image's bundle is hidden and SSL_CERT_FILE unset: an image with no /etc/ssl at all.
    let output = container
        .option("--tmpfs=/etc/ssl:notmpcopyup")
        .option("--unsetenv=SSL_CERT_FILE")
        .vault(&bao.addr)
        .aws(&moto.endpoint)
        .env("SHOP_DB", "aws-sm://shop/db")
        .env("DB_PASSWORD", "vault://secret/app#password")
        .run(&["run", "--", "true"]);
    output.assert_code(125);
    output.assert_stderr_lacks("panicked");
    for (variable, reference) in [
        ("SHOP_DB", "aws-sm://shop/db"),
        ("DB_PASSWORD", "vault://secret/app#password"),
    ] {
        let line = output
            .stderr
            .lines()
            .find(|line| line.contains(&format!("{variable} ({reference})")))
            .unwrap_or_else(|| panic!("no line for {variable}\n{}", output.stderr));
        assert!(
            line.contains("no trusted CA certificates were found")
                && line.contains("set SSL_CERT_FILE to a CA bundle"),
            "{line}"
        );
    }
}

#[test]
fn the_example_dockerfile_builds_on_the_release_image_and_runs_as_pid_1() {
    let Some(container) = Container::new() else {
        return;
    };
    drop(container);
    let image = crate::support::container::image().unwrap();
    // A stand-in for the application's base image: a shell and nothing else.
    let base = tempfile::tempdir().unwrap();
    let bin = base.path().join("bin");
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(crate::support::container::busybox_bin())
        .arg(&bin)
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::write(
        base.path().join("Containerfile"),
        "FROM scratch\nCOPY bin /bin\n",
    )
    .unwrap();
    let base_tag = format!("localhost/envoke-test-base:{}", std::process::id());
    podman_ok(&[
        "build",
        "--quiet",
        "--tag",
        &base_tag,
        base.path().to_str().unwrap(),
    ]);
    let app_tag = format!("localhost/envoke-test-app:{}", std::process::id());
    let root = env!("CARGO_MANIFEST_DIR");
    let built = podman_ok(&[
        "build",
        "--quiet",
        "--file",
        &format!("{root}/examples/Dockerfile"),
        "--build-arg",
        &format!("ENVOKE_IMAGE={image}"),
        "--build-arg",
        &format!("BASE={base_tag}"),
        "--tag",
        &app_tag,
        // The example copies nothing from its context.
        base.path().to_str().unwrap(),
    ]);
    assert!(!built.trim().is_empty());
    let bao = Bao::start();
    bao.kv2_put("secret", "app", json!({ "password": "from-the-example" }));
    let output = podman_ok(&[
        "run",
        "--rm",
        "--network=host",
        "--read-only",
        "--env",
        &format!("VAULT_ADDR={}", bao.addr),
        "--env",
        &format!("VAULT_TOKEN={ROOT_TOKEN}"),
        "--env",
        "DB_PASSWORD=vault://secret/app#password",
        &app_tag,
        "sh",
        "-c",
        r#"echo "user=$(id -u) parent=$PPID db=$DB_PASSWORD""#,
    ]);
    let _ = podman_ok(&["rmi", "--force", &app_tag, &base_tag]);
    assert!(
        output.contains("user=10001 parent=1 db=from-the-example"),
        "{output}"
    );
}
