//! The trust store is still what decides, now that it is read only when a certificate is to be
//! verified (provider/aws/http.rs): a CA given by SSL_CERT_FILE or SSL_CERT_DIR is trusted, and
//! an endpoint whose CA is in neither (nor in the system's store) is refused.

use crate::support::tls::TlsMoto;
use crate::support::{Envoke, REGION};

/// envoke pointed at `moto` over TLS, with nothing said about its CA.
fn envoke_for(moto: &TlsMoto) -> Envoke {
    Envoke::new()
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest("[env]\nTOKEN = \"aws-sm://corp/token\"\n")
}

#[test]
fn a_corporate_ca_in_ssl_cert_file_or_ssl_cert_dir_is_trusted_and_nothing_else() {
    let moto = TlsMoto::start();
    moto.create("corp/token", "over-tls");

    let from_file = envoke_for(&moto).env("SSL_CERT_FILE", &moto.ca);
    let (output, env) = from_file.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["TOKEN"], "over-tls");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&moto.ca, dir.path().join("corporate-ca.pem")).unwrap();
    let from_dir = envoke_for(&moto).env("SSL_CERT_DIR", dir.path());
    let (output, env) = from_dir.child_env(&[]);
    output.assert_code(0);
    assert_eq!(env["TOKEN"], "over-tls");

    // The system's store alone does not know the test's CA: the launch stops, naming the
    // variable and saying why.
    let untrusted = envoke_for(&moto).run(["run", "--", "true"]);
    untrusted.assert_code(125);
    untrusted
        .assert_stderr_contains("TOKEN")
        .assert_stderr_lacks("over-tls");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    // ... and what to do: the store has CAs, just not this one.
    untrusted.assert_stderr_contains(
        "the server's certificate is not signed by a CA this system trusts; for a company's own \
         CA, set SSL_CERT_FILE to its PEM file",
    );
}
