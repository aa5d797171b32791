//! The IPPool status writer: applies the status patches the core's `pool_status` plans, each
//! measured (`baremetal_ccm_writer_*{resource="ippools"}`).

use baremetal_ccm_core::write::Patch;
use kube::Client;
use kube::api::Api;

use crate::crd::ippool::IPPool;
use crate::writer::{self, Kind};

pub(super) struct PoolStatusWriter {
    api: Api<IPPool>,
    metrics: writer::Metrics,
}

impl PoolStatusWriter {
    pub(super) fn new(client: Client, metrics: writer::Metrics) -> Self {
        Self {
            api: Api::all(client),
            metrics,
        }
    }

    /// Applies one planned status patch to the pool `name`.
    pub(super) async fn apply(&self, name: &str, patch: &Patch) -> Result<(), kube::Error> {
        (self
            .metrics
            .patch(Kind::IPPool, &self.api, name, patch)
            .await)
            .map(drop)
    }
}
