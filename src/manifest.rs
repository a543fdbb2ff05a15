//! The manifest's TOML schema (`envoke.toml`). Parsing only: [`crate::config`] validates.
//!
//! ```toml
//! [env]
//! DB_PASSWORD = "aws-sm://prod/db#password"      # a reference
//! LOG_LEVEL   = "info"                           # no scheme: a literal
//! API_TOKEN   = { ref = "vault://secret/app/api#token" }
//! HOMEPAGE    = { value = "https://example.com" }   # a literal that looks like a reference
//!
//! [aws]
//! region = "eu-west-1"
//!
//! [vault]
//! address = "https://vault.example.com:8200"
//! ```
//!
//! Unknown keys are errors, so a typo (`[valut]`, `refs =`) is reported instead of ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The whole manifest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Variables for the child, in name order.
    #[serde(default)]
    pub env: BTreeMap<String, EnvEntry>,
    /// AWS connection settings.
    #[serde(default)]
    pub aws: AwsSection,
    /// Vault connection settings.
    #[serde(default)]
    pub vault: VaultSection,
    /// How the child is stopped.
    #[serde(default)]
    pub process: ProcessSection,
    /// Rotation watching.
    #[serde(default)]
    pub watch: WatchSection,
    /// `[profiles.NAME.env|aws|vault]`: what `--profile NAME` changes.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Set by [`Manifest::with_profile`], never read from the file: the profile applied and the
    /// `env` names it defined itself (the others are inherited from `[env]`).
    #[serde(skip)]
    pub applied: Option<Applied>,
}

/// The profile a manifest was made with.
#[derive(Debug, Default)]
pub struct Applied {
    /// The profile's name.
    pub name: String,
    /// The names the profile's `env` defines; the manifest's other `env` entries come from
    /// `[env]`.
    pub defined: BTreeSet<String>,
}

/// `[profiles.NAME]`: variables that override or add to `[env]`, and settings that override
/// `[aws]` and `[vault]` key by key ("staging" against "production", in one manifest).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `false`: the profile's `env` replaces `[env]` entirely, so that a profile can be built
    /// that never names a secret of `[env]` (a dev profile that never reads production's).
    #[serde(default = "inherits")]
    pub inherit: bool,
    /// Entries that replace `[env]`'s of the same name, or add to them.
    #[serde(default)]
    pub env: BTreeMap<String, EnvEntry>,
    /// Keys that replace `[aws]`'s; the keys it does not set are kept.
    #[serde(default)]
    pub aws: AwsSection,
    /// Keys that replace `[vault]`'s; the keys it does not set are kept.
    #[serde(default)]
    pub vault: VaultSection,
}

/// A profile inherits `[env]` unless it says `inherit = false`.
fn inherits() -> bool {
    true
}

/// `[watch]`: defaults for `--watch`, `--on-change`, `--settle`, `--sweep`, `--splay`,
/// `--recheck-signal` and `--recheck-on`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    /// Poll interval, e.g. `"5m"`; setting it turns watching on.
    pub interval: Option<String>,
    /// `restart`, `signal:SIGNAME`, `exit` or `none`.
    pub on_change: Option<String>,
    /// Settle window, e.g. `"2s"`.
    pub settle: Option<String>,
    /// Sweep period for AWS secrets without a rotation due, e.g. `"1h"`; the interval otherwise.
    pub sweep: Option<String>,
    /// Longest random delay before a restart, e.g. `"30s"`.
    pub splay: Option<String>,
    /// e.g. `"USR2"`.
    pub recheck_signal: Option<String>,
    /// A reference to one secret whose change makes envoke check every secret at once.
    pub recheck_on: Option<String>,
}

/// `[process]`: defaults for `--stop-signal`, `--stop-timeout` and `--signal-map`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSection {
    /// e.g. `"TERM"`.
    pub stop_signal: Option<String>,
    /// e.g. `"30s"`.
    pub stop_timeout: Option<String>,
    /// e.g. `["TERM:QUIT"]`.
    #[serde(default)]
    pub signal_map: Vec<String>,
}

/// One `[env]` entry.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EnvEntry {
    /// `NAME = "..."`: a reference when it has a scheme, else a literal.
    Short(String),
    /// `NAME = { ref = "..." }` or `NAME = { value = "..." }`.
    Long(LongEntry),
}

/// The long form of an `[env]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongEntry {
    /// `ref = "..."`: the secret's reference, parsed by [`crate::config`].
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// A literal, taken as it is even when it looks like a reference.
    pub value: Option<String>,
    /// A value composed of other variables: `"postgresql://${DB_USER}:${DB_PASSWORD:url}@db/app"`.
    pub template: Option<String>,
    /// With `ref`: every top-level key of the JSON secret becomes a variable of its own.
    #[serde(default)]
    pub expand: bool,
    /// With `expand`: what the variables' names start with (default: this entry's name and `_`).
    pub prefix: Option<String>,
    /// With `expand`: only these keys.
    pub keys: Option<Vec<String>>,
    /// Give the variable the path of a private file holding the value, instead of the value.
    #[serde(default)]
    pub file: bool,
}

/// `[aws]`: overrides what aws-config's default chain finds in the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// AWS region.
    pub region: Option<String>,
    /// Endpoint URL (a local server, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Shared config profile name.
    pub profile: Option<String>,
    /// A role to assume (STS AssumeRole) with the default chain's credentials before anything else.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// The role session name (default `envoke`).
    pub session_name: Option<String>,
}

/// `[vault]`: where Vault is and how envoke logs in (docs/authentication.md). Each key wins over
/// its environment variable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// Server address, e.g. `https://vault.example.com:8200`.
    pub address: Option<String>,
    /// Enterprise or OpenBao namespace, sent as `X-Vault-Namespace` with every request.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed the server's certificate.
    pub ca_cert: Option<String>,
    /// Skip TLS verification (never in production).
    pub skip_verify: Option<bool>,
    /// `token`, `approle`, `kubernetes`, `jwt` or `cert`.
    pub auth: Option<String>,
    /// The auth method's mount path (default: the method's name).
    pub mount: Option<String>,
    /// The Vault role to log in as: required by `kubernetes` and `jwt`, optional for `cert`.
    pub role: Option<String>,
    /// For `token`: a file holding the token (an agent's sink), read again when it changes.
    pub token_file: Option<String>,
    /// For `approle`: the role id, the half of the credential that is not secret.
    pub role_id: Option<String>,
    /// For `approle`: the secret id itself; `secret_id_file` wins when both are set.
    pub secret_id: Option<String>,
    /// For `approle`: a file holding the secret id, read at each login.
    pub secret_id_file: Option<String>,
    /// For `kubernetes` (default: the pod's service-account token) and `jwt` (required): the
    /// file holding the JWT, read at each login.
    pub jwt_file: Option<String>,
    /// PEM client certificate and key for `cert`.
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`, for `cert`.
    pub client_key: Option<String>,
}

/// A manifest that could not be parsed; the message has the line and column.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(String);

impl Manifest {
    /// Parses manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError(describe(&e, text)))
    }

    /// The manifest as profile `name` makes it; `Err` with the names there are when there is no
    /// such profile.
    pub fn with_profile(mut self, name: &str) -> Result<Manifest, Vec<String>> {
        let Some(profile) = self.profiles.remove(name) else {
            return Err(self.profiles.into_keys().collect());
        };
        self.applied = Some(Applied {
            name: name.to_owned(),
            defined: profile.env.keys().cloned().collect(),
        });
        if !profile.inherit {
            self.env.clear();
        }
        self.env.extend(profile.env);
        self.aws.overlay(profile.aws);
        self.vault.overlay(profile.vault);
        Ok(self)
    }
}

/// `over`'s value where it has one.
fn set<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

impl AwsSection {
    fn overlay(&mut self, over: AwsSection) {
        // Destructured whole: a key added to the section must be added here too.
        let AwsSection {
            region,
            endpoint,
            profile,
            role_arn,
            external_id,
            session_name,
        } = over;
        set(&mut self.region, region);
        set(&mut self.endpoint, endpoint);
        set(&mut self.profile, profile);
        set(&mut self.role_arn, role_arn);
        set(&mut self.external_id, external_id);
        set(&mut self.session_name, session_name);
    }
}

impl VaultSection {
    fn overlay(&mut self, over: VaultSection) {
        let VaultSection {
            address,
            namespace,
            ca_cert,
            skip_verify,
            auth,
            mount,
            role,
            token_file,
            role_id,
            secret_id,
            secret_id_file,
            jwt_file,
            client_cert,
            client_key,
        } = over;
        set(&mut self.address, address);
        set(&mut self.namespace, namespace);
        set(&mut self.ca_cert, ca_cert);
        set(&mut self.skip_verify, skip_verify);
        set(&mut self.auth, auth);
        set(&mut self.mount, mount);
        set(&mut self.role, role);
        set(&mut self.token_file, token_file);
        set(&mut self.role_id, role_id);
        set(&mut self.secret_id, secret_id);
        set(&mut self.secret_id_file, secret_id_file);
        set(&mut self.jwt_file, jwt_file);
        set(&mut self.client_cert, client_cert);
        set(&mut self.client_key, client_key);
    }
}

/// `toml`'s message, with the line and column spelled out on the first line, and the key whose
/// value is wrong when the line has one (`[watch] sweep`; never the value itself).
fn describe(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start.min(text.len())).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            match key_at(text, line) {
                Some(key) => format!("line {line}, column {column} ({key}): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message.to_owned(),
    }
}

/// `[table] key` for a `key = value` on line `line` (1-based), with the table header above it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (key, _) = lines.get(line.checked_sub(1)?)?.split_once('=')?;
    let key = key.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.\"".contains(c);
    if key.is_empty() || key.len() > 100 || !key.chars().all(plain) {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .filter(|l| l.len() <= 100 && l.chars().all(|c| plain(c) || "[]".contains(c)));
    Some(match table {
        Some(table) => format!("`{table} {key}`"),
        None => format!("`{key}`"),
    })
}

/// POSIX portable environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_entries() {
        let m = Manifest::parse(
            r#"
            [env]
            A = "aws-sm://x"
            B = { ref = "vault://secret/x#y" }
            C = { value = "vault://not/a/ref" }
            "#,
        )
        .unwrap();
        assert!(matches!(&m.env["A"], EnvEntry::Short(s) if s == "aws-sm://x"));
        assert!(matches!(&m.env["B"], EnvEntry::Long(l) if l.reference.is_some()));
        assert!(matches!(&m.env["C"], EnvEntry::Long(l) if l.value.is_some()));
    }

    #[test]
    fn errors_have_line_and_column() {
        let err = Manifest::parse("[env]\nA = \"x\"\nB = = 1\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3, column 5"), "{err}");
        let err = Manifest::parse("[valut]\naddress = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(err.to_string().contains("valut"), "{err}");
        let err = Manifest::parse("[watch]\ninterval = \"1s\"\nsweep = 5\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 3, column 9 (`[watch] sweep`): "),
            "{err}"
        );
    }
}
