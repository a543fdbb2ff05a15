//! `envoke policy`: the least-privilege policy a manifest needs, as an AWS IAM policy document
//! (JSON, [`aws`]) or a Vault/OpenBao ACL policy (HCL, [`vault`]). It grants what envoke will ask
//! for, on exactly the secrets the manifest references, named the way each backend's authorizer
//! sees them; what a policy cannot express goes to stderr as notes. Output is sorted, each
//! resource or path once, so that the same manifest always prints the same policy.

mod aws;
mod vault;

use crate::cli::PolicyArgs;
use crate::config::watch::DEFAULT_INTERVAL;
use crate::config::{Config, Flags, Purpose, VariableProblem};
use crate::error::{Error, Exit};
use crate::reference::Reference;

/// `envoke policy`: the policy on stdout, its notes on stderr.
pub async fn policy(args: PolicyArgs) -> Result<Exit, Error> {
    // `--watch` here stands for any interval: the policy is the same for every one.
    let flags = Flags {
        watch: args.watch.then_some(DEFAULT_INTERVAL),
        recheck_on: args.recheck_on.clone(),
        ..args.manifest.flags()
    };
    let config = super::load_config(&flags, Purpose::Policy)?;
    let watch = config.watch.is_some();
    let policy = if args.aws {
        aws::policy(&config, watch)?
    } else {
        vault::policy(&config, watch).await?
    };
    for note in &policy.notes {
        eprintln!("# {note}");
    }
    print!("{}", policy.text);
    Ok(Exit::Success)
}

/// A policy and the notes that go with it.
#[derive(Debug)]
pub struct Policy {
    /// The policy document, for stdout.
    pub text: String,
    /// What the document cannot say (one line each), for stderr.
    pub notes: Vec<String>,
}

/// Why no policy can be printed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Variables that cannot be used: what they would need is unknown, so no policy is printed.
    #[error("{}", Invalid(.0))]
    Variables(Vec<VariableProblem>),
    /// No reference to the backend asked for (`AWS` or `Vault`).
    #[error("the manifest references no {0} secret; there is nothing to grant")]
    NothingToGrant(&'static str),
    /// A reference whose text would widen the policy (a wildcard, a quote that ends the rule).
    #[error(
        "{0} has a character that means more in a policy than in a name ({1}); no policy printed"
    )]
    Widening(String, &'static str),
}

/// Characters that a policy reads as syntax or as a wildcard: a reference holding one would grant
/// more than the secret it names.
fn refuse_widening(reference: &Reference, forbidden: &'static str) -> Result<(), PolicyError> {
    let text = match reference {
        Reference::Aws(r) => &r.secret_id,
        Reference::Vault(r) => &r.path,
    };
    if text.contains(|c| forbidden.contains(c)) {
        return Err(PolicyError::Widening(
            crate::sanitize::escaped(&reference.to_string()),
            forbidden,
        ));
    }
    Ok(())
}

struct Invalid<'a>(&'a [VariableProblem]);

impl std::fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} invalid variable{}; no policy printed",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Refuses a configuration with invalid variables: their secrets are unknown.
fn refuse_problems(config: &Config) -> Result<(), PolicyError> {
    if config.problems.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Variables(config.problems.clone()))
    }
}
