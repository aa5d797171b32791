//! Everything that can go wrong talking to OpenNebula, and how each failure reaches the
//! controllers as a [`ProviderError`] (cause kept as the source).

use std::sync::Arc;

use super::config::ConfigError;
use super::credentials::CredentialsError;
use super::mapping::MappingError;
use super::transport::TransportError;
use super::vm::VmXmlError;
use super::xmlrpc::XmlRpcError;
use crate::provider::ProviderError;

/// The name the provider errors show ("the OpenNebula API is unavailable").
pub(crate) const API_NAME: &str = "OpenNebula";

/// OpenNebula's error codes (the third element of every answer).
pub(crate) mod code {
    pub(crate) const AUTHENTICATION: i64 = 0x0100;
    pub(crate) const AUTHORIZATION: i64 = 0x0200;
    pub(crate) const NO_EXISTS: i64 = 0x0400;
    // The codes below need no handling of their own; tests use them as "any other code".
    #[cfg(test)]
    pub(crate) const ACTION: i64 = 0x0800;
    #[cfg(test)]
    pub(crate) const XML_RPC_API: i64 = 0x1000;
    pub(crate) const INTERNAL: i64 = 0x2000;
    pub(crate) const LOCKED: i64 = 0x8000;
}

#[derive(Debug, thiserror::Error)]
pub enum OpenNebulaError {
    #[error("invalid OpenNebula configuration")]
    Config(#[from] ConfigError),
    #[error("cannot read the OpenNebula credentials")]
    Credentials(#[from] CredentialsError),
    #[error("cannot set up the connection to OpenNebula")]
    Setup(#[source] Box<TransportError>),
    #[error("{method} did not reach OpenNebula")]
    Transport {
        method: &'static str,
        #[source]
        source: Box<TransportError>,
    },
    #[error("{method} timed out")]
    Timeout {
        method: &'static str,
        #[source]
        source: Box<TransportError>,
    },
    #[error("{method} got an unreadable XML-RPC response")]
    MalformedResponse {
        method: &'static str,
        #[source]
        source: XmlRpcError,
    },
    #[error("{method} got XML-RPC fault {code}: {message}")]
    Fault {
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("OpenNebula could not authenticate the user ({method}: {message})")]
    Auth {
        method: &'static str,
        message: String,
    },
    #[error("OpenNebula did not authorize {method}: {message}")]
    Denied {
        method: &'static str,
        message: String,
    },
    #[error("VM {id} does not exist ({message})")]
    NoSuchVm { id: u32, message: String },
    #[error("{method} failed with OpenNebula error {code:#06x}: {message}")]
    Api {
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("{method} returned an unreadable VM document")]
    MalformedXml {
        method: &'static str,
        #[source]
        source: VmXmlError,
    },
    #[error("cannot turn the VM into node metadata")]
    Mapping(#[from] MappingError),
}

/// How a failure reaches the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Unauthorized,
    Unavailable,
    Malformed,
}

impl OpenNebulaError {
    fn class(&self) -> Class {
        match self {
            OpenNebulaError::Auth { .. } | OpenNebulaError::Denied { .. } => Class::Unauthorized,
            OpenNebulaError::Transport { .. }
            | OpenNebulaError::Timeout { .. }
            | OpenNebulaError::Config(_)
            | OpenNebulaError::Credentials(_)
            | OpenNebulaError::Setup(_) => Class::Unavailable,
            OpenNebulaError::Api { code, .. }
                if *code == code::INTERNAL || *code == code::LOCKED =>
            {
                Class::Unavailable
            }
            OpenNebulaError::MalformedResponse { .. }
            | OpenNebulaError::Fault { .. }
            | OpenNebulaError::NoSuchVm { .. }
            | OpenNebulaError::Api { .. }
            | OpenNebulaError::MalformedXml { .. }
            | OpenNebulaError::Mapping(_) => Class::Malformed,
        }
    }

    /// This error as the controllers see it.
    pub fn into_provider_error(self) -> ProviderError {
        let class = self.class();
        to_provider_error(class, Box::new(self))
    }

    /// A failure shared by several callers (one pool fetch) as the controllers see it.
    pub fn shared_into_provider_error(error: Arc<OpenNebulaError>) -> ProviderError {
        let class = error.class();
        to_provider_error(class, Box::new(error))
    }
}

impl From<OpenNebulaError> for ProviderError {
    fn from(error: OpenNebulaError) -> Self {
        error.into_provider_error()
    }
}

fn to_provider_error(
    class: Class,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
) -> ProviderError {
    let provider = API_NAME;
    match class {
        Class::Unauthorized => ProviderError::Unauthorized { provider, source },
        Class::Unavailable => ProviderError::Unavailable { provider, source },
        Class::Malformed => ProviderError::Malformed { provider, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64) -> OpenNebulaError {
        OpenNebulaError::Api {
            method: "one.vm.info",
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn refused_credentials_are_unauthorized() {
        let auth = OpenNebulaError::Auth {
            method: "one.vm.info",
            message: "User couldn't be authenticated, aborting call.".into(),
        };
        assert!(matches!(
            auth.into_provider_error(),
            ProviderError::Unauthorized { .. }
        ));
        let denied = OpenNebulaError::Denied {
            method: "one.vm.info",
            message: "not authorized".into(),
        };
        assert!(matches!(
            denied.into_provider_error(),
            ProviderError::Unauthorized { .. }
        ));
    }

    #[test]
    fn an_internal_or_locked_answer_is_a_transient_unavailability() {
        for code in [code::INTERNAL, code::LOCKED] {
            let error = api(code).into_provider_error();
            assert!(matches!(error, ProviderError::Unavailable { .. }));
            assert!(error.is_transient());
        }
        assert!(matches!(
            api(code::XML_RPC_API).into_provider_error(),
            ProviderError::Malformed { .. }
        ));
    }

    #[test]
    fn the_cause_stays_reachable_as_the_source() {
        let error = OpenNebulaError::shared_into_provider_error(Arc::new(api(code::ACTION)));
        let source = std::error::Error::source(&error).expect("a provider error keeps its cause");
        assert!(source.to_string().contains("0x0800"), "{source}");
    }
}
