//! The Service writer: applies the patches one reconcile planned (the core's `status`), in
//! order, each measured (`baremetal_ccm_writer_*{resource="services"}`), and remembers the
//! versions of a Service that its own later writes replaced.

use std::collections::HashMap;
use std::sync::Mutex;

use baremetal_ccm_core::write::Patch;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt as _};

use super::reconcile::ReconcileError;
use crate::writer::{self, Kind};

pub(super) struct ServiceWriter {
    client: Client,
    metrics: writer::Metrics,
    /// Versions of a Service our own writes produced and then replaced with a later write.
    /// The cache may still hand them to a reconcile; deciding on them would only earn a 409.
    superseded: Mutex<HashMap<ObjectRef<Service>, Vec<String>>>,
}

impl ServiceWriter {
    pub(super) fn new(client: Client, metrics: writer::Metrics) -> Self {
        Self {
            client,
            metrics,
            superseded: Mutex::default(),
        }
    }

    /// Applies `patches` in order. Each carries the `resourceVersion` the decision was made
    /// on; after our own write the next one carries the version that write produced (nothing
    /// else can have changed in between, or our write would have failed).
    pub(super) async fn apply_all(
        &self,
        service: &Service,
        patches: &[Patch],
    ) -> Result<(), ReconcileError> {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        let mut version: Option<String> = None;
        let mut intermediate = Vec::new();
        for planned in patches {
            let patch = match &version {
                Some(version) => planned.at_version(version),
                None => planned.clone(),
            };
            let written = (self.metrics)
                .patch(Kind::Service, &api, &name, &patch)
                .await
                .map_err(|source| ReconcileError::Write {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            if let Some(previous) = version.take() {
                intermediate.push(previous);
            }
            version = written.metadata.resource_version;
        }
        if !intermediate.is_empty() {
            self.lock()
                .insert(ObjectRef::from_obj(service), intermediate);
        }
        Ok(())
    }

    /// Whether `service` is a version our own writes already replaced. Any other version
    /// clears the record.
    pub(super) fn is_superseded(&self, service: &Service) -> bool {
        let key = ObjectRef::from_obj(service);
        let mut superseded = self.lock();
        let stale = (superseded.get(&key))
            .zip(service.metadata.resource_version.as_ref())
            .is_some_and(|(versions, version)| versions.contains(version));
        if !stale {
            superseded.remove(&key);
        }
        stale
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Service>, Vec<String>>> {
        self.superseded
            .lock()
            .expect("superseded lock is never poisoned: nothing panics while holding it")
    }
}
