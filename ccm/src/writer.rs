//! Applies the core's planned writes ([`Patch`]) to the API server and measures each one:
//! the mechanism every per-kind writer (`service_lb::writer`, `service_lb::pool_writer`,
//! `cloud_node::writer`) goes through, so all of them have latency and error metrics.

use std::fmt::Debug;
use std::time::Instant;

use baremetal_ccm_core::write::Patch;
use kube::api::{Api, PatchParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;

use crate::fence::FenceError;

/// The kinds of object the controllers write, as the metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Service,
    Node,
    IPPool,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Node => "nodes",
            Kind::IPPool => "ippools",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    resource: &'static str,
    /// A bounded class of the failure, never its text.
    reason: &'static str,
}

/// The writers' metrics; cheap to clone (handles share their values).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    duration: Family<ResourceLabels, Histogram>,
    errors: Family<ErrorLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            errors: Family::default(),
        };
        let sub = registry.sub_registry_with_prefix("writer");
        sub.register(
            "patch_duration_seconds",
            "Duration of each write (patch or delete) to the API server, by resource",
            metrics.duration.clone(),
        );
        sub.register(
            "patch_errors",
            "Failed writes to the API server, by resource and reason",
            metrics.errors.clone(),
        );
        metrics
    }

    /// Times `write` and counts its failure, if it fails.
    pub(crate) async fn measure<T>(
        &self,
        kind: Kind,
        write: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        let started = Instant::now();
        let result = write.await;
        let resource = kind.label();
        (self.duration.get_or_create(&ResourceLabels { resource }))
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            let reason = reason(error);
            self.errors
                .get_or_create(&ErrorLabels { resource, reason })
                .inc();
        }
        result
    }

    /// Applies one planned patch to the object `name` (to its status subresource for
    /// [`Patch::Status`]) and returns the object as written.
    pub(crate) async fn patch<K>(
        &self,
        kind: Kind,
        api: &Api<K>,
        name: &str,
        patch: &Patch,
    ) -> Result<K, kube::Error>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let params = PatchParams::default();
        let merge = kube::api::Patch::Merge(patch.body());
        self.measure(kind, async {
            if patch.is_status() {
                api.patch_status(name, &params, &merge).await
            } else {
                api.patch(name, &params, &merge).await
            }
        })
        .await
    }
}

/// The error class the metrics count a failed write under.
pub(crate) fn reason(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.code == 409 => "conflict",
        kube::Error::Api(status) if status.code == 404 => "not_found",
        kube::Error::Api(status) if status.code == 403 => "forbidden",
        kube::Error::Api(status) if status.code == 422 => "invalid",
        error if FenceError::is_in(error) => "not_leader",
        _ => "api",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({ "code": code })).unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn failed_writes_are_counted_by_a_bounded_reason() {
        let reasons: Vec<&str> = [409, 404, 403, 422, 500]
            .map(|code| reason(&status(code)))
            .into();
        assert_eq!(
            reasons,
            ["conflict", "not_found", "forbidden", "invalid", "api"]
        );
        let fenced = kube::Error::Service(Box::new(FenceError::NotLeader));
        assert_eq!(reason(&fenced), "not_leader");
    }

    #[tokio::test]
    async fn a_write_is_timed_and_a_failure_counted_under_its_resource() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let ok: Result<(), kube::Error> = metrics.measure(Kind::Node, async { Ok(()) }).await;
        assert!(ok.is_ok());
        let failed = metrics
            .measure(Kind::IPPool, async { Err::<(), _>(status(409)) })
            .await;
        assert!(failed.is_err());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"writer_patch_errors_total{resource="ippools",reason="conflict"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"writer_patch_duration_seconds_count{resource="nodes"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"resource="nodes",reason"#), "{text}");
    }
}
