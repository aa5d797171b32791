//! Kubernetes Events of the service-lb controller, with the upstream CCM reasons.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource as _};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// `reportingController` of our Events.
const CONTROLLER: &str = "baremetal-ccm.io/service-lb";

pub const ENSURED: &str = "EnsuredLoadBalancer";
pub const SYNC_FAILED: &str = "SyncLoadBalancerFailed";
pub const DELETING: &str = "DeletingLoadBalancer";
pub const DELETED: &str = "DeletedLoadBalancer";
pub const UPDATED: &str = "UpdatedLoadBalancer";
/// Warning: the deprecated `spec.loadBalancerIP` was honoured.
pub const DEPRECATED_FIELD: &str = "DeprecatedLoadBalancerIP";
/// Warning: a held address is no longer inside any pool.
pub const OUTSIDE_POOL: &str = "AddressOutsidePool";

/// How many Events may wait to be published before new ones are dropped.
const QUEUE: usize = 8192;
/// Events published at once.
const PUBLISHERS: usize = 4;

/// Publishes Events about Services in the background: recording an Event never delays an
/// address. Give it its own client (its own rate-limit budget). Failures are logged and
/// counted, never fatal: Events are best effort.
///
/// Each Event is one create (`events.k8s.io/v1`), without client-side aggregation: the
/// controller emits an Event only when a Service's state changes, so there are no repeats to
/// aggregate, and an aggregation cache would cost memory and time with every Service.
#[derive(Clone)]
pub struct ServiceEvents {
    queue: mpsc::Sender<Event>,
    instance: String,
    dropped: Counter,
}

impl std::fmt::Debug for ServiceEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEvents").finish_non_exhaustive()
    }
}

impl ServiceEvents {
    /// Starts the publisher task. `dropped` counts Events lost to a full queue or an error.
    pub fn start(client: Client, instance: &str, dropped: Counter) -> Self {
        let (queue, receiver) = mpsc::channel::<Event>(QUEUE);
        let failed = dropped.clone();
        tokio::spawn(async move {
            let mut receiver = receiver;
            futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
                .for_each_concurrent(PUBLISHERS, |event| {
                    let failed = failed.clone();
                    let namespace = event.metadata.namespace.clone().unwrap_or_default();
                    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                    async move {
                        if let Err(error) = api.create(&PostParams::default(), &event).await {
                            failed.inc();
                            tracing::warn!(%error, reason = event.reason, "publishing an event failed");
                        }
                    }
                })
                .await;
        });
        Self {
            queue,
            instance: instance.to_owned(),
            dropped,
        }
    }

    pub fn normal(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, "Normal", reason, note);
    }

    pub fn warning(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, "Warning", reason, note);
    }

    fn publish(&self, service: &Service, type_: &str, reason: &str, note: String) {
        let event = event(service, &self.instance, type_, reason, note);
        if self.queue.try_send(event).is_err() {
            self.dropped.inc();
            tracing::warn!(reason, "event queue full; event dropped");
        }
    }
}

/// The Event object about `service`, named `<service>.<nanoseconds, hex>` as client-go does.
fn event(service: &Service, instance: &str, type_: &str, reason: &str, note: String) -> Event {
    let regarding: ObjectReference = service.object_ref(&());
    let now = k8s_openapi::jiff::Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                service.metadata.name.clone().unwrap_or_default(),
                now.as_nanosecond()
            )),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some("Reconcile".to_owned()),
        reason: Some(reason.to_owned()),
        // The API limits a note to 1 KiB.
        note: Some(truncate(note, 1024)),
        type_: Some(type_.to_owned()),
        regarding: Some(regarding),
        reporting_controller: Some(CONTROLLER.to_owned()),
        reporting_instance: Some(truncate(instance.to_owned(), 128)),
        ..Event::default()
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_regards_the_service_and_fits_the_api_limits() {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        let event = event(&service, "ccm-a", "Warning", SYNC_FAILED, "é".repeat(600));
        assert!(event.metadata.name.unwrap().starts_with("web."));
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        let regarding = event.regarding.unwrap();
        assert_eq!(
            (regarding.kind.as_deref(), regarding.uid.as_deref()),
            (Some("Service"), Some("u1"))
        );
        assert_eq!(event.note.unwrap().len(), 1024);
        assert_eq!(event.reporting_controller.as_deref(), Some(CONTROLLER));
    }
}
