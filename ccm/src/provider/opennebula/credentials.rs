//! The OpenNebula session string (`user:password`): read from a file or a Secret, checked,
//! and never shown (its `Debug` redacts the password).

use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::config::{Credentials, SecretRef};

/// The session string OpenNebula expects as the first parameter of every call.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Session {
    text: String,
    user_len: usize,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why the credentials could not be read. Messages never contain the credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the OpenNebula credentials file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials.secret needs a Kubernetes client, and none was given")]
    NoKubeClient,
    #[error("cannot read Secret {namespace}/{name}")]
    Secret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("the credentials in {origin} are not UTF-8")]
    NotUtf8 {
        origin: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("the credentials in {origin} are not one line of the form user:password ({problem})")]
    Format {
        origin: String,
        problem: &'static str,
    },
}

impl Session {
    /// Parses `user:password`; one trailing newline (`\n` or `\r\n`) is dropped. `origin` names
    /// where the text came from, for the error.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Session, CredentialsError> {
        let bad = |problem| CredentialsError::Format {
            origin: origin.to_owned(),
            problem,
        };
        let line = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if line.chars().any(char::is_control) {
            return Err(bad("it holds a line break or another control character"));
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(bad("there is no ':'"));
        };
        if user.is_empty() {
            return Err(bad("the user is empty"));
        }
        if password.is_empty() {
            return Err(bad("the password is empty"));
        }
        Ok(Session {
            text: line.to_owned(),
            user_len: user.len(),
        })
    }

    pub(crate) fn user(&self) -> &str {
        &self.text[..self.user_len]
    }

    /// The session string itself, for the request only.
    pub(crate) fn expose(&self) -> &str {
        &self.text
    }
}

/// Reads the session string from where `credentials` says.
pub(crate) async fn load(
    credentials: &Credentials,
    kube: Option<&kube::Client>,
) -> Result<Session, CredentialsError> {
    match credentials {
        Credentials::File(path) => {
            let text = tokio::fs::read(path)
                .await
                .map_err(|source| CredentialsError::File {
                    path: path.clone(),
                    source,
                })?;
            let origin = format!("file {}", path.display());
            let text = String::from_utf8(text).map_err(|source| CredentialsError::NotUtf8 {
                origin: origin.clone(),
                source,
            })?;
            Session::parse(&text, &origin)
        }
        Credentials::Secret(secret) => {
            let kube = kube.ok_or(CredentialsError::NoKubeClient)?;
            from_secret(kube, secret).await
        }
    }
}

async fn from_secret(kube: &kube::Client, at: &SecretRef) -> Result<Session, CredentialsError> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), &at.namespace);
    let secret = api
        .get(&at.name)
        .await
        .map_err(|source| CredentialsError::Secret {
            namespace: at.namespace.clone(),
            name: at.name.clone(),
            source,
        })?;
    session_from_secret(&secret, at)
}

/// The session string in `secret` under `at.key` (`data`, else `stringData` as written by
/// a client that did not let the API server merge it).
pub(crate) fn session_from_secret(
    secret: &Secret,
    at: &SecretRef,
) -> Result<Session, CredentialsError> {
    let origin = format!("Secret {}/{} key {:?}", at.namespace, at.name, at.key);
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&at.key))
        .map(|bytes| bytes.0.clone());
    let string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(&at.key))
            .map(|s| s.clone().into_bytes())
    };
    let Some(bytes) = data.or_else(string_data) else {
        return Err(CredentialsError::SecretKey {
            namespace: at.namespace.clone(),
            name: at.name.clone(),
            key: at.key.clone(),
        });
    };
    let text = String::from_utf8(bytes).map_err(|source| CredentialsError::NotUtf8 {
        origin: origin.clone(),
        source,
    })?;
    Session::parse(&text, &origin)
}

#[cfg(test)]
#[path = "tests/credentials.rs"]
mod tests;
