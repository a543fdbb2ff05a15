//! `[vault]` and the vault CLI's environment: where Vault is and how envoke proves who it is.
//!
//! Every key of `[vault]` has an environment variable, which wins over the manifest, as the vault
//! CLI orders them (a difference is a warning naming both): the user's own settings decide where
//! credentials go, not a file that came with the directory ([`super::trust`]).
//! OpenBao's `BAO_*` names work wherever the `VAULT_*` ones do (`VAULT_*` wins when both are set).
//! Values are checked here, before any client sees them: a control character in a token or a
//! namespace (a trailing newline from a Kubernetes secret, say) would otherwise reach an HTTP
//! header, where it is an error at best and a panic inside the client at worst.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::ConfigError;
use super::layer::{Found, Given, Layers};
use crate::manifest::VaultSection;

/// The vault CLI's default address.
const DEFAULT_VAULT_ADDR: &str = "https://127.0.0.1:8200";
/// Where Kubernetes mounts a pod's service-account token.
const KUBERNETES_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Vault settings: the environment first, then the manifest's `[vault]`.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Where Vault is: VAULT_ADDR, BAO_ADDR or `[vault] address`; the vault CLI's default
    /// otherwise.
    pub address: String,
    /// Whether `address` is the vault CLI's default, because neither `address` under [vault],
    /// VAULT_ADDR nor BAO_ADDR is set (errors then say so).
    pub default_address: bool,
    /// Enterprise namespace.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed the server's certificate.
    pub ca_cert: Option<String>,
    /// Accept any server certificate: `[vault] skip_verify`, VAULT_SKIP_VERIFY or
    /// BAO_SKIP_VERIFY (1, true, yes or on). For test servers only.
    pub skip_verify: bool,
    /// How envoke gets its token: a token given to it, or a login it makes itself.
    pub auth: VaultAuth,
}

/// How envoke gets its Vault token.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token the user gave envoke. envoke uses it as it is and never revokes it.
    Token(TokenSource),
    /// envoke logs in itself at `auth/MOUNT/login`, keeps that token alive while it runs and
    /// revokes it when it exits.
    Login {
        /// Where the method is enabled, without slashes: `[vault] mount` or
        /// ENVOKE_VAULT_AUTH_MOUNT; the method's name otherwise.
        mount: String,
        /// The method and the credentials it logs in with.
        method: LoginMethod,
    },
}

/// Where a user-given token is.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// VAULT_TOKEN or BAO_TOKEN; `Debug` redacts it.
    Value(SecretString),
    /// `token_file`, VAULT_TOKEN_FILE, or ~/.vault-token as `vault login` writes it. Read again
    /// whenever it changes (an agent sink or a projected file rotates it).
    File {
        /// The token file.
        path: PathBuf,
        /// Named by `token_file` or VAULT_TOKEN_FILE, so a missing file is an error about that
        /// file; false for the ~/.vault-token fallback, where it means "no token".
        explicit: bool,
    },
    /// No token anywhere.
    Missing,
}

/// An auth method envoke logs in with.
#[derive(Debug, Clone)]
pub enum LoginMethod {
    /// A role id and a secret id, as an orchestrator or a CI system hands them to a machine.
    AppRole {
        /// `[vault] role_id` or VAULT_ROLE_ID: the public half, not a secret.
        role_id: String,
        /// `secret_id_file` / VAULT_SECRET_ID_FILE, else `secret_id` / VAULT_SECRET_ID.
        secret_id: Credential,
    },
    /// A pod's service-account token, verified by Vault through the Kubernetes TokenReview API.
    Kubernetes {
        /// The Vault role to log in as: `[vault] role` or ENVOKE_VAULT_ROLE.
        role: String,
        /// `ENVOKE_VAULT_JWT_FILE` or `[vault] jwt_file`; the token Kubernetes mounts in every
        /// pod otherwise. Read
        /// at each login, since the kubelet rotates it.
        jwt_file: PathBuf,
    },
    /// A signed JWT (a projected service-account token, a CI OIDC token).
    Jwt {
        /// The Vault role to log in as: `[vault] role` or ENVOKE_VAULT_ROLE.
        role: String,
        /// `ENVOKE_VAULT_JWT_FILE` or `[vault] jwt_file` (required: a JWT has no standard
        /// place). Read at each login.
        jwt_file: PathBuf,
    },
    /// A TLS client certificate.
    Cert {
        /// The cert role to log in as (`role` or ENVOKE_VAULT_ROLE); without one, Vault tries
        /// every cert role and uses one that matches the certificate.
        role: Option<String>,
        /// PEM certificate presented in the TLS handshake: `client_cert` or VAULT_CLIENT_CERT.
        client_cert: PathBuf,
        /// PEM private key of `client_cert`: `client_key` or VAULT_CLIENT_KEY.
        client_key: PathBuf,
    },
}

impl LoginMethod {
    /// The method's name, as `auth =` takes it and as its default mount.
    pub fn name(&self) -> &'static str {
        match self {
            LoginMethod::AppRole { .. } => "approle",
            LoginMethod::Kubernetes { .. } => "kubernetes",
            LoginMethod::Jwt { .. } => "jwt",
            LoginMethod::Cert { .. } => "cert",
        }
    }
}

/// A credential given as a value or as a file to read (at each login).
#[derive(Debug, Clone)]
pub enum Credential {
    /// Given as a value (in the manifest or a variable); `Debug` redacts it.
    Value(SecretString),
    /// A file read at each login, so that a rotated credential is picked up.
    File(PathBuf),
}

/// Reads settings from `[vault]` and the environment, and names where each was found.
struct Lookup<'a> {
    section: &'a VaultSection,
    layers: &'a Layers<'a>,
    /// A missing credential (role id, secret id, JWT file, client certificate) is empty instead
    /// of an error: `envoke policy` needs the method and its mount, not the means to log in.
    credentials_optional: bool,
}

impl Lookup<'_> {
    /// The first of `variables` that is set, else `key` from `[vault]` (a difference is a
    /// warning naming both).
    fn find(
        &self,
        manifest: &Option<String>,
        key: &'static str,
        variables: &[&'static str],
    ) -> Option<Found<String>> {
        let mut order: Vec<Given<'_, String>> = variables
            .iter()
            .map(|name| Given::Environment(name))
            .collect();
        order.push(Given::Manifest("vault", key, manifest.as_deref()));
        // Text is never refused here: `checked` decides what a value may hold.
        self.layers.first_text(order)
    }

    /// Like `find`, refusing a value with a control character.
    fn checked(
        &self,
        manifest: &Option<String>,
        key: &'static str,
        variables: &[&'static str],
    ) -> Result<Option<String>, ConfigError> {
        self.find(manifest, key, variables)
            .map(|found| found.check(self.layers, without_control_characters))
            .transpose()
    }

    fn required(
        &self,
        manifest: &Option<String>,
        key: &'static str,
        variables: &[&'static str],
        method: &'static str,
    ) -> Result<String, ConfigError> {
        let found = self.checked(manifest, key, variables)?;
        if self.credentials_optional {
            return Ok(found.unwrap_or_default());
        }
        found.ok_or_else(|| ConfigError::MissingSetting {
            needed_by: format!("auth = \"{method}\""),
            setting: key,
            variables: variables.join(" or "),
        })
    }

    fn path(
        &self,
        manifest: &Option<String>,
        key: &'static str,
        variables: &[&'static str],
    ) -> Option<PathBuf> {
        self.find(manifest, key, variables)
            .map(|found| PathBuf::from(found.value))
    }
}

impl VaultSettings {
    pub(super) fn load(
        section: &VaultSection,
        layers: &Layers<'_>,
        home: Option<&Path>,
        credentials_optional: bool,
    ) -> Result<VaultSettings, ConfigError> {
        let lookup = Lookup {
            section,
            layers,
            credentials_optional,
        };
        let address = lookup.checked(&section.address, "address", &["VAULT_ADDR", "BAO_ADDR"])?;
        let default_address = address.is_none();
        let address = address.unwrap_or_else(|| DEFAULT_VAULT_ADDR.to_owned());
        let namespace = lookup.checked(
            &section.namespace,
            "namespace",
            &["VAULT_NAMESPACE", "BAO_NAMESPACE"],
        )?;
        let ca_cert = lookup
            .path(&section.ca_cert, "ca_cert", &["VAULT_CACERT", "BAO_CACERT"])
            .map(|p| p.to_string_lossy().into_owned());
        let skip_verify = lookup
            .find(
                &section.skip_verify.map(|on| on.to_string()),
                "skip_verify",
                &["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"],
            )
            .is_some_and(|found| truthy(&found.value));
        Ok(VaultSettings {
            address,
            default_address,
            namespace,
            ca_cert,
            skip_verify,
            auth: auth(&lookup, home)?,
        })
    }
}

fn auth(lookup: &Lookup<'_>, home: Option<&Path>) -> Result<VaultAuth, ConfigError> {
    let section = lookup.section;
    let method = lookup
        .checked(&section.auth, "auth", &["ENVOKE_VAULT_AUTH"])?
        .unwrap_or_else(|| "token".to_owned());
    let role = |name| lookup.required(&section.role, "role", &["ENVOKE_VAULT_ROLE"], name);
    let method = match method.as_str() {
        "token" => return token(lookup, home).map(VaultAuth::Token),
        "approle" => LoginMethod::AppRole {
            role_id: lookup.required(&section.role_id, "role_id", &["VAULT_ROLE_ID"], "approle")?,
            secret_id: secret_id(lookup)?,
        },
        "kubernetes" => LoginMethod::Kubernetes {
            role: role("kubernetes")?,
            jwt_file: lookup
                .path(&section.jwt_file, "jwt_file", &["ENVOKE_VAULT_JWT_FILE"])
                .unwrap_or_else(|| PathBuf::from(KUBERNETES_JWT_FILE)),
        },
        "jwt" => LoginMethod::Jwt {
            role: role("jwt")?,
            jwt_file: match lookup.path(&section.jwt_file, "jwt_file", &["ENVOKE_VAULT_JWT_FILE"]) {
                Some(path) => path,
                None if lookup.credentials_optional => PathBuf::new(),
                None => {
                    return Err(ConfigError::MissingSetting {
                        needed_by: "auth = \"jwt\"".to_owned(),
                        setting: "jwt_file",
                        variables: "ENVOKE_VAULT_JWT_FILE".to_owned(),
                    });
                }
            },
        },
        "cert" => cert(lookup)?,
        other => return Err(unknown_method(lookup, other)),
    };
    let mount = lookup
        .checked(&section.mount, "mount", &["ENVOKE_VAULT_AUTH_MOUNT"])?
        .map(|mount| mount.trim_matches('/').to_owned())
        .unwrap_or_else(|| method.name().to_owned());
    Ok(VaultAuth::Login { mount, method })
}

/// `auth = "cert"`: the client certificate and key, and the role when one is named.
fn cert(lookup: &Lookup<'_>) -> Result<LoginMethod, ConfigError> {
    let section = lookup.section;
    Ok(LoginMethod::Cert {
        role: lookup.checked(&section.role, "role", &["ENVOKE_VAULT_ROLE"])?,
        client_cert: required_path(
            lookup,
            &section.client_cert,
            "client_cert",
            "VAULT_CLIENT_CERT",
        )?,
        client_key: required_path(
            lookup,
            &section.client_key,
            "client_key",
            "VAULT_CLIENT_KEY",
        )?,
    })
}

/// The error for an `auth` that names no method envoke knows.
fn unknown_method(lookup: &Lookup<'_>, other: &str) -> ConfigError {
    ConfigError::BadValue {
        setting: lookup
            .find(&lookup.section.auth, "auth", &["ENVOKE_VAULT_AUTH"])
            .map_or_else(|| "auth".to_owned(), |found| found.place.name()),
        reason: format!(
            "unknown auth method `{other}` (use token, approle, kubernetes, jwt or cert)"
        ),
    }
}

/// VAULT_TOKEN (or BAO_TOKEN), then `token_file` / VAULT_TOKEN_FILE, then ~/.vault-token.
fn token(lookup: &Lookup<'_>, home: Option<&Path>) -> Result<TokenSource, ConfigError> {
    if let Some(found) = lookup.find(&None, "token", &["VAULT_TOKEN", "BAO_TOKEN"]) {
        let token = found.check(lookup.layers, without_control_characters)?;
        return Ok(TokenSource::Value(SecretString::from(token)));
    }
    if let Some(path) = lookup.path(
        &lookup.section.token_file,
        "token_file",
        &["VAULT_TOKEN_FILE"],
    ) {
        return Ok(TokenSource::File {
            path,
            explicit: true,
        });
    }
    Ok(match home {
        Some(home) => TokenSource::File {
            path: home.join(".vault-token"),
            explicit: false,
        },
        None => TokenSource::Missing,
    })
}

/// `secret_id_file` / VAULT_SECRET_ID_FILE, else `secret_id` / VAULT_SECRET_ID.
fn secret_id(lookup: &Lookup<'_>) -> Result<Credential, ConfigError> {
    let section = lookup.section;
    if let Some(path) = lookup.path(
        &section.secret_id_file,
        "secret_id_file",
        &["VAULT_SECRET_ID_FILE"],
    ) {
        return Ok(Credential::File(path));
    }
    lookup
        .required(
            &section.secret_id,
            "secret_id",
            &["VAULT_SECRET_ID"],
            "approle",
        )
        .map(|id| Credential::Value(SecretString::from(id)))
}

fn required_path(
    lookup: &Lookup<'_>,
    manifest: &Option<String>,
    key: &'static str,
    variable: &'static str,
) -> Result<PathBuf, ConfigError> {
    let found = lookup.path(manifest, key, &[variable]);
    if lookup.credentials_optional {
        return Ok(found.unwrap_or_default());
    }
    found.ok_or_else(|| ConfigError::MissingSetting {
        needed_by: "auth = \"cert\"".to_owned(),
        setting: key,
        variables: variable.to_owned(),
    })
}

/// A value that can go into an HTTP header: no control character.
fn without_control_characters(value: String) -> Result<String, String> {
    if value.chars().any(char::is_control) {
        return Err("contains a control character (a trailing newline?); remove it".to_owned());
    }
    Ok(value)
}

fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn load(manifest: &str, environment: &[(&str, &str)]) -> Result<VaultSettings, ConfigError> {
        let section: VaultSection = toml::from_str(manifest).unwrap();
        let environment: Vec<(OsString, OsString)> = environment
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let layers = Layers {
            manifest: None,
            environment: crate::config::OwnEnvironment(&environment),
        };
        VaultSettings::load(&section, &layers, None, false)
    }

    #[test]
    fn vault_names_win_over_bao_names_and_both_over_the_manifest() {
        let settings = load("", &[("BAO_ADDR", "http://b"), ("VAULT_ADDR", "http://v")]).unwrap();
        assert_eq!(settings.address, "http://v");
        let settings = load("", &[("BAO_ADDR", "http://b")]).unwrap();
        assert_eq!(settings.address, "http://b");
        let settings = load("address = \"http://m\"", &[("VAULT_ADDR", "http://v")]).unwrap();
        assert_eq!(settings.address, "http://v");
        let settings = load("address = \"http://m\"", &[]).unwrap();
        assert_eq!(settings.address, "http://m");
        assert!(!settings.default_address);
        let settings = load("skip_verify = false", &[("VAULT_SKIP_VERIFY", "1")]).unwrap();
        assert!(settings.skip_verify);
        let settings = load("", &[]).unwrap();
        assert_eq!(settings.address, DEFAULT_VAULT_ADDR);
        assert!(settings.default_address);
    }

    #[test]
    fn a_control_character_is_an_error_naming_the_setting() {
        let error = load("", &[("VAULT_TOKEN", "s.abc\n")]).unwrap_err();
        assert!(error.to_string().contains("VAULT_TOKEN"), "{error}");
        assert!(!error.to_string().contains("s.abc"), "{error}");
        let error = load("namespace = \"a\\u001b[31m\"", &[]).unwrap_err();
        assert!(
            error.to_string().contains("`namespace` in [vault]"),
            "{error}"
        );
    }

    #[test]
    fn a_jwt_file_can_come_from_the_environment() {
        let settings = load(
            "auth = \"jwt\"",
            &[
                ("ENVOKE_VAULT_ROLE", "ci"),
                ("ENVOKE_VAULT_JWT_FILE", "/run/ci/token"),
            ],
        )
        .unwrap();
        let VaultAuth::Login { method, .. } = settings.auth else {
            panic!("not a login")
        };
        assert!(matches!(method, LoginMethod::Jwt { jwt_file, .. }
            if jwt_file == Path::new("/run/ci/token")));
        let error = load("auth = \"jwt\"", &[("ENVOKE_VAULT_ROLE", "ci")]).unwrap_err();
        assert!(
            error.to_string().contains("ENVOKE_VAULT_JWT_FILE"),
            "{error}"
        );
    }

    #[test]
    fn login_methods_name_what_they_miss() {
        let error = load("auth = \"approle\"", &[("VAULT_SECRET_ID", "x")]).unwrap_err();
        assert!(error.to_string().contains("role_id"), "{error}");
        assert!(error.to_string().contains("VAULT_ROLE_ID"), "{error}");
        let settings = load(
            "auth = \"kubernetes\"\nmount = \"/k8s/\"",
            &[("ENVOKE_VAULT_ROLE", "app")],
        )
        .unwrap();
        let VaultAuth::Login { mount, method } = settings.auth else {
            panic!("not a login")
        };
        assert_eq!(mount, "k8s");
        assert!(matches!(method, LoginMethod::Kubernetes { role, jwt_file }
            if role == "app" && jwt_file == Path::new(KUBERNETES_JWT_FILE)));
        assert!(load("auth = \"ldap\"", &[]).is_err());
    }
}
