//! Kubernetes Events of the service-lb controller, with the upstream CCM reasons.

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Client;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

pub const ENSURING: &str = "EnsuringLoadBalancer";
pub const ENSURED: &str = "EnsuredLoadBalancer";
pub const SYNC_FAILED: &str = "SyncLoadBalancerFailed";
pub const DELETING: &str = "DeletingLoadBalancer";
pub const DELETED: &str = "DeletedLoadBalancer";
pub const UPDATED: &str = "UpdatedLoadBalancer";
/// Warning: the deprecated `spec.loadBalancerIP` was honoured.
pub const DEPRECATED_FIELD: &str = "DeprecatedLoadBalancerIP";
/// Warning: a held address is no longer inside any pool.
pub const OUTSIDE_POOL: &str = "AddressOutsidePool";

/// Publishes Events about Services; failures are logged, never fatal (events are best effort).
#[derive(Clone)]
pub struct ServiceEvents {
    recorder: Recorder,
}

impl std::fmt::Debug for ServiceEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEvents").finish_non_exhaustive()
    }
}

impl ServiceEvents {
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "baremetal-ccm".into(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub async fn normal(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, EventType::Normal, reason, note).await;
    }

    pub async fn warning(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, EventType::Warning, reason, note)
            .await;
    }

    async fn publish(&self, service: &Service, type_: EventType, reason: &str, note: String) {
        let reference: ObjectReference = service.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }
}
