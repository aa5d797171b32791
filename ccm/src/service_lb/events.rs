//! Kubernetes Events of the service-lb controller, with the upstream CCM reasons.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Client;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

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
#[derive(Clone)]
pub struct ServiceEvents {
    queue: mpsc::Sender<(ObjectReference, Event)>,
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
        let reporter = Reporter {
            controller: "baremetal-ccm".into(),
            instance: Some(instance.to_owned()),
        };
        let recorder = Recorder::new(client, reporter);
        let (queue, receiver) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let failed = dropped.clone();
        tokio::spawn(async move {
            ReceiverStream(receiver)
                .for_each_concurrent(PUBLISHERS, |(reference, event)| {
                    let recorder = recorder.clone();
                    let failed = failed.clone();
                    async move {
                        if let Err(error) = recorder.publish(&event, &reference).await {
                            failed.inc();
                            tracing::warn!(%error, reason = event.reason, "publishing an event failed");
                        }
                    }
                })
                .await;
        });
        Self { queue, dropped }
    }

    pub fn normal(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, EventType::Normal, reason, note);
    }

    pub fn warning(&self, service: &Service, reason: &str, note: String) {
        self.publish(service, EventType::Warning, reason, note);
    }

    fn publish(&self, service: &Service, type_: EventType, reason: &str, note: String) {
        let reference: ObjectReference = service.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if self.queue.try_send((reference, event)).is_err() {
            self.dropped.inc();
            tracing::warn!(reason, "event queue full; event dropped");
        }
    }
}

/// A receiver as a stream.
struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
