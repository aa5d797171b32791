//! The `--cloud-config` file: which instance provider runs and its settings.
//!
//! Read once at start. Anything wrong in it (an unknown key, a wrong type, a value that cannot
//! work) stops the controller with a message that names the field, e.g.
//! `static.nodes[1].zone: invalid label value "eu west"`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::provider::opennebula::Config as OpenNebulaConfig;
use crate::provider::static_file::StaticConfig;

#[derive(Debug, thiserror::Error)]
pub enum CloudConfigError {
    #[error("cannot read cloud config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Unknown key, wrong type or malformed YAML; the message starts with the field's path.
    #[error("cloud config {path}: {field}: {message}")]
    Syntax {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("cloud config {path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Which instance provider serves node metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Metadata from this file; providerID `baremetal://<node>`; never deletes nodes.
    #[default]
    Static,
    /// Metadata from OpenNebula's XML-RPC API; providerID `one://<VMID>`.
    OpenNebula,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudConfig {
    #[serde(default)]
    pub provider: ProviderKind,
    /// Settings of the static provider (defaults and per-node entries).
    #[serde(default, rename = "static")]
    pub static_: Option<StaticConfig>,
    /// Settings of the OpenNebula provider (endpoint, credentials, mapping).
    #[serde(default)]
    pub opennebula: Option<OpenNebulaConfig>,
}

/// A field problem found after parsing: its path below the file's top and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl CloudConfig {
    /// Reads and validates the file; `None` gives the static provider with no entries.
    pub fn load(path: Option<&Path>) -> Result<CloudConfig, CloudConfigError> {
        let Some(path) = path else {
            return Ok(CloudConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| CloudConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        CloudConfig::parse(&text).map_err(|error| error.at(path))
    }

    /// Parses and validates the text of a cloud config.
    pub fn parse(text: &str) -> Result<CloudConfig, ParseError> {
        let config: CloudConfig = if text.trim().is_empty() {
            CloudConfig::default()
        } else {
            let deserializer = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                let field = error.path().to_string();
                let message = error.into_inner().to_string();
                // The YAML library prefixes the enclosing map's path itself; ours is exact.
                let message = match message.split_once(": ") {
                    Some((prefix, rest)) if field.starts_with(prefix) => rest.to_owned(),
                    _ => message,
                };
                ParseError::Syntax {
                    field: if field == "." {
                        "(top level)".to_owned()
                    } else {
                        field
                    },
                    message,
                }
            })?
        };
        config.validate().map_err(ParseError::Invalid)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), FieldError> {
        if let Some(settings) = &self.static_ {
            if self.provider != ProviderKind::Static {
                return Err(FieldError::new(
                    "static",
                    "given, but provider is not static; remove it or set provider: static",
                ));
            }
            settings.validate("static")?;
        }
        match (&self.opennebula, self.provider) {
            (None, ProviderKind::OpenNebula) => Err(FieldError::new(
                "opennebula",
                "required when provider is opennebula (at least endpoint and credentials)",
            )),
            (Some(_), ProviderKind::Static) => Err(FieldError::new(
                "opennebula",
                "given, but provider is static; remove it or set provider: opennebula",
            )),
            (Some(settings), ProviderKind::OpenNebula) => settings.validate().map_err(|error| {
                FieldError::new(format!("opennebula.{}", error.field), error.reason)
            }),
            (None, ProviderKind::Static) => Ok(()),
        }
    }
}

/// A parse failure before the file's path is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Syntax { field: String, message: String },
    Invalid(FieldError),
}

impl ParseError {
    fn at(self, path: &Path) -> CloudConfigError {
        match self {
            ParseError::Syntax { field, message } => CloudConfigError::Syntax {
                path: path.to_owned(),
                field,
                message,
            },
            ParseError::Invalid(FieldError { field, message }) => CloudConfigError::Invalid {
                path: path.to_owned(),
                field,
                message,
            },
        }
    }

    /// The path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            ParseError::Syntax { field, .. } => field,
            ParseError::Invalid(error) => &error.field,
        }
    }
}

/// Whether `value` is a valid Kubernetes label value (empty is;
/// [`crate::contract::label_value_problem`]).
pub(crate) fn is_label_value(value: &str) -> bool {
    crate::contract::label_value_problem(value).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        CloudConfig::parse(text)
            .expect_err("the fixture is invalid")
            .field()
            .to_owned()
    }

    #[test]
    fn an_empty_file_means_the_static_provider_without_entries() {
        let config = CloudConfig::parse("").unwrap();
        assert_eq!(config.provider, ProviderKind::Static);
        assert!(config.static_.is_none());
    }

    #[test]
    fn an_unknown_top_level_key_is_named() {
        let error = CloudConfig::parse("provider: static\nzones: [a]\n").unwrap_err();
        let ParseError::Syntax { message, .. } = &error else {
            panic!("expected a syntax error, got {error:?}");
        };
        assert!(message.contains("unknown field `zones`"), "{message}");
    }

    #[test]
    fn a_wrong_type_deep_in_the_file_is_reported_with_its_path() {
        let text = "static:\n  nodes:\n    - name: a\n    - name: b\n      zone: [x]\n";
        assert_eq!(field_of(text), "static.nodes[1].zone");
    }

    #[test]
    fn an_unknown_provider_is_rejected_at_its_field() {
        assert_eq!(field_of("provider: aws\n"), "provider");
    }

    #[test]
    fn static_settings_with_another_provider_are_refused() {
        let error = CloudConfig::parse("provider: opennebula\nstatic: {}\n").unwrap_err();
        assert_eq!(error.field(), "static");
    }

    #[test]
    fn the_opennebula_provider_needs_its_section_and_checks_it() {
        assert_eq!(field_of("provider: opennebula\n"), "opennebula");
        let text = "provider: opennebula\nopennebula:\n  endpoint: http://one:2633/RPC2\n  credentials: {file: /c}\n  tls: {insecureSkipVerify: true}\n";
        assert_eq!(field_of(text), "opennebula.tls");
        let wrong_type = "provider: opennebula\nopennebula:\n  endpoint: http://one:2633/RPC2\n  credentials: {file: /c}\n  timeout: soon\n";
        assert_eq!(field_of(wrong_type), "opennebula.timeout");
        let good = "provider: opennebula\nopennebula:\n  endpoint: https://one:2633/RPC2\n  credentials: {file: /c}\n";
        assert!(CloudConfig::parse(good).is_ok());
        assert_eq!(
            field_of("opennebula:\n  endpoint: http://one\n  credentials: {file: /c}\n"),
            "opennebula"
        );
    }

    #[test]
    fn label_values_follow_the_kubernetes_rules() {
        for good in ["", "a", "dc1-a", "rack_3.b", &"x".repeat(63)] {
            assert!(is_label_value(good), "{good:?}");
        }
        for bad in ["-a", "a-", "eu west", "a/b", &"x".repeat(64), "é"] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }
}
