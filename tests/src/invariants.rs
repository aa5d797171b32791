//! Invariants of every Service address, checked at every event of a watch: no address held
//! by two Services that may not share it, no Service's address replaced by another.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::service::ingress;

const SHARING: &str = "baremetal-ccm.io/sharing-key";

/// What the watch last saw of one Service.
#[derive(Debug, Clone)]
struct Seen {
    uid: String,
    ips: BTreeSet<String>,
    key: Option<String>,
    ports: BTreeSet<(String, i32)>,
}

/// Invariant checks over every event of a Service watch.
#[derive(Debug, Default)]
pub struct Invariants {
    current: BTreeMap<String, Seen>,
    /// The first non-empty address set each Service (by uid) was seen with.
    first: BTreeMap<String, BTreeSet<String>>,
    pub violations: Vec<String>,
    pub events: usize,
}

impl Invariants {
    fn apply(&mut self, service: &Service) {
        self.events += 1;
        let name = service.metadata.name.clone().unwrap_or_default();
        let uid = service.metadata.uid.clone().unwrap_or_default();
        let ips: BTreeSet<String> = ingress(service).into_iter().map(|(ip, _)| ip).collect();
        let ports = (service.spec.iter())
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| (p.protocol.clone().unwrap_or_default(), p.port))
            .collect();
        let key = (service.metadata.annotations.as_ref()).and_then(|a| a.get(SHARING).cloned());
        if !ips.is_empty() {
            let first = self.first.entry(uid.clone()).or_insert_with(|| ips.clone());
            if *first != ips {
                self.violations
                    .push(format!("{name} renumbered: {first:?} then {ips:?}"));
            }
        }
        let seen = Seen {
            uid,
            ips,
            key,
            ports,
        };
        for ip in &seen.ips {
            for (other, theirs) in &self.current {
                if *other == name || !theirs.ips.contains(ip) || theirs.uid == seen.uid {
                    continue;
                }
                let shareable = seen.key.is_some()
                    && seen.key == theirs.key
                    && seen.ports.is_disjoint(&theirs.ports);
                if !shareable {
                    self.violations
                        .push(format!("{ip} held by {name} and {other} at once"));
                }
            }
        }
        self.current.insert(name, seen);
    }

    fn delete(&mut self, service: &Service) {
        self.current
            .remove(&service.metadata.name.clone().unwrap_or_default());
    }
}

/// Checks every Service of `namespace` from now on.
pub fn watch_invariants(client: kube::Client, namespace: &str) -> Arc<Mutex<Invariants>> {
    let namespace = namespace.to_owned();
    let invariants = Arc::new(Mutex::new(Invariants::default()));
    let record = invariants.clone();
    tokio::spawn(async move {
        let api: Api<Service> = Api::namespaced(client, &namespace);
        // With a backoff, a watch whose apiserver is gone (the test ended) waits between
        // attempts instead of spinning, so the runtime can shut the task down.
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = events.next().await {
            let mut invariants = record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                    invariants.apply(&s);
                }
                Ok(watcher::Event::Delete(s)) => invariants.delete(&s),
                _ => {}
            }
        }
    });
    invariants
}
