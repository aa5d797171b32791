//! Publishing Kubernetes Events (`events.k8s.io/v1`) in the background, for every controller.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// How many Normal Events may wait to be published before new ones are dropped.
const QUEUE: usize = 8192;
/// How many Warnings may wait (their own queue: a burst of Normal Events never crowds one out).
const WARNING_QUEUE: usize = 1024;
/// Events published at once.
const PUBLISHERS: usize = 4;

/// Publishes Events in the background: recording an Event never delays the work it reports.
/// Give it its own client with its own budget (`--event-qps`): in a burst of writes the
/// Events then trail behind instead of taking the API server's time from the writes. Waiting
/// Warnings are published before waiting Normal Events. Failures are retried while they look
/// transient (for up to two minutes), then logged and counted, never fatal: Events are best
/// effort.
///
/// Each Event is one create, without client-side aggregation: the controllers emit an Event
/// only when an object's state changes, so there are no repeats to aggregate, and an
/// aggregation cache would cost memory and time with every object.
#[derive(Clone)]
pub(crate) struct Publisher {
    warnings: mpsc::Sender<Event>,
    normal: mpsc::Sender<Event>,
    instance: String,
    dropped: Counter,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// What one controller records through a [`Publisher`]: the `reportingController` name.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    publisher: Publisher,
    controller: &'static str,
}

impl Recorder {
    pub(crate) fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: String,
    ) {
        self.publisher
            .publish(self.controller, object, "Normal", reason, note);
    }

    pub(crate) fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: String,
    ) {
        self.publisher
            .publish(self.controller, object, "Warning", reason, note);
    }
}

impl Publisher {
    /// Starts the publisher task. `instance` is the `reportingInstance` (this replica);
    /// `dropped` counts Events lost to a full queue or an error.
    pub(crate) fn start(client: Client, instance: &str, dropped: Counter) -> Self {
        let (warnings, waiting_warnings) = mpsc::channel::<Event>(WARNING_QUEUE);
        let (normal, waiting_normal) = mpsc::channel::<Event>(QUEUE);
        let failed = dropped.clone();
        tokio::spawn(async move {
            waiting(waiting_warnings, waiting_normal)
                .for_each_concurrent(PUBLISHERS, |event| {
                    let failed = failed.clone();
                    let namespace = event.metadata.namespace.clone().unwrap_or_default();
                    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                    async move {
                        if let Err(error) = create(&api, &event).await {
                            failed.inc();
                            tracing::warn!(%error, reason = event.reason, "publishing an event failed");
                        }
                    }
                })
                .await;
        });
        Self {
            warnings,
            normal,
            instance: instance.to_owned(),
            dropped,
        }
    }

    /// A recorder for the controller named `controller` (e.g. `baremetal-ccm.io/service-lb`).
    pub(crate) fn recorder(&self, controller: &'static str) -> Recorder {
        Recorder {
            publisher: self.clone(),
            controller,
        }
    }

    fn publish<K: Resource<DynamicType = ()>>(
        &self,
        controller: &'static str,
        object: &K,
        type_: &str,
        reason: &str,
        note: String,
    ) {
        let event = event(object, controller, &self.instance, type_, reason, note);
        let queue = if type_ == "Warning" {
            &self.warnings
        } else {
            &self.normal
        };
        if queue.try_send(event).is_err() {
            self.dropped.inc();
            tracing::warn!(reason, "event queue full; event dropped");
        }
    }
}

/// The waiting Events in the order they are published: a waiting Warning before any waiting
/// Normal Event, each kind first in, first out. Ends when both queues are closed and empty.
fn waiting(
    mut warnings: mpsc::Receiver<Event>,
    mut normal: mpsc::Receiver<Event>,
) -> impl futures::Stream<Item = Event> {
    let warnings = futures::stream::poll_fn(move |cx| warnings.poll_recv(cx));
    let normal = futures::stream::poll_fn(move |cx| normal.poll_recv(cx));
    // Always the warnings first; the normal queue only while none waits.
    futures::stream::select_with_strategy(warnings, normal, |_: &mut ()| {
        futures::stream::PollNext::Left
    })
}

/// Creates `event`, retrying while the API server is away or overloaded (connection errors,
/// 429, 5xx) for up to [`RETRY_FOR`]: an Event recorded during a short outage (layer 2's
/// owner changes do not wait for the API server) is published when it returns. Anything the
/// API server refuses for the Event itself is not retried.
async fn create(api: &Api<Event>, event: &Event) -> Result<Event, kube::Error> {
    let started = std::time::Instant::now();
    let mut failed = 0;
    loop {
        match api.create(&PostParams::default(), event).await {
            Err(error) if is_transient(&error) && started.elapsed() < RETRY_FOR => {
                tracing::debug!(%error, reason = event.reason, "publishing an event failed; retrying");
                failed += 1;
                tokio::time::sleep(RETRY_BACKOFF.delay(failed)).await;
            }
            result => return result,
        }
    }
}

/// How long one Event is retried.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);
/// The wait between two tries: 250 ms, doubling up to 5 s.
const RETRY_BACKOFF: crate::retry::Backoff = crate::retry::Backoff {
    base: std::time::Duration::from_millis(250),
    cap: std::time::Duration::from_secs(5),
};

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        // The fence (not the leader): never retried, the replica is stopping.
        error if crate::fence::FenceError::is_in(error) => false,
        _ => true,
    }
}

/// The Event object about `object`, named `<object>.<nanoseconds, hex>` as client-go does.
/// Events about cluster-scoped objects (Nodes) go to the `default` namespace, as upstream's do.
fn event<K: Resource<DynamicType = ()>>(
    object: &K,
    controller: &str,
    instance: &str,
    type_: &str,
    reason: &str,
    note: String,
) -> Event {
    let regarding: ObjectReference = object.object_ref(&());
    let now = k8s_openapi::jiff::Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                object.meta().name.clone().unwrap_or_default(),
                now.as_nanosecond()
            )),
            namespace: Some(
                regarding
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some("Reconcile".to_owned()),
        reason: Some(reason.to_owned()),
        // The API limits a note to 1 KiB.
        note: Some(bounded(note, 1024)),
        type_: Some(type_.to_owned()),
        regarding: Some(regarding),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(bounded(instance.to_owned(), 128)),
        ..Event::default()
    }
}

pub(crate) use crate::conditions::bounded;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Service};

    const CONTROLLER: &str = "baremetal-ccm.io/service-lb";

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
        let note = "é".repeat(600);
        let event = event(&service, CONTROLLER, "ccm-a", "Warning", "X", note);
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

    #[test]
    fn an_event_is_retried_while_the_api_server_is_away_but_not_when_it_refuses_it() {
        let status = |code: u16| {
            let status: kube::core::Status =
                serde_json::from_value(serde_json::json!({ "code": code })).unwrap();
            kube::Error::Api(Box::new(status))
        };
        assert!(is_transient(&status(503)) && is_transient(&status(429)));
        assert!(!is_transient(&status(403)) && !is_transient(&status(422)));
        let fenced = kube::Error::Service(Box::new(crate::fence::FenceError::NotLeader));
        assert!(!is_transient(&fenced));
        let away = kube::Error::Service(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(is_transient(&away));
    }

    #[tokio::test]
    async fn waiting_warnings_are_published_before_waiting_normal_events() {
        let (warning_tx, warning_rx) = mpsc::channel(8);
        let (normal_tx, normal_rx) = mpsc::channel(8);
        let node = Node::default();
        let make = |type_: &str, reason: &str| event(&node, "c", "i", type_, reason, String::new());
        normal_tx.try_send(make("Normal", "N1")).unwrap();
        normal_tx.try_send(make("Normal", "N2")).unwrap();
        warning_tx.try_send(make("Warning", "W1")).unwrap();
        warning_tx.try_send(make("Warning", "W2")).unwrap();
        drop((warning_tx, normal_tx));
        let order: Vec<String> = waiting(warning_rx, normal_rx)
            .map(|e| e.reason.unwrap())
            .collect()
            .await;
        assert_eq!(order, ["W1", "W2", "N1", "N2"]);
    }

    #[test]
    fn events_about_nodes_go_to_the_default_namespace() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                uid: Some("u2".into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        let event = event(&node, "c", "ccm-a", "Normal", "Synced", String::new());
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
        let regarding = event.regarding.unwrap();
        assert_eq!(
            (regarding.kind.as_deref(), regarding.namespace),
            (Some("Node"), None)
        );
    }
}
