//! envoke's own environment: how settings read it, and which of its variables are envoke's own
//! (credentials and settings the child does not inherit).

use std::ffi::OsString;

/// envoke's own environment, as the settings read it: a variable that is unset, empty or not
/// UTF-8 is absent.
pub struct OwnEnvironment<'a>(pub &'a [(OsString, OsString)]);

impl OwnEnvironment<'_> {
    /// The variable's value, or `None` when it is unset, empty or not UTF-8: an empty
    /// `VAULT_ADDR=` means "not set", as it does to the vault CLI.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// envoke's own credentials and settings, which the child does not inherit unless `--pass-env`
/// names them: a child that needs Vault gets a token of its own, not envoke's. Every `ENVOKE_*`
/// variable is envoke's too. AWS credentials pass through: the child may need them as well.
pub const ENVOKE_OWN: &[&str] = &[
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "VAULT_TOKEN_FILE",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "VAULT_SECRET_ID_FILE",
    "VAULT_CLIENT_KEY",
];

/// Whether `name` is one of envoke's own variables: its credentials ([`ENVOKE_OWN`]) or a
/// setting (`ENVOKE_*`).
pub fn is_envokes_own(name: &str) -> bool {
    ENVOKE_OWN.contains(&name) || name.starts_with("ENVOKE_")
}

/// The environment without envoke's own variables, but those `pass` names.
pub(super) fn without_envokes_own(
    environment: Vec<(OsString, OsString)>,
    pass: &[String],
) -> Vec<(OsString, OsString)> {
    environment
        .into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return true;
            };
            !is_envokes_own(name) || pass.iter().any(|p| p == name)
        })
        .collect()
}
