//! What the authentication tests make for themselves: key pairs and signed JWTs, a CA and a client
//! certificate (with the openssl CLI), and a stand-in for the Kubernetes TokenReview API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian: apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// An RSA key pair in `dir`: the private key's path and the public key as PEM.
pub fn rsa_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let private = format!("{name}.key");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &private,
        ],
    );
    let public = openssl(dir, &["pkey", "-in", &private, "-pubout"]);
    (dir.join(private), String::from_utf8(public).unwrap())
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT with `claims`, signed RS256 with the private key at `key`.
pub fn signed_jwt(key: &Path, claims: &Value) -> String {
    let header = base64url(json!({"alg": "RS256", "typ": "JWT"}).to_string().as_bytes());
    let payload = base64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let dir = key.parent().unwrap();
    let input = dir.join("jwt-input");
    std::fs::write(&input, &signing_input).unwrap();
    let signature = openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    format!("{signing_input}.{}", base64url(&signature))
}

/// Seconds since the epoch, for `iat`/`exp` claims.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A self-signed CA in `dir`: `{name}.key` and `{name}.pem`.
fn certificate_authority(dir: &Path, name: &str, subject: &str) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "1", "-subj", subject,
        ],
    );
    dir.join(pem)
}

/// A key and a certificate for `subject` that the CA `ca` (from [`certificate_authority`])
/// signed, with the X.509 extensions `extensions`: (`{name}.pem`, `{name}.key`).
fn signed_certificate(
    dir: &Path,
    ca: &str,
    name: &str,
    subject: &str,
    extensions: &str,
) -> (PathBuf, PathBuf) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// A CA and a client certificate it signed, in `dir`: (CA PEM path, certificate, key).
pub fn client_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = certificate_authority(dir, "ca", "/CN=envoke test client CA");
    let (cert, key) = signed_certificate(
        dir,
        "ca",
        "client",
        "/CN=envoke-test-client",
        "extendedKeyUsage = clientAuth\n",
    );
    (ca, cert, key)
}

/// A stand-in for the Kubernetes API's TokenReview endpoint on loopback: every review says the
/// token belongs to service account `namespace/name` with `uid`. Returns its address; the thread
/// serves until the test process ends.
pub fn token_reviewer(namespace: &str, name: &str, uid: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let review = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": {
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{namespace}:{name}"),
                "uid": uid,
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}")],
            }
        }
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{review}",
                review.len()
            );
        }
    });
    address
}

/// A CA and a server certificate for 127.0.0.1 that it signed, in `dir`, as a company's own CA
/// would issue for an internal endpoint: (CA PEM path, certificate, key).
pub fn server_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = certificate_authority(dir, "server-ca", "/CN=envoke test corporate CA");
    let (cert, key) = signed_certificate(
        dir,
        "server-ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    );
    (ca, cert, key)
}
