//! The reference grammar: parsing and display of `aws-sm://` and `vault://` references.
//!
//! No I/O happens here. A [`Reference`] says *where* a value lives; the providers fetch it.
//! Parsing is total: any string either parses or yields a [`ReferenceError`] that says what is
//! wrong, never a panic (a property test holds this). `Display` prints the canonical form, which
//! parses back to the same reference.
//!
//! ```text
//! aws-sm://ID[?PARAM[&PARAM]][#KEY|#/json/pointer]
//!     PARAM: region=REGION, and one of version-stage=STAGE, version-id=VID
//! vault://MOUNT/PATH[?version=N][#KEY|#/json/pointer]
//! arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[#KEY]   (environment references only)
//! ```

use std::fmt;

/// The scheme of AWS Secrets Manager references.
pub const AWS_SCHEME: &str = "aws-sm";
/// The scheme of Vault / OpenBao references.
pub const VAULT_SCHEME: &str = "vault";

/// Where a secret value lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A secret in AWS Secrets Manager.
    Aws(AwsRef),
    /// A secret in Vault or OpenBao.
    Vault(VaultRef),
}

/// `aws-sm://ID[?PARAM[&PARAM]][#KEY]` with `region=REGION` and one of `version-stage=STAGE`
/// and `version-id=VID`, in any order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AwsRef {
    /// A secret name or a full ARN.
    pub secret_id: String,
    /// Which version of the secret.
    pub version: AwsVersion,
    /// `?region=REGION`: the secret lives in this region, not the configured one.
    pub region: Option<String>,
    /// Which part of a JSON secret; `None` means the whole SecretString.
    pub key: Option<KeyPath>,
}

/// The version selector of an AWS reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AwsVersion {
    /// No selector: the version labelled `AWSCURRENT`.
    Current,
    /// `?version-stage=STAGE`.
    Stage(String),
    /// `?version-id=VID`: a pinned version that never changes.
    Id(String),
}

/// `vault://MOUNT/PATH[?version=N][#KEY]`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// The path as `vault kv get` or `vault read` takes it: mount and path, without `data/`,
    /// without leading or trailing slashes.
    pub path: String,
    /// A KV v2 version pin.
    pub version: Option<u64>,
    /// Which field of the secret's data; `None` means the whole data map as JSON.
    pub key: Option<KeyPath>,
}

/// A selector into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPath {
    /// `#KEY`: a top-level key of a JSON object.
    Key(String),
    /// `#/a/b`: an RFC 6901 JSON pointer.
    Pointer(String),
}

/// Why a string is not a valid reference. Messages never contain secret values (references
/// hold none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// A `scheme://` that envoke does not know.
    #[error(
        "unknown scheme `{0}://` (envoke knows aws-sm:// and vault://; to pass a literal that looks like a URL write NAME = {{ value = \"...\" }})"
    )]
    UnknownScheme(String),
    /// A control character anywhere (it would reach logs and terminals raw).
    #[error("contains a control character")]
    ControlCharacter,
    /// `aws-sm://` with nothing after it.
    #[error("empty secret id after aws-sm://")]
    EmptySecretId,
    /// A malformed secret id.
    #[error("malformed secret id: {0}")]
    BadSecretId(&'static str),
    /// A malformed Vault path.
    #[error("malformed path `{path}`: {why}")]
    BadPath {
        /// The path as written, between `vault://` and any `?` or `#`.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A query parameter the scheme does not take.
    #[error("unknown parameter `{0}` (expected {1})")]
    UnknownParameter(String, &'static str),
    /// A version selector that is not valid.
    #[error("bad version: {0}")]
    BadVersion(String),
    /// A `region=` parameter that is not valid.
    #[error("bad region: {0}")]
    BadRegion(String),
    /// `#` with nothing after it.
    #[error("empty key after `#`")]
    EmptyKey,
    /// An invalid JSON pointer.
    #[error("bad JSON pointer `{0}`: `~` must be followed by 0 or 1")]
    BadPointer(String),
}

impl Reference {
    /// Parses a reference written in the manifest. Every `scheme://` string is taken for a
    /// reference, so a typo in a scheme fails closed instead of passing through as a literal.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.chars().any(char::is_control) {
            return Err(ReferenceError::ControlCharacter);
        }
        match split_scheme(text) {
            Some((AWS_SCHEME, rest)) => parse_aws(rest).map(Reference::Aws),
            Some((VAULT_SCHEME, rest)) => parse_vault(rest).map(Reference::Vault),
            Some((scheme, _)) => Err(ReferenceError::UnknownScheme(scheme.to_owned())),
            None => Err(ReferenceError::UnknownScheme(String::new())),
        }
    }

    /// Whether a manifest string is meant as a reference (it has a `scheme://`), as opposed to a
    /// literal value.
    pub fn looks_like_reference(text: &str) -> bool {
        split_scheme(text).is_some()
    }

    /// Parses a value found in envoke's own environment. Only envoke's schemes and bare Secrets
    /// Manager ARNs are references there; anything else (`https://proxy`, `postgres://...`) is an
    /// ordinary inherited value and yields `None`.
    pub fn parse_environment_value(text: &str) -> Option<Result<Reference, ReferenceError>> {
        match split_scheme(text) {
            Some((AWS_SCHEME | VAULT_SCHEME, _)) => Some(Reference::parse(text)),
            Some(_) => None,
            None if is_secrets_manager_arn(text) && text.chars().any(char::is_control) => {
                Some(Err(ReferenceError::ControlCharacter))
            }
            None if is_secrets_manager_arn(text) => Some(parse_aws(text).map(Reference::Aws)),
            None => None,
        }
    }

    /// The provider that serves this reference, as reported by `envoke check`.
    pub fn provider(&self) -> &'static str {
        match self {
            Reference::Aws(_) => "aws",
            Reference::Vault(_) => "vault",
        }
    }

    /// The same reference with another key.
    pub fn with_key(&self, key: KeyPath) -> Reference {
        let mut reference = self.clone();
        match &mut reference {
            Reference::Aws(r) => r.key = Some(key),
            Reference::Vault(r) => r.key = Some(key),
        }
        reference
    }

    /// Which part of the fetched document is the value; `None` means all of it.
    pub fn key(&self) -> Option<&KeyPath> {
        match self {
            Reference::Aws(r) => r.key.as_ref(),
            Reference::Vault(r) => r.key.as_ref(),
        }
    }
}

/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`
fn is_secrets_manager_arn(text: &str) -> bool {
    let mut parts = text.splitn(7, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some("secretsmanager")
        && parts.next().is_some_and(|r| !r.is_empty())
        && parts.next().is_some_and(|a| !a.is_empty())
        && parts.next() == Some("secret")
        && parts.next().is_some_and(|n| !n.is_empty())
}

/// Splits `scheme://rest` where scheme follows RFC 3986 (`ALPHA *( ALPHA / DIGIT / + / - / . )`).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Splits `body?query#fragment` into its parts.
pub(crate) fn split_parts(text: &str) -> (&str, Option<&str>, Option<&str>) {
    let (before_key, key) = match text.split_once('#') {
        Some((b, k)) => (b, Some(k)),
        None => (text, None),
    };
    let (body, query) = match before_key.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_key, None),
    };
    (body, query, key)
}

fn parse_key(key: Option<&str>) -> Result<Option<KeyPath>, ReferenceError> {
    let Some(key) = key else { return Ok(None) };
    if key.is_empty() {
        return Err(ReferenceError::EmptyKey);
    }
    if key.starts_with('/') {
        let mut tilde = key.split('~').skip(1);
        if tilde.any(|after| !(after.starts_with('0') || after.starts_with('1'))) {
            return Err(ReferenceError::BadPointer(key.to_owned()));
        }
        return Ok(Some(KeyPath::Pointer(key.to_owned())));
    }
    Ok(Some(KeyPath::Key(key.to_owned())))
}

fn parse_aws(rest: &str) -> Result<AwsRef, ReferenceError> {
    let (id, query, key) = split_parts(rest);
    if id.is_empty() {
        return Err(ReferenceError::EmptySecretId);
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReferenceError::BadSecretId(
            "whitespace or control characters",
        ));
    }
    if id.starts_with("arn:") && !is_secrets_manager_arn(id) {
        return Err(ReferenceError::BadSecretId(
            "an ARN must look like arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
        ));
    }
    let (version, region) = match query {
        None => (AwsVersion::Current, None),
        Some(query) => parse_aws_query(query)?,
    };
    if let (Some(region), Some(arn_region)) = (&region, arn_region(id))
        && region != arn_region
    {
        return Err(ReferenceError::BadRegion(format!(
            "`{region}` is not the region of the ARN (`{arn_region}`)"
        )));
    }
    Ok(AwsRef {
        secret_id: id.to_owned(),
        version,
        region,
        key: parse_key(key)?,
    })
}

/// `region=R`, `version-stage=S`, `version-id=V`, joined by `&`: each at most once, and only one
/// of the two version selectors.
fn parse_aws_query(query: &str) -> Result<(AwsVersion, Option<String>), ReferenceError> {
    const EXPECTED: &str = "region=REGION, version-stage=STAGE or version-id=ID";
    let mut version = AwsVersion::Current;
    let mut region = None;
    for parameter in query.split('&') {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        match name {
            "region" if value.is_empty() => {
                return Err(ReferenceError::BadRegion(
                    "`region` needs a value".to_owned(),
                ));
            }
            "version-stage" | "version-id" if value.is_empty() => {
                return Err(ReferenceError::BadVersion(format!(
                    "`{name}` needs a value"
                )));
            }
            "region" if region.is_some() => {
                return Err(ReferenceError::BadRegion("given twice".to_owned()));
            }
            "region" if !is_region(value) => {
                return Err(ReferenceError::BadRegion(format!(
                    "`{value}` is not a region name (like eu-west-1)"
                )));
            }
            "region" => region = Some(value.to_owned()),
            "version-stage" | "version-id" if version != AwsVersion::Current => {
                return Err(ReferenceError::BadVersion(
                    "give only one of version-stage and version-id".to_owned(),
                ));
            }
            "version-stage" | "version-id" if value.contains(['=', '?']) => {
                return Err(ReferenceError::BadVersion(format!(
                    "`{name}` has `=` or `?` in its value"
                )));
            }
            "version-stage" => version = AwsVersion::Stage(value.to_owned()),
            "version-id" => version = AwsVersion::Id(value.to_owned()),
            other => {
                return Err(ReferenceError::UnknownParameter(other.to_owned(), EXPECTED));
            }
        }
    }
    Ok((version, region))
}

/// A region name as AWS spells them (`us-east-1`, `us-gov-west-1`): a DNS label of lower-case
/// letters, digits and inner hyphens. It becomes part of a host name and a signing scope.
fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The region field of a Secrets Manager ARN.
fn arn_region(id: &str) -> Option<&str> {
    if !is_secrets_manager_arn(id) {
        return None;
    }
    id.split(':').nth(3)
}

fn parse_vault(rest: &str) -> Result<VaultRef, ReferenceError> {
    let (path, query, key) = split_parts(rest);
    let bad = |why| ReferenceError::BadPath {
        path: path.to_owned(),
        why,
    };
    if path.is_empty() {
        return Err(bad("empty; expected MOUNT/PATH"));
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Err(bad("no leading or trailing `/`; expected MOUNT/PATH"));
    }
    if path.split('/').any(str::is_empty) {
        return Err(bad("empty segment (`//`)"));
    }
    if !path.contains('/') {
        return Err(bad("a mount alone is not a secret; expected MOUNT/PATH"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("whitespace or control characters"));
    }
    // Vault decodes percent-escapes before it routes a path: `%2e%2e` is `..` there and `%2f`
    // a `/`, so the checks look at the path as Vault will see it.
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    if path.contains("%2f") || path.contains("%2F") {
        return Err(bad("an escaped `/` (`%2f`) is not allowed; write `/`"));
    }
    if decoded
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return Err(bad("`.` and `..` segments are not allowed, escaped or not"));
    }
    let version = match query {
        None => None,
        Some(query) => {
            let (name, value) = query.split_once('=').unwrap_or((query, ""));
            if name != "version" {
                return Err(ReferenceError::UnknownParameter(
                    name.to_owned(),
                    "version=N",
                ));
            }
            match value.parse::<u64>() {
                Ok(n) if n > 0 && !value.starts_with('+') => Some(n),
                _ => {
                    return Err(ReferenceError::BadVersion(format!(
                        "`{value}` is not a version number (1, 2, ...)"
                    )));
                }
            }
        }
    };
    Ok(VaultRef {
        path: path.to_owned(),
        version,
        key: parse_key(key)?,
    })
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPath::Key(key) | KeyPath::Pointer(key) => f.write_str(key),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Aws(r) => r.fmt(f),
            Reference::Vault(r) => r.fmt(f),
        }
    }
}

impl fmt::Display for AwsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{AWS_SCHEME}://{}", self.secret_id)?;
        let mut separator = '?';
        if let Some(region) = &self.region {
            write!(f, "{separator}region={region}")?;
            separator = '&';
        }
        match &self.version {
            AwsVersion::Current => {}
            AwsVersion::Stage(stage) => write!(f, "{separator}version-stage={stage}")?,
            AwsVersion::Id(id) => write!(f, "{separator}version-id={id}")?,
        }
        if let Some(key) = &self.key {
            write!(f, "#{key}")?;
        }
        Ok(())
    }
}

impl fmt::Display for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VAULT_SCHEME}://{}", self.path)?;
        if let Some(version) = self.version {
            write!(f, "?version={version}")?;
        }
        if let Some(key) = &self.key {
            write!(f, "#{key}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn aws(text: &str) -> AwsRef {
        match Reference::parse(text).unwrap() {
            Reference::Aws(r) => r,
            other => panic!("not aws: {other:?}"),
        }
    }

    fn vault(text: &str) -> VaultRef {
        match Reference::parse(text).unwrap() {
            Reference::Vault(r) => r,
            other => panic!("not vault: {other:?}"),
        }
    }

    #[test]
    fn aws_forms() {
        let r = aws("aws-sm://prod/db#password");
        assert_eq!(r.secret_id, "prod/db");
        assert_eq!(r.version, AwsVersion::Current);
        assert_eq!(r.key, Some(KeyPath::Key("password".into())));

        let r = aws("aws-sm://prod/db?version-stage=AWSPREVIOUS");
        assert_eq!(r.version, AwsVersion::Stage("AWSPREVIOUS".into()));
        assert_eq!(r.key, None);

        let r = aws("aws-sm://prod/db?version-id=abc-123#/a/b");
        assert_eq!(r.version, AwsVersion::Id("abc-123".into()));
        assert_eq!(r.key, Some(KeyPath::Pointer("/a/b".into())));

        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-Ab12Cd";
        assert_eq!(aws(&format!("aws-sm://{arn}")).secret_id, arn);
        assert_eq!(aws(&format!("aws-sm://{arn}")).region, None);
    }

    #[test]
    fn aws_region_combines_with_a_version_in_either_order() {
        let r = aws("aws-sm://prod/db?region=eu-west-1#password");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.version, AwsVersion::Current);
        assert_eq!(r.key, Some(KeyPath::Key("password".into())));

        let r = aws("aws-sm://prod/db?version-stage=AWSPREVIOUS&region=us-gov-west-1");
        assert_eq!(r.region.as_deref(), Some("us-gov-west-1"));
        assert_eq!(r.version, AwsVersion::Stage("AWSPREVIOUS".into()));
        assert_eq!(
            r.to_string(),
            "aws-sm://prod/db?region=us-gov-west-1&version-stage=AWSPREVIOUS",
            "the canonical form puts the region first"
        );

        let r = aws("aws-sm://prod/db?region=ap-south-2&version-id=abc-123#/a");
        assert_eq!(r.region.as_deref(), Some("ap-south-2"));
        assert_eq!(r.version, AwsVersion::Id("abc-123".into()));

        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-Ab12Cd";
        assert_eq!(
            aws(&format!("aws-sm://{arn}?region=eu-west-1"))
                .region
                .as_deref(),
            Some("eu-west-1"),
            "an ARN may repeat its own region"
        );
    }

    #[test]
    fn vault_forms() {
        let r = vault("vault://secret/app/api?version=2#token");
        assert_eq!(r.path, "secret/app/api");
        assert_eq!(r.version, Some(2));
        assert_eq!(r.key, Some(KeyPath::Key("token".into())));
        assert_eq!(vault("vault://database/creds/app").key, None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |t: &str| Reference::parse(t).unwrap_err().to_string();
        assert!(err("s3://bucket/x").contains("unknown scheme `s3://`"));
        assert!(err("aws-sm://").contains("empty secret id"));
        assert!(err("aws-sm://x?version-stage=").contains("needs a value"));
        assert!(err("aws-sm://x?stage=A").contains("unknown parameter `stage`"));
        assert!(err("aws-sm://x?version-stage=A&version-id=B").contains("only one"));
        assert!(err("aws-sm://x?version-stage=A&version-stage=B").contains("only one"));
        assert!(err("aws-sm://x?region=").contains("`region` needs a value"));
        assert!(err("aws-sm://x?region").contains("`region` needs a value"));
        assert!(err("aws-sm://x?region=a&region=b").contains("bad region: given twice"));
        assert!(err("aws-sm://x?region=EU-WEST-1").contains("not a region name"));
        assert!(err("aws-sm://x?region=eu west").contains("not a region name"));
        assert!(err("aws-sm://x?region=eu-west-1\n").contains("control character"));
        assert!(err("aws-sm://x?region=-eu").contains("not a region name"));
        assert!(err("aws-sm://x?region=eu-west-1&").contains("unknown parameter ``"));
        assert!(err("aws-sm://x?region=eu-west-1&stage=A").contains("unknown parameter `stage`"));
        assert!(
            err("aws-sm://arn:aws:secretsmanager:eu-west-1:1:secret:x?region=us-east-1")
                .contains("not the region of the ARN (`eu-west-1`)")
        );
        assert!(err("aws-sm://x#").contains("empty key"));
        assert!(err("aws-sm://x#/a~2").contains("bad JSON pointer"));
        assert!(err("aws-sm://arn:aws:s3:::bucket").contains("ARN"));
        assert!(err("vault://").contains("empty"));
        assert!(err("vault://secret").contains("a mount alone"));
        assert!(err("vault://secret//x").contains("empty segment"));
        assert!(err("vault://secret/x/").contains("trailing"));
        assert!(err("vault://secret/x?version=0").contains("bad version"));
        assert!(err("vault://secret/x?version=two").contains("bad version"));
        assert!(err("vault://secret/x?v=2").contains("unknown parameter `v`"));
        assert!(err("vault://secret/../x").contains("`..`"));
    }

    /// Vault decodes percent-escapes before it routes a path: `%2e%2e` is `..` there, and
    /// `%2f` a `/`, so both are refused as their plain forms are.
    #[test]
    fn percent_encoded_dot_segments_and_slashes_are_refused() {
        for reference in [
            "vault://secret/app/%2e%2e/other",
            "vault://secret/app/%2E%2e/other",
            "vault://secret/app/.%2e/other",
            "vault://secret/app/%2e/other",
            "vault://secret/app%2f..%2fother",
            "vault://secret/app%2F%2E%2E%2Fother",
            "vault://secret/app/%2e%2e",
        ] {
            let error = Reference::parse(reference).unwrap_err().to_string();
            assert!(
                error.contains("`.` and `..`") || error.contains("`%2f`"),
                "{reference}: {error}"
            );
        }
        // A percent-escape of anything else is the path's own business.
        assert!(Reference::parse("vault://secret/a%20b/c").is_ok());
    }

    #[test]
    fn environment_values() {
        assert!(Reference::parse_environment_value("https://proxy:3128").is_none());
        assert!(Reference::parse_environment_value("postgres://u@h/db").is_none());
        assert!(Reference::parse_environment_value("plain").is_none());
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf#password";
        let Some(Ok(Reference::Aws(r))) = Reference::parse_environment_value(arn) else {
            panic!("bare ARN is a reference")
        };
        assert_eq!(
            r.secret_id,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
        );
        assert_eq!(r.key, Some(KeyPath::Key("password".into())));
        assert!(Reference::parse_environment_value("arn:aws:s3:::bucket").is_none());
        assert!(matches!(
            Reference::parse_environment_value("vault://x"),
            Some(Err(_))
        ));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.@+=-]{1,12}".prop_filter("no dot segments", |s| s != "." && s != "..")
    }

    fn key_path() -> impl Strategy<Value = Option<KeyPath>> {
        prop_oneof![
            Just(None),
            "[A-Za-z0-9_ .-]{1,10}".prop_map(|k| Some(KeyPath::Key(k))),
            "(/[a-z0-9]{0,5}(~[01])?){1,3}".prop_map(|p| Some(KeyPath::Pointer(p))),
        ]
    }

    fn region_name() -> impl Strategy<Value = String> {
        "[a-z]{2}(-[a-z]{3,9}){1,2}-[1-9]"
    }

    fn reference() -> impl Strategy<Value = Reference> {
        let aws_version = prop_oneof![
            Just(AwsVersion::Current),
            "[A-Za-z0-9_-]{1,12}".prop_map(AwsVersion::Stage),
            "[A-Za-z0-9-]{1,36}".prop_map(AwsVersion::Id),
        ];
        let region = proptest::option::of(region_name());
        let aws = (
            proptest::collection::vec(segment(), 1..4),
            aws_version,
            region,
            key_path(),
        )
            .prop_map(|(segments, version, region, key)| {
                Reference::Aws(AwsRef {
                    secret_id: segments.join("/"),
                    version,
                    region,
                    key,
                })
            });
        let vault = (
            proptest::collection::vec(segment(), 2..5),
            proptest::option::of(1u64..10_000),
            key_path(),
        )
            .prop_map(|(segments, version, key)| {
                Reference::Vault(VaultRef {
                    path: segments.join("/"),
                    version,
                    key,
                })
            });
        prop_oneof![aws, vault]
    }

    proptest! {
        #[test]
        fn display_parses_back(r in reference()) {
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn region_and_version_parse_in_either_order(
            segments in proptest::collection::vec(segment(), 1..4),
            version in prop_oneof![
                "[A-Za-z0-9_-]{1,12}".prop_map(AwsVersion::Stage),
                "[A-Za-z0-9-]{1,36}".prop_map(AwsVersion::Id),
            ],
            region in region_name(),
            key in key_path(),
        ) {
            let r = AwsRef { secret_id: segments.join("/"), version, region: Some(region), key };
            let text = r.to_string();
            let (before, after) = text.split_once('?').unwrap();
            let (query, key) = match after.split_once('#') {
                Some((query, key)) => (query, format!("#{key}")),
                None => (after, String::new()),
            };
            let (region, version) = query.split_once('&').unwrap();
            let swapped = format!("{before}?{version}&{region}{key}");
            prop_assert_eq!(Reference::parse(&swapped), Ok(Reference::Aws(r)));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Reference::parse(&text);
            let _ = Reference::parse_environment_value(&text);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            scheme in prop_oneof![Just("aws-sm://"), Just("vault://"), Just("arn:aws:secretsmanager:")],
            rest in "[a-z0-9/?#=~:.&-]{0,30}",
        ) {
            let _ = Reference::parse(&format!("{scheme}{rest}"));
            let _ = Reference::parse_environment_value(&format!("{scheme}{rest}"));
        }
    }
}
