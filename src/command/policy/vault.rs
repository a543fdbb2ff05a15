//! The Vault/OpenBao ACL policy for the `vault://` references.
//!
//! # Which engine serves a path
//! The API path of `vault://secret/app/db` depends on the engine mounted there (KV v2:
//! `secret/data/app/db`; KV v1 and other engines: the path itself), and only the server knows
//! it. envoke asks it the way a read does (`sys/internal/ui/mounts/PATH`) when it can reach the
//! server with the configured credentials; a path it could not ask about (no token, unreachable,
//! denied) is *assumed* to be KV v2 mounted at its first segment — the mount every dev server and
//! most installations have — and its rule says so in a comment, with the rule it would be
//! otherwise. Nothing is read; a login made only to ask is revoked at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{Policy, PolicyError, refuse_problems, refuse_widening};
use crate::config::Config;
use secrecy::SecretString;

use crate::config::vault::{TokenSource, VaultAuth, VaultSettings};
use crate::provider::FetchError;
use crate::provider::vault::{Engine, VaultProvider};
use crate::reference::Reference;

/// In Vault policy paths, `*` and `+` are wildcards, and quotes, braces, brackets and backslashes
/// are HCL's own.
const HCL_SPECIAL: &str = "*+\"{}[]\\";

/// What envoke knows of the engine behind a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// The server said.
    Engine(Engine),
    /// The server could not be asked (why): KV v2 at the first segment is assumed.
    Assumed(String),
}

/// One `path` block: its capabilities and why each is granted.
#[derive(Debug, Default)]
struct Rule {
    capabilities: BTreeSet<&'static str>,
    why: BTreeSet<String>,
}

/// The rules of a Vault policy, by path.
#[derive(Debug, Default)]
struct Rules(BTreeMap<String, Rule>);

impl Rules {
    fn grant(&mut self, path: String, capability: &'static str, why: String) {
        let rule = self.0.entry(path).or_default();
        rule.capabilities.insert(capability);
        rule.why.insert(why);
    }
}

/// The Vault policy for the `vault://` references of `config`: the engines are asked from the
/// server when it can be reached (see the module docs).
pub async fn policy(config: &Config, watch: bool) -> Result<Policy, PolicyError> {
    refuse_problems(config)?;
    for (_, reference) in config.references() {
        if let Reference::Vault(_) = reference {
            refuse_widening(reference, HCL_SPECIAL)?;
        }
    }
    // With watching, the --recheck-on secret too: its version is watched like the others'.
    let recheck_on = config.watch.as_ref().and_then(|w| w.recheck_on.as_ref());
    if let Some(reference @ Reference::Vault(_)) = recheck_on.filter(|_| watch) {
        refuse_widening(reference, HCL_SPECIAL)?;
    }
    let references: BTreeSet<(String, Option<u64>)> = config
        .references()
        .map(|(_, reference)| reference)
        .chain(recheck_on.filter(|_| watch))
        .filter_map(|reference| match reference {
            Reference::Vault(r) => Some((r.path.clone(), r.version)),
            Reference::Aws(_) => None,
        })
        .collect();
    let Some(settings) = config.vault.as_ref().filter(|_| !references.is_empty()) else {
        return Err(PolicyError::NothingToGrant("Vault"));
    };
    let paths: BTreeSet<&str> = references.iter().map(|(p, _)| p.as_str()).collect();
    let engines = engines(settings, &paths).await;
    Ok(vault_policy(&settings.auth, &references, &engines, watch))
}

/// The settings to ask the server with. With a login method (`ENVOKE_VAULT_AUTH=kubernetes`,
/// as a Deployment sets it), the policy is the login's — its rules include the login's upkeep —
/// but the login itself only works where its credentials are (in the pod). An operator who runs
/// `policy` at a desk with a Vault token in the shell (VAULT_TOKEN, BAO_TOKEN) asks the server
/// with that token instead; the login method still decides the rules.
fn asking_settings(settings: &VaultSettings) -> VaultSettings {
    let token = ["VAULT_TOKEN", "BAO_TOKEN"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|token| !token.is_empty() && !token.chars().any(char::is_control));
    match (&settings.auth, token) {
        (VaultAuth::Login { .. }, Some(token)) => VaultSettings {
            auth: VaultAuth::Token(TokenSource::Value(SecretString::from(token))),
            ..settings.clone()
        },
        _ => settings.clone(),
    }
}

/// Asks the server which engine serves each path; a path it cannot answer for is assumed.
async fn engines(settings: &VaultSettings, paths: &BTreeSet<&str>) -> BTreeMap<String, Known> {
    let assumed = |error: &FetchError| Known::Assumed(format!("the server was not asked: {error}"));
    let asking = asking_settings(settings);
    let provider = match VaultProvider::connect(&asking).await {
        Ok(provider) => provider,
        Err(error) => {
            return paths
                .iter()
                .map(|p| ((*p).to_owned(), assumed(&error)))
                .collect();
        }
    };
    let mut engines = BTreeMap::new();
    for path in paths {
        let known = match provider.engine(path).await {
            Ok(engine) => Known::Engine(engine),
            Err(error) => assumed(&error),
        };
        engines.insert((*path).to_owned(), known);
    }
    provider.logout().await;
    engines
}

/// The HCL for `references` (path, pinned version) served by `engines`.
fn vault_policy(
    auth: &VaultAuth,
    references: &BTreeSet<(String, Option<u64>)>,
    engines: &BTreeMap<String, Known>,
    watch: bool,
) -> Policy {
    let mut rules = Rules::default();
    let mut assumed = BTreeSet::new();
    for (path, version) in references {
        let known = engines
            .get(path)
            .cloned()
            .unwrap_or_else(|| Known::Assumed("not asked".to_owned()));
        if let Known::Assumed(reason) = &known {
            assumed.insert(reason.clone());
        }
        rules.grant_reference(path, *version, known, watch);
    }
    let mut text = format!(
        "# envoke policy --vault{}\n",
        if watch { " --watch" } else { "" }
    );
    text.push_str(
        "# sys/internal/ui/mounts/PATH tells envoke which engine serves PATH; Vault answers it for\n\
         # any token that may use something under the mount, so those rules only make it explicit.\n",
    );
    let mut notes = Vec::new();
    if !assumed.is_empty() {
        text.push_str(
            "# Rules marked ASSUMED guess the engine: envoke could not ask the server.\n",
        );
        for reason in &assumed {
            notes.push(format!(
                "the engines were assumed (KV v2 at the first segment), {reason}; run envoke \
                 policy where it reaches Vault with a token to ask the server"
            ));
        }
    }
    if let VaultAuth::Login { mount, method } = auth {
        let _ = writeln!(
            text,
            "# Logging in at auth/{mount}/login ({}) needs no rule: Vault checks no policy on a\n\
             # login path. The token it gives needs the rules below, as this policy or the default one.",
            method.name()
        );
        rules.grant_login_upkeep();
    }
    rules.write(&mut text);
    Policy { text, notes }
}

impl Rules {
    /// The rules one reference needs (`path`, pinned to `version` or not), served by `known`.
    fn grant_reference(&mut self, path: &str, version: Option<u64>, known: Known, watch: bool) {
        let shown = match version {
            Some(v) => format!("vault://{path}?version={v}"),
            None => format!("vault://{path}"),
        };
        self.grant(
            format!("sys/internal/ui/mounts/{path}"),
            "read",
            format!("which engine serves {path}"),
        );
        let (mount, why) = match known {
            Known::Engine(Engine::KvV2 { mount }) => (mount.clone(), format!("KV v2 at {mount}")),
            Known::Assumed(_) => {
                let mount = format!("{}/", path.split('/').next().unwrap_or_default());
                let why = format!(
                    "ASSUMED KV v2 at {mount}; on KV v1 or another engine the rule is path \
                     \"{path}\""
                );
                (mount, why)
            }
            Known::Engine(Engine::KvV1) => {
                let mut why = "KV v1".to_owned();
                if watch {
                    why.push_str(", read again to watch it");
                }
                self.grant(path.to_owned(), "read", format!("{shown}: {why}"));
                return;
            }
            Known::Engine(Engine::Other) => {
                self.grant_leased(path, &shown, watch);
                return;
            }
        };
        let rest = path.strip_prefix(mount.as_str()).unwrap_or(path);
        self.grant(
            format!("{mount}data/{rest}"),
            "read",
            format!("{shown}: {why}"),
        );
        if watch && version.is_none() {
            self.grant(
                format!("{mount}metadata/{rest}"),
                "read",
                format!("the current version of {path}, to watch it"),
            );
        }
    }

    /// A path of another engine than KV: read, and its leases revoked (and renewed, watching).
    fn grant_leased(&mut self, path: &str, shown: &str, watch: bool) {
        self.grant(path.to_owned(), "read", format!("{shown}: not KV (leased)"));
        self.grant(
            "sys/leases/revoke".to_owned(),
            "update",
            format!("revoke the leases of {path} when envoke exits"),
        );
        if watch {
            self.grant(
                "sys/leases/renew".to_owned(),
                "update",
                format!("renew the leases of {path} while watching"),
            );
        }
    }

    /// What envoke's own login needs: renewing and revoking itself.
    fn grant_login_upkeep(&mut self) {
        self.grant(
            "auth/token/renew-self".to_owned(),
            "update",
            "keep envoke's own login alive".to_owned(),
        );
        self.grant(
            "auth/token/revoke-self".to_owned(),
            "update",
            "revoke envoke's own login when it exits".to_owned(),
        );
    }

    /// The rules as HCL `path` blocks, each with why it is granted.
    fn write(&self, text: &mut String) {
        for (path, rule) in &self.0 {
            let _ = writeln!(text, "\npath \"{path}\" {{");
            for why in &rule.why {
                let _ = writeln!(text, "  # {why}");
            }
            let capabilities: Vec<String> = rule
                .capabilities
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect();
            let _ = writeln!(text, "  capabilities = [{}]", capabilities.join(", "));
            text.push_str("}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn references(list: &[(&str, Option<u64>)]) -> BTreeSet<(String, Option<u64>)> {
        list.iter().map(|(p, v)| ((*p).to_owned(), *v)).collect()
    }

    fn token() -> VaultAuth {
        VaultAuth::Token(crate::config::vault::TokenSource::Missing)
    }

    #[test]
    fn kv2_paths_as_the_api_sees_them() {
        let refs = references(&[("secret/app/db", None), ("secret/app/db", Some(3))]);
        let engines = BTreeMap::from([(
            "secret/app/db".to_owned(),
            Known::Engine(Engine::KvV2 {
                mount: "secret/".to_owned(),
            }),
        )]);
        let plain = vault_policy(&token(), &refs, &engines, false).text;
        assert!(plain.contains("path \"secret/data/app/db\" {"), "{plain}");
        assert_eq!(plain.matches("path \"secret/data/app/db\"").count(), 1);
        assert!(!plain.contains("metadata"), "{plain}");
        let watched = vault_policy(&token(), &refs, &engines, true).text;
        assert!(
            watched.contains("path \"secret/metadata/app/db\""),
            "{watched}"
        );
        assert!(!watched.contains("ASSUMED"), "{watched}");
    }

    #[test]
    fn an_unknown_engine_is_assumed_and_says_so() {
        let refs = references(&[("team/app", None)]);
        let engines = BTreeMap::from([(
            "team/app".to_owned(),
            Known::Assumed("the server was not asked: x".to_owned()),
        )]);
        let policy = vault_policy(&token(), &refs, &engines, false);
        assert!(
            policy.text.contains("path \"team/data/app\""),
            "{}",
            policy.text
        );
        assert!(
            policy.text.contains("ASSUMED KV v2 at team/"),
            "{}",
            policy.text
        );
        assert_eq!(policy.notes.len(), 1);
    }

    #[test]
    fn leased_secrets_need_lease_updates() {
        let refs = references(&[("database/creds/app", None)]);
        let engines = BTreeMap::from([(
            "database/creds/app".to_owned(),
            Known::Engine(Engine::Other),
        )]);
        let plain = vault_policy(&token(), &refs, &engines, false).text;
        assert!(plain.contains("path \"sys/leases/revoke\""), "{plain}");
        assert!(!plain.contains("sys/leases/renew"), "{plain}");
        let watched = vault_policy(&token(), &refs, &engines, true).text;
        assert!(watched.contains("path \"sys/leases/renew\""), "{watched}");
    }
}
