//! The release image under podman, run the way deployments run it: envoke is the container's
//! PID 1, the root filesystem is read-only, the user is 10001 (no entry in any passwd file), and
//! the host's network reaches the test servers on loopback.
//!
//! The image is the one `scripts/release image` built; `ENVOKE_TEST_IMAGE` names it (scripts/test
//! sets it). The image holds envoke and the CA bundle only, so the commands the tests start come
//! from a static busybox mounted read-only at /bin. A test without the image fails, saying how
//! to get it; `ENVOKE_TEST_CONTAINERS=off` is the one way to leave these tests out, and each such
//! test says SKIPPED.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Output, project_root};

/// The uid and gid the containers run as.
pub const USER: &str = "10001:10001";

/// The release image to test, or `None` when containers were left out on purpose.
pub fn image() -> Option<String> {
    if std::env::var("ENVOKE_TEST_CONTAINERS").as_deref() == Ok("off") {
        eprintln!("SKIPPED: ENVOKE_TEST_CONTAINERS=off; the release image is not tested");
        return None;
    }
    match std::env::var("ENVOKE_TEST_IMAGE") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => panic!(
            "ENVOKE_TEST_IMAGE is not set: run scripts/test, which builds the release image \
             (scripts/release image) and names it, or set ENVOKE_TEST_CONTAINERS=off to leave \
             the container tests out"
        ),
    }
}

/// podman with this machine's settings (scripts/podman).
pub fn podman() -> Command {
    let mut command = Command::new(project_root().join("scripts/podman"));
    command.stdin(Stdio::null());
    command
}

/// Runs podman to completion; panics with its stderr when it fails.
#[track_caller]
pub fn podman_ok(args: &[&str]) -> String {
    let output = podman().args(args).output().expect("run scripts/podman");
    assert!(
        output.status.success(),
        "podman {args:?} failed\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A directory holding a static busybox and a link for each of its applets, to mount at /bin.
pub fn busybox_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists()
                && Command::new("file")
                    .arg("-L")
                    .arg(busybox)
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("statically")),
            "a static /bin/busybox is missing: run scripts/setup (Debian: busybox-static)"
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox-bin");
        let staging = dir.with_extension(format!("{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::copy(busybox, staging.join("busybox")).unwrap();
        let list = Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", staging.join(applet)).unwrap();
            }
        }
        // Another test binary may have made it already; either copy is complete.
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        dir
    })
}

/// A unique container name for this test process.
fn container_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "envoke-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One container to be: its environment, mounts and envoke's arguments.
pub struct Container {
    image: String,
    name: String,
    /// Mounted read-write at /work; writable by the container's user.
    work: tempfile::TempDir,
    options: Vec<OsString>,
}

impl Container {
    /// A container of the release image; `None` when containers are left out on purpose.
    pub fn new() -> Option<Container> {
        let image = image()?;
        let work = tempfile::tempdir().unwrap();
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut container = Container {
            image,
            name: container_name(),
            work,
            options: Vec::new(),
        };
        let bin = format!("{}:/bin:ro", busybox_bin().display());
        let work_mount = format!("{}:/work", container.work.path().display());
        container.options = [
            "--network=host",
            "--read-only",
            "--user",
            USER,
            "--volume",
            &bin,
            "--volume",
            &work_mount,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        Some(container)
    }

    /// The host directory mounted at /work.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Sets a variable in the container's environment.
    pub fn env(mut self, name: &str, value: impl AsRef<str>) -> Container {
        self.options.push("--env".into());
        self.options
            .push(format!("{name}={}", value.as_ref()).into());
        self
    }

    /// Points envoke at a Vault server with the root token.
    pub fn vault(self, address: impl AsRef<str>) -> Container {
        self.env("VAULT_ADDR", address)
            .env("VAULT_TOKEN", super::ROOT_TOKEN)
    }

    /// Points envoke at a Secrets Manager endpoint with test credentials.
    pub fn aws(self, endpoint: impl AsRef<str>) -> Container {
        self.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", super::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// Adds a podman option (a mount, `--add-host`, `--tmpfs`, `--unsetenv`).
    pub fn option(mut self, option: impl Into<OsString>) -> Container {
        self.options.push(option.into());
        self
    }

    /// Writes a file in /work, readable by the container's user.
    pub fn file(self, name: &str, text: &str) -> Container {
        let path = self.work.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    fn run_command(&self, detach: bool, envoke_args: &[&str]) -> Command {
        let mut command = podman();
        command.arg("run").arg("--name").arg(&self.name);
        if detach {
            command.arg("--detach");
        }
        command
            .args(&self.options)
            .arg(&self.image)
            .args(envoke_args);
        command
    }

    /// Runs the container to its end (envoke's arguments after the image); its exit code is
    /// the container's.
    pub fn run(self, envoke_args: &[&str]) -> Output {
        let output = self
            .run_command(false, envoke_args)
            .output()
            .expect("run scripts/podman");
        let _ = podman().args(["rm", "--force", &self.name]).output();
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts the container in the background.
    pub fn start(self, envoke_args: &[&str]) -> Running {
        let output = self
            .run_command(true, envoke_args)
            .output()
            .expect("run scripts/podman");
        assert!(
            output.status.success(),
            "podman run failed\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Running { container: self }
    }
}

/// A container running in the background; removed when dropped.
pub struct Running {
    container: Container,
}

impl Running {
    /// The host directory mounted at /work.
    pub fn work(&self) -> &Path {
        self.container.work()
    }

    /// What the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let output = podman()
            .args(["logs", &self.container.name])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Waits until the file `name` in /work has `count` lines; its lines. Fails showing the
    /// container's logs.
    #[track_caller]
    pub fn wait_lines(&self, name: &str, count: usize, timeout: Duration) -> Vec<String> {
        super::wait_lines_or_explain(&self.work().join(name), count, timeout, || {
            format!("--- container logs\n{}", self.logs())
        })
    }

    /// `podman stop`: TERM to PID 1 (envoke), KILL after `grace`. The container's exit code.
    pub fn stop(&self, grace: Duration) -> i32 {
        podman_ok(&[
            "stop",
            "--time",
            &grace.as_secs().to_string(),
            &self.container.name,
        ]);
        self.exit_code()
    }

    /// Waits for the container to end; its exit code.
    pub fn exit_code(&self) -> i32 {
        podman_ok(&["wait", &self.container.name])
            .trim()
            .parse()
            .expect("podman wait prints the exit code")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.container.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
