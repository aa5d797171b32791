//! BGP password Secrets: read from one namespace only (`--bgp-password-namespace`), and only
//! those a BGPPeer references are cached.
//!
//! Each referenced Secret has a watch of its own, selected by name (`metadata.name=<name>`),
//! so the cache never holds a Secret nobody references, however many the namespace holds;
//! a watch is dropped when no BGPPeer references its Secret any more. A reference that names
//! another namespace is refused with the reason, never read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::crd::bgppeer::SecretKeyRef;

/// How long a new watch may take to list its Secret before planning goes on without it (its
/// peers are then reported as not configured, with the reason, until it has).
pub(crate) const FIRST_READ_WAIT: Duration = Duration::from_secs(10);

/// What a watch knows of its one Secret.
#[derive(Debug, Clone, Default)]
enum Read {
    /// Not listed yet.
    #[default]
    Pending,
    /// The last attempt failed (the API server's answer, e.g. forbidden).
    Failed(Arc<watcher::Error>),
    /// Listed: the Secret's data, or `None` when it does not exist.
    Listed(Option<BTreeMap<String, ByteString>>),
}

/// Why a peer's password cannot be had (its peer is then not configured, with this reason).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "password Secrets are read from namespace {namespace} only; {referenced}/{name} is outside it"
    )]
    OutsideNamespace {
        namespace: String,
        referenced: String,
        name: String,
    },
    #[error("password Secret {namespace}/{name} is not read yet")]
    NotReadYet { namespace: String, name: String },
    #[error("password Secret {namespace}/{name} cannot be read")]
    Unreadable {
        namespace: String,
        name: String,
        #[source]
        source: Arc<watcher::Error>,
    },
    #[error("password Secret {namespace}/{name} does not exist")]
    NoSecret { namespace: String, name: String },
    #[error("password Secret {namespace}/{name} has no key {key:?}")]
    NoKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("password in Secret {namespace}/{name} is not UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
}

struct Watched {
    state: watch::Receiver<Read>,
    task: JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The password Secrets of one namespace; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    api: Api<Secret>,
    namespace: String,
    watched: Arc<Mutex<BTreeMap<String, Watched>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("namespace", &self.namespace)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// Passwords from `namespace`; `changed` is bumped whenever a watched Secret changes.
    pub fn new(client: &Client, namespace: &str, changed: Arc<watch::Sender<u64>>) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
            watched: Arc::default(),
            changed,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Watches exactly the Secrets of `references` that are in this namespace and drops every
    /// other watch; waits (at most [`FIRST_READ_WAIT`]) until the new ones have listed.
    pub async fn track<'a>(&self, references: impl IntoIterator<Item = &'a SecretKeyRef>) {
        let wanted: BTreeSet<&str> = (references.into_iter())
            .filter(|r| self.in_namespace(r))
            .map(|r| r.name.as_str())
            .collect();
        let mut fresh = Vec::new();
        {
            let mut watched = self.lock();
            watched.retain(|name, _| wanted.contains(name.as_str()));
            for name in wanted {
                if !watched.contains_key(name) {
                    let (tx, rx) = watch::channel(Read::Pending);
                    let task = tokio::spawn(watch_one(
                        self.api.clone(),
                        name.to_owned(),
                        tx,
                        self.changed.clone(),
                    ));
                    fresh.push(rx.clone());
                    watched.insert(name.to_owned(), Watched { state: rx, task });
                }
            }
        }
        let first_reads =
            futures::future::join_all(fresh.into_iter().map(|mut state| async move {
                // A closed channel means the watch was dropped meanwhile: nothing to wait for.
                let _ = state.wait_for(|read| !matches!(read, Read::Pending)).await;
            }));
        if tokio::time::timeout(FIRST_READ_WAIT, first_reads)
            .await
            .is_err()
        {
            tracing::warn!(
                namespace = self.namespace,
                "a password Secret was not read in time; its peers wait"
            );
        }
    }

    /// The names of the Secrets watched now.
    pub fn cached(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The password `reference` points at, or why there is none.
    pub fn password(&self, reference: &SecretKeyRef) -> Result<String, PasswordError> {
        let namespace = self.namespace.clone();
        let name = reference.name.clone();
        if !self.in_namespace(reference) {
            let referenced = reference.namespace.clone().unwrap_or_default();
            return Err(PasswordError::OutsideNamespace {
                namespace,
                referenced,
                name,
            });
        }
        let read = (self.lock().get(&name))
            .map(|w| w.state.borrow().clone())
            .unwrap_or_default();
        let data = match read {
            Read::Pending => return Err(PasswordError::NotReadYet { namespace, name }),
            Read::Failed(source) => {
                return Err(PasswordError::Unreadable {
                    namespace,
                    name,
                    source,
                });
            }
            Read::Listed(None) => return Err(PasswordError::NoSecret { namespace, name }),
            Read::Listed(Some(data)) => data,
        };
        let Some(bytes) = data.get(&reference.key) else {
            let key = reference.key.clone();
            return Err(PasswordError::NoKey {
                namespace,
                name,
                key,
            });
        };
        let text = String::from_utf8(bytes.0.clone()).map_err(|source| PasswordError::NotText {
            namespace,
            name,
            source,
        })?;
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn in_namespace(&self, reference: &SecretKeyRef) -> bool {
        (reference.namespace.as_deref()).is_none_or(|ns| ns == self.namespace)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Watches the one Secret `name` (a field selector on its name) and publishes its data; only
/// the data is kept (not the metadata, whose last-applied annotation would hold a copy).
async fn watch_one(
    api: Api<Secret>,
    name: String,
    state: watch::Sender<Read>,
    changed: Arc<watch::Sender<u64>>,
) {
    let data_of = |secret: Secret| secret.data.unwrap_or_default();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut relisted = None;
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let current = match event {
            Ok(watcher::Event::Init) => {
                relisted = None;
                continue;
            }
            Ok(watcher::Event::InitApply(secret)) => {
                relisted = Some(data_of(secret));
                continue;
            }
            Ok(watcher::Event::InitDone) => relisted.take(),
            Ok(watcher::Event::Apply(secret)) => Some(data_of(secret)),
            Ok(watcher::Event::Delete(_)) => None,
            Err(error) => {
                tracing::warn!(%error, secret = name, "watching a password Secret failed; retrying");
                // A password already read stays in use: a failing watch must not take a
                // session down. Only a Secret never read reports the failure.
                if !matches!(*state.borrow(), Read::Listed(_)) {
                    state.send_replace(Read::Failed(Arc::new(error)));
                    changed.send_modify(|generation| *generation = generation.wrapping_add(1));
                }
                continue;
            }
        };
        state.send_replace(Read::Listed(current));
        changed.send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}
