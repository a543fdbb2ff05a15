//! moto behind TLS, with a certificate for 127.0.0.1 that a CA made by the test signed: an
//! internal endpoint whose CA no system trust store has, as a company's own CA issues them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SmClient;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::{REGION, Server, auth, start_on_a_free_port, venv_tool};

pub struct TlsMoto {
    /// `https://127.0.0.1:PORT`
    pub endpoint: String,
    /// The PEM of the CA that signed the server's certificate.
    pub ca: PathBuf,
    _server: Server,
    _certificates: Arc<tempfile::TempDir>,
    runtime: tokio::runtime::Runtime,
    client: SmClient,
}

impl TlsMoto {
    /// Makes the CA and the server's certificate, starts moto with them and waits until it
    /// answers over TLS.
    pub fn start() -> TlsMoto {
        let certificates = Arc::new(tempfile::tempdir().unwrap());
        let (ca, cert, key) = auth::server_certificate(certificates.path());
        start_on_a_free_port("moto (TLS)", |port| {
            let child = Command::new(venv_tool("bin/moto_server", "ENVOKE_TEST_MOTO"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .arg("-c")
                .arg(&cert)
                .arg("-k")
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let endpoint = format!("https://127.0.0.1:{port}");
            let mut server = Server {
                child,
                name: "moto (TLS)",
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let client = client_trusting(&endpoint, &std::fs::read(&ca).unwrap());
            let ready = server.wait_ready(Duration::from_secs(60), || {
                runtime.block_on(client.list_secrets().send()).is_ok()
            });
            ready.then(|| TlsMoto {
                endpoint,
                ca: ca.clone(),
                _server: server,
                _certificates: Arc::clone(&certificates),
                runtime,
                client,
            })
        })
    }

    /// Creates a string secret.
    pub fn create(&self, name: &str, value: &str) {
        self.runtime
            .block_on(
                self.client
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    }
}

/// A Secrets Manager client that trusts only the CA in `ca_pem`.
fn client_trusting(endpoint: &str, ca_pem: &[u8]) -> SmClient {
    let trust = tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::for_tests())
        .http_client(http)
        .build();
    SmClient::from_conf(config)
}
