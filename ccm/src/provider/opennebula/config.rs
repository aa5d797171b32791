//! The `opennebula:` section of the cloud-config file: what it may say, its defaults, and the
//! checks that name the offending field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Deserializer};

/// Settings of the OpenNebula instance provider.
///
/// ```yaml
/// endpoint: https://one.example:2633/RPC2
/// credentials:
///   secret: {namespace: kube-system, name: opennebula, key: credentials}
/// tls: {caFile: /etc/baremetal-ccm/one-ca.pem}
/// timeout: 10s
/// cacheTtl: 30s
/// minInterval: 1s
/// zone: {attribute: HISTORY_RECORDS/HISTORY/CID}
/// region: {value: dc1}
/// instanceType: {attribute: USER_TEMPLATE/INSTANCE_TYPE}
/// addresses: {externalNetworks: [public]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The XML-RPC endpoint, `http://` or `https://`; an empty path means `/RPC2`.
    pub endpoint: String,
    /// Where the `user:password` session string comes from.
    pub credentials: Credentials,
    /// TLS settings for an `https://` endpoint.
    #[serde(default)]
    pub tls: Tls,
    /// Limit for one API call, connection included. Default 10s.
    #[serde(default = "default_timeout", deserialize_with = "timeout")]
    pub timeout: Duration,
    /// The longest a cached VM pool is used before it is fetched again. Default 30s.
    #[serde(default = "default_cache_ttl", deserialize_with = "cache_ttl")]
    pub cache_ttl: Duration,
    /// The shortest time between the starts of two API calls (any method). Default 1s.
    #[serde(default = "default_min_interval", deserialize_with = "min_interval")]
    pub min_interval: Duration,
    /// `topology.kubernetes.io/zone`. Default: the cluster of the VM's current host
    /// (`HISTORY_RECORDS/HISTORY/CID`); `null` leaves it unset.
    #[serde(default = "default_zone")]
    pub zone: Option<LabelSource>,
    /// `topology.kubernetes.io/region`. Default: unset.
    #[serde(default)]
    pub region: Option<LabelSource>,
    /// `node.kubernetes.io/instance-type`. Default: `USER_TEMPLATE/INSTANCE_TYPE` when the VM
    /// has it; `null` leaves it unset.
    #[serde(default = "default_instance_type")]
    pub instance_type: Option<LabelSource>,
    /// Which NIC addresses become node addresses, and of which type.
    #[serde(default)]
    pub addresses: Addresses,
    /// The largest API answer read, in bytes (a larger one is an error). Parsing takes about
    /// four times the answer's size, so keep this below a quarter of the controller's memory
    /// limit. Default 32 MiB (about 2,000 VMs with full templates); 1 KiB to 1 GiB.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Allow an `http://` endpoint that is not on loopback. Off by default: it sends the
    /// credentials in clear and lets whoever answers set node addresses and have Nodes deleted.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// 32 MiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// Exactly one source of the session string: `{file: <path>}` or `{secret: {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CredentialsChoice")]
pub enum Credentials {
    /// A file holding `user:password` (one line; a trailing newline is fine).
    File(PathBuf),
    /// A key of a Secret holding `user:password`; the controller needs `get` on it.
    Secret(SecretRef),
}

/// A key of one Secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    /// Default `credentials`.
    #[serde(default = "default_secret_key")]
    pub key: String,
}

/// TLS settings; both unset means the system's trusted roots.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tls {
    /// PEM file with the CA certificates to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (a warning is logged at start). Default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Where a label's value comes from: `{value: <text>}` or `{attribute: <path>}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "LabelChoice")]
pub enum LabelSource {
    /// The same literal value on every node.
    Value(String),
    /// An element of the VM document, as a `/`-separated path below `<VM>`
    /// (`USER_TEMPLATE/ZONE`); where an element repeats, the last one counts, so
    /// `HISTORY_RECORDS/HISTORY/HOSTNAME` is the current host. Absent or empty: no label.
    Attribute(AttributePath),
}

// The YAML shapes of the two choices: a map with exactly one of two keys. (serde's
// externally tagged enums would want YAML tags like `!file` instead.)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsChoice {
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    secret: Option<SecretRef>,
}

impl TryFrom<CredentialsChoice> for Credentials {
    type Error = &'static str;

    fn try_from(choice: CredentialsChoice) -> Result<Self, Self::Error> {
        match (choice.file, choice.secret) {
            (Some(path), None) => Ok(Credentials::File(path)),
            (None, Some(secret)) => Ok(Credentials::Secret(secret)),
            _ => Err("exactly one of file or secret is needed"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelChoice {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    attribute: Option<AttributePath>,
}

impl TryFrom<LabelChoice> for LabelSource {
    type Error = &'static str;

    fn try_from(choice: LabelChoice) -> Result<Self, Self::Error> {
        match (choice.value, choice.attribute) {
            (Some(value), None) => Ok(LabelSource::Value(value)),
            (None, Some(path)) => Ok(LabelSource::Attribute(path)),
            _ => Err("exactly one of value or attribute is needed"),
        }
    }
}

/// Whether the endpoint's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn on_loopback(endpoint: &Uri) -> bool {
    let host = endpoint.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `/`-separated path of element names below `<VM>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(transparent)]
pub struct AttributePath(String);

impl AttributePath {
    /// A path from its text; [`Config::validate`] checks it.
    pub fn new(path: impl Into<String>) -> Self {
        AttributePath(path.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The element names, outermost first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    fn check(&self) -> Result<(), String> {
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if self.segments().all(valid_name) {
            Ok(())
        } else {
            Err(format!(
                "{:?} is not a path of element names separated by '/'",
                self.0
            ))
        }
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which NIC addresses become node addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Addresses {
    /// Networks (by name or numeric ID) whose addresses are `ExternalIP`; all others are
    /// `InternalIP`.
    #[serde(default)]
    pub external_networks: Vec<String>,
    /// Networks (by name or numeric ID) whose addresses are left out.
    #[serde(default)]
    pub ignored_networks: Vec<String>,
    /// Include IPv6 addresses (`IP6_GLOBAL`, `IP6`, `IP6_ULA`). Default true.
    #[serde(default = "yes")]
    pub ipv6: bool,
    /// Include the addresses of NIC aliases (`NIC_ALIAS`). Default true.
    #[serde(default = "yes")]
    pub aliases: bool,
}

impl Default for Addresses {
    fn default() -> Self {
        Addresses {
            external_networks: Vec::new(),
            ignored_networks: Vec::new(),
            ipv6: true,
            aliases: true,
        }
    }
}

/// A setting that does not hold together; `field` is its path in the `opennebula:` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opennebula.{field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl Config {
    /// A configuration with every default, for `endpoint` and `credentials`.
    pub fn new(endpoint: impl Into<String>, credentials: Credentials) -> Self {
        Config {
            endpoint: endpoint.into(),
            credentials,
            tls: Tls::default(),
            timeout: default_timeout(),
            cache_ttl: default_cache_ttl(),
            min_interval: default_min_interval(),
            zone: default_zone(),
            region: None,
            instance_type: default_instance_type(),
            addresses: Addresses::default(),
            max_response_bytes: default_max_response_bytes(),
            allow_insecure_http: false,
        }
    }

    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let endpoint = self.endpoint_uri()?;
        let https = endpoint.scheme_str() == Some("https");
        if !https && (self.tls.ca_file.is_some() || self.tls.insecure_skip_verify) {
            return Err(ConfigError::new(
                "tls",
                "TLS settings need an https:// endpoint",
            ));
        }
        if self.tls.ca_file.is_some() && self.tls.insecure_skip_verify {
            return Err(ConfigError::new(
                "tls",
                "caFile and insecureSkipVerify exclude each other",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be longer than 0s"));
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_response_bytes) {
            return Err(ConfigError::new(
                "maxResponseBytes",
                "must be between 1 KiB (1024) and 1 GiB (1073741824)",
            ));
        }
        if !https && !self.allow_insecure_http && !on_loopback(&endpoint) {
            return Err(ConfigError::new(
                "endpoint",
                "an http:// endpoint off this host sends the credentials in clear and lets \
                 whoever answers set node addresses; use https://, or set \
                 allowInsecureHttp: true if the network is trusted",
            ));
        }
        self.validate_credentials()?;
        check_label("zone", self.zone.as_ref())?;
        check_label("region", self.region.as_ref())?;
        check_label("instanceType", self.instance_type.as_ref())?;
        let networks = [
            (
                "addresses.externalNetworks",
                &self.addresses.external_networks,
            ),
            (
                "addresses.ignoredNetworks",
                &self.addresses.ignored_networks,
            ),
        ];
        for (field, names) in networks {
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(ConfigError::new(field, "network names must not be empty"));
            }
        }
        Ok(())
    }

    fn validate_credentials(&self) -> Result<(), ConfigError> {
        match &self.credentials {
            Credentials::File(path) if path.as_os_str().is_empty() => {
                Err(ConfigError::new("credentials.file", "must name a file"))
            }
            Credentials::File(_) => Ok(()),
            Credentials::Secret(secret) => {
                let parts = [
                    ("credentials.secret.namespace", &secret.namespace),
                    ("credentials.secret.name", &secret.name),
                    ("credentials.secret.key", &secret.key),
                ];
                match parts.into_iter().find(|(_, v)| v.trim().is_empty()) {
                    Some((field, _)) => Err(ConfigError::new(field, "must not be empty")),
                    None => Ok(()),
                }
            }
        }
    }

    /// The endpoint as a URI, with `/RPC2` for an empty path.
    pub fn endpoint_uri(&self) -> Result<Uri, ConfigError> {
        let bad = |reason: String| ConfigError::new("endpoint", reason);
        let uri: Uri = self.endpoint.parse().map_err(|e: http::uri::InvalidUri| {
            bad(format!("{:?} is not a URL: {e}", self.endpoint))
        })?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(bad(format!(
                    "{:?} must start with http:// or https://",
                    self.endpoint
                )));
            }
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err(bad(format!("{:?} has no host", self.endpoint)));
        };
        if authority.as_str().contains('@') {
            return Err(bad(
                "must not carry credentials; use credentials instead".into()
            ));
        }
        if matches!(uri.path(), "" | "/") && uri.query().is_none() {
            let scheme = uri.scheme().cloned().expect("the scheme was checked above");
            return Uri::builder()
                .scheme(scheme)
                .authority(authority)
                .path_and_query("/RPC2")
                .build()
                .map_err(|e| {
                    bad(format!(
                        "{:?} cannot take the path /RPC2: {e}",
                        self.endpoint
                    ))
                });
        }
        Ok(uri)
    }
}

fn check_label(field: &'static str, source: Option<&LabelSource>) -> Result<(), ConfigError> {
    match source {
        None => Ok(()),
        Some(LabelSource::Value(value)) => {
            check_label_value(value).map_err(|reason| ConfigError::new(field, reason))
        }
        Some(LabelSource::Attribute(path)) => path
            .check()
            .map_err(|reason| ConfigError::new(field, reason)),
    }
}

/// Whether `value` is a valid Kubernetes label value (empty is, and then sets no label:
/// [`crate::contract::label_value_problem`]), with the reason when it is not.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    match crate::contract::label_value_problem(value) {
        None => Ok(()),
        Some(_) => Err(format!(
            "{value:?} is not a valid label value (at most 63 characters of [A-Za-z0-9-_.], \
             alphanumeric at both ends)"
        )),
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_min_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_zone() -> Option<LabelSource> {
    Some(LabelSource::Attribute(AttributePath::new(
        "HISTORY_RECORDS/HISTORY/CID",
    )))
}

fn default_instance_type() -> Option<LabelSource> {
    Some(LabelSource::Attribute(AttributePath::new(
        "USER_TEMPLATE/INSTANCE_TYPE",
    )))
}

fn default_secret_key() -> String {
    "credentials".to_owned()
}

fn yes() -> bool {
    true
}

fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration("timeout", deserializer)
}

fn cache_ttl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration("cacheTtl", deserializer)
}

fn min_interval<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration("minInterval", deserializer)
}

fn duration<'de, D: Deserializer<'de>>(field: &str, deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text)
        .map_err(|reason| serde::de::Error::custom(format!("opennebula.{field}: {reason}")))
}

/// Parses `500ms`, `1.5s`, `2m`, `1h`, and sums like `1m30s`; a bare `0` is zero.
pub(crate) use baremetal_ccm_core::duration::parse as parse_duration;

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
