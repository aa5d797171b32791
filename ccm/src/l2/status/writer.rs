//! The `L2Announced` writer: the latest wanted condition of each Service, applied in the
//! background with server-side apply under its own field manager (it owns that condition and
//! nothing else), retried with backoff while the API server is away or refuses. A newer wish
//! replaces an older one that was not written yet: when the API server comes back, each
//! Service gets the condition that is true then, once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use baremetal_ccm_core::l2::status::FIELD_MANAGER;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tokio::sync::Notify;

use crate::retry::Backoff;
use crate::writer::{self, Kind};

/// The wait after failed rounds of writes: 0.5 s, doubling up to 30 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

/// A Service by namespace and name.
pub(crate) type Key = (String, String);

#[derive(Debug, Default)]
struct Queue {
    /// What each Service should be told and is not yet.
    pending: BTreeMap<Key, Value>,
    /// What was written last for each Service, until the watch shows it (then nothing is
    /// wanted for it any more): a round that still sees the old condition in the cache would
    /// otherwise write it again.
    written: BTreeMap<Key, Value>,
}

/// Cheap to clone; the task ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    pending: Gauge,
}

impl Writer {
    /// Starts the writing task.
    pub(crate) fn start(client: Client, metrics: writer::Metrics, pending: Gauge) -> Writer {
        let writer = Writer {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
            pending,
        };
        let task = Task {
            queue: Arc::downgrade(&writer.queue),
            wake: writer.wake.clone(),
            client,
            metrics,
            gauge: writer.pending.clone(),
        };
        tokio::spawn(task.run());
        writer
    }

    /// `config` (a server-side apply configuration) is what `service` should be told now;
    /// `None`: nothing, it already says what it should.
    pub(crate) fn want(&self, service: Key, config: Option<Value>) {
        let mut queue = self.lock();
        match config {
            None => {
                queue.pending.remove(&service);
                queue.written.remove(&service);
            }
            Some(config) => {
                let repeated = (queue.written.get(&service))
                    .is_some_and(|written| same_but_for_time(written, &config));
                if repeated {
                    queue.pending.remove(&service);
                } else if queue.pending.get(&service) != Some(&config) {
                    queue.pending.insert(service, config);
                    self.wake.notify_one();
                }
            }
        }
        self.pending
            .set(i64::try_from(queue.pending.len()).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent after any single insert or remove.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Two configurations that differ at most in the condition's `lastTransitionTime` (a round
/// on a cache that has not seen our write yet computes the flip again, with a later time).
fn same_but_for_time(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(conditions) = v["status"]["conditions"].as_array_mut() {
            for condition in conditions {
                if let Some(c) = condition.as_object_mut() {
                    c.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

struct Task {
    queue: std::sync::Weak<Mutex<Queue>>,
    wake: Arc<Notify>,
    client: Client,
    metrics: writer::Metrics,
    gauge: Gauge,
}

impl Task {
    async fn run(self) {
        let mut failed = 0;
        loop {
            self.wake.notified().await;
            loop {
                let Some(batch) = self.batch() else { return };
                if batch.is_empty() {
                    break;
                }
                if self.write(batch).await {
                    failed = 0;
                } else {
                    failed += 1;
                    tokio::time::sleep(BACKOFF.delay(failed)).await;
                }
            }
        }
    }

    /// What is pending now; `None` once the writer is gone.
    fn batch(&self) -> Option<Vec<(Key, Value)>> {
        let queue = self.queue.upgrade()?;
        let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
        Some(queue.pending.clone().into_iter().collect())
    }

    /// Writes `batch`; whether every write succeeded.
    async fn write(&self, batch: Vec<(Key, Value)>) -> bool {
        let mut all = true;
        for (key, config) in batch {
            let (namespace, name) = &key;
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let result = (self.metrics)
                .measure(
                    Kind::Service,
                    api.patch_status(name, &params, &Patch::Apply(&config)),
                )
                .await;
            let done = match result {
                Ok(_) => {
                    tracing::debug!(namespace, name, "wrote the L2Announced condition");
                    true
                }
                // Deleted meanwhile: nothing to tell it.
                Err(kube::Error::Api(status)) if status.code == 404 => true,
                Err(error) => {
                    tracing::warn!(namespace, name, error = %crate::error_chain(&error), "writing the L2Announced condition failed; retrying");
                    all = false;
                    false
                }
            };
            if done {
                self.finished(key, config);
            }
        }
        all
    }

    /// `config` is written: it is no longer pending, unless something newer replaced it.
    fn finished(&self, key: Key, config: Value) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.pending.get(&key) == Some(&config) {
            queue.pending.remove(&key);
            queue.written.insert(key, config);
        }
        self.gauge
            .set(i64::try_from(queue.pending.len()).unwrap_or(i64::MAX));
    }
}
