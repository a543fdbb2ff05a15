//! The HTTP client every AWS call goes through (Secrets Manager, STS, SSO, the ECS and EC2
//! credential endpoints): TLS, and with it the system's trust store, only for `https://`.
//!
//! The SDK's own client builds its TLS settings as soon as any SDK client is made, and that
//! reads the trust store: rustls-native-certs loads the bundle and then every file of the
//! certificate directory (on Debian, /etc/ssl/certs/ca-certificates.crt and the ~150 files beside
//! it), about a third of a launch's CPU time. aws-config makes an STS client for web identity
//! credentials whether or not they are configured, so every launch paid it, also against a plain
//! `http://` endpoint (the ECS credential endpoint, a local emulator) that never verifies a
//! certificate. This client keeps the SDK's two clients, one without TLS and one with it, and picks
//! per request by the address's scheme: the TLS one, and the trust store, are set up on the first
//! `https://` request and then kept. Verification is unchanged — the same rustls configuration,
//! the same roots, SSL_CERT_FILE and SSL_CERT_DIR honoured — it only happens when there is a
//! certificate to verify, as Go's and the Vault client's (provider/vault/http.rs) do.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The SDK's HTTP client without TLS and with it, chosen per request.
#[derive(Debug)]
struct ByScheme {
    plain: SharedHttpClient,
    tls: SharedHttpClient,
}

/// The client for `aws_config::ConfigLoader::http_client`.
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(ByScheme {
        // `build_http` is the SDK's own plain-HTTP client (hidden from its docs, public, and
        // what its tests use): connection pool, timeouts and sleep as the TLS one has them.
        plain: aws_smithy_http_client::Builder::new().build_http(),
        tls: aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .build_https(),
    })
}

impl HttpClient for ByScheme {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ByRequest {
            plain: self.plain.http_connector(settings, components),
            tls: self.tls.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }

    // `validate_base_client_config` keeps its default (nothing to check): the SDK's own client
    // builds its connector there, trust store included, which is what this client defers.

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.tls.connector_metadata()
    }
}

/// One request's connector: the plain one for `http://`, else the TLS one, made (and cached by
/// the TLS client) on first use.
#[derive(Debug)]
struct ByRequest {
    plain: SharedHttpConnector,
    tls: SharedHttpClient,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for ByRequest {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if is_plain_http(request.uri()) {
            return self.plain.call(request);
        }
        self.tls
            .http_connector(&self.settings, &self.components)
            .call(request)
    }
}

/// Whether `uri` is a plain `http://` address (the scheme is case-insensitive, RFC 3986 §3.1).
/// Anything else goes to the TLS client, which refuses what it cannot serve.
fn is_plain_http(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use super::is_plain_http;

    #[test]
    fn only_http_addresses_skip_tls() {
        assert!(is_plain_http("http://127.0.0.1:4566/"));
        assert!(is_plain_http("HTTP://169.254.170.2/v2/credentials"));
        assert!(!is_plain_http(
            "https://secretsmanager.us-east-1.amazonaws.com/"
        ));
        assert!(!is_plain_http("httpx://host/"));
        assert!(!is_plain_http("http:/"));
        assert!(!is_plain_http(""));
    }
}
