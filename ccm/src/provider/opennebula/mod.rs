//! The OpenNebula instance provider: nodes are VMs, found through the XML-RPC API by
//! providerID `one://<VMID>`, else by name, else by system UUID.
//!
//! Lookups read a cached `one.vmpool.infoextended` (bounded staleness, one refresh at a time,
//! a minimum interval between API calls). A machine is reported gone only on a definite,
//! fresh answer: `one.vm.info` of the providerID's VM says NO_EXISTS or DONE. Errors are
//! errors, never "gone".

pub(crate) mod api;
pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod lookup;
pub(crate) mod mapping;
pub(crate) mod pool_cache;
pub(crate) mod rate_limit;
pub(crate) mod transport;
pub(crate) mod vm;
pub(crate) mod xmlrpc;

#[cfg(test)]
#[path = "tests/fixtures.rs"]
mod fixtures;

use std::fmt;
use std::time::Duration;

use tracing::{debug, info, warn};

pub use config::Config;
pub use error::OpenNebulaError;

use self::api::Api;
use self::config::AttributePath;
use self::lookup::{Match, Pool};
use self::mapping::Mapping;
use self::pool_cache::{Fetched, PoolCache};
use self::transport::Transport;
use self::vm::{Vm, VmState};
use crate::provider::{
    InstanceMetadata, InstanceProvider, InstanceState, NodeQuery, ProviderError,
};

/// The provider; cheap to share behind an `Arc`, answers concurrently.
pub struct OpenNebula {
    api: Api,
    cache: PoolCache<Pool, OpenNebulaError>,
    mapping: Mapping,
    paths: Vec<AttributePath>,
    cache_ttl: Duration,
    min_interval: Duration,
}

impl fmt::Debug for OpenNebula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenNebula")
            .field("api", &self.api)
            .field("mapping", &self.mapping)
            .field("cache_ttl", &self.cache_ttl)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

/// Where a node's VM stands.
enum Located {
    Vm(Vm),
    /// OpenNebula said so just now: the VM does not exist or is DONE.
    Gone {
        id: u32,
        reason: &'static str,
    },
}

impl OpenNebula {
    /// Checks `config`, reads the credentials (the Secret through `kube`, which only that
    /// source needs) and prepares the HTTP client. Makes no API call.
    pub async fn connect(
        config: &Config,
        kube: Option<&kube::Client>,
    ) -> Result<OpenNebula, OpenNebulaError> {
        config.validate()?;
        let endpoint = config.endpoint_uri()?;
        let session = credentials::load(&config.credentials, kube).await?;
        if config.tls.insecure_skip_verify {
            warn!(
                endpoint = %endpoint,
                "OpenNebula server certificate is not verified (tls.insecureSkipVerify)"
            );
        }
        if config.allow_insecure_http && endpoint.scheme_str() == Some("http") {
            warn!(
                endpoint = %endpoint,
                "OpenNebula credentials are sent in clear (allowInsecureHttp)"
            );
        }
        let transport = Transport::new(endpoint.clone(), &config.tls, config.timeout)
            .await
            .map_err(|e| OpenNebulaError::Setup(Box::new(e)))?
            .with_max_response(config.max_response_bytes);
        let mapping = Mapping::from_config(config);
        info!(endpoint = %endpoint, user = session.user(), "OpenNebula provider configured");
        Ok(OpenNebula {
            api: Api::new(transport, session, config.min_interval),
            cache: PoolCache::new(),
            paths: mapping.attribute_paths(),
            mapping,
            cache_ttl: config.cache_ttl,
            min_interval: config.min_interval,
        })
    }

    /// The VM pool, at most `max_age` old.
    async fn pool(&self, max_age: Duration) -> Result<Fetched<Pool>, ProviderError> {
        let fetch = || async { Ok(Pool::new(self.api.vm_pool(&self.paths).await?)) };
        self.cache
            .get(max_age, fetch)
            .await
            .map_err(OpenNebulaError::shared_into_provider_error)
    }

    async fn locate(&self, node: &NodeQuery) -> Result<Located, ProviderError> {
        match node.provider_id.as_deref().filter(|p| !p.is_empty()) {
            Some(provider_id) => self.by_id(lookup::parse_provider_id(provider_id)?).await,
            None => self.by_name_or_uuid(node).await.map(Located::Vm),
        }
    }

    /// The VM of a providerID: from the pool when it is there, else (a VM newer than the pool,
    /// or one that is gone) from a direct `one.vm.info`, which alone may say "gone".
    async fn by_id(&self, id: u32) -> Result<Located, ProviderError> {
        let pool = self.pool(self.cache_ttl).await?;
        if let Some(vm) = pool.value.by_id(id).filter(|vm| vm.state != VmState::Done) {
            return Ok(Located::Vm(vm.clone()));
        }
        debug!(
            vm = id,
            "VM not in the cached pool; asking OpenNebula directly"
        );
        match self.api.vm_info(id, &self.paths).await {
            Ok(vm) if vm.state == VmState::Done => Ok(Located::Gone {
                id,
                reason: "is DONE",
            }),
            Ok(vm) => Ok(Located::Vm(vm)),
            Err(OpenNebulaError::NoSuchVm { .. }) => Ok(Located::Gone {
                id,
                reason: "does not exist",
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// The VM of a node without providerID. A miss refreshes the pool once if it is older
    /// than the minimum interval (the VM may be newer than the pool).
    async fn by_name_or_uuid(&self, node: &NodeQuery) -> Result<Vm, ProviderError> {
        let mut pool = self.pool(self.cache_ttl).await?;
        if pool.value.find(node) == Match::None {
            let newer = self.pool(self.min_interval).await?;
            if !newer.same_fetch(&pool) {
                pool = newer;
            }
        }
        match pool.value.find(node) {
            Match::One(vm, by) => {
                debug!(node = %node.name, vm = vm.id, by = ?by, "Node matched a VM");
                Ok(vm.clone())
            }
            Match::Several(vms) => Err(ProviderError::Ambiguous {
                node: node.name.clone(),
                candidates: lookup::describe(&vms),
            }),
            Match::None => Err(ProviderError::NotFound {
                node: node.name.clone(),
                detail: not_found_detail(node, pool.value.len()),
            }),
        }
    }
}

fn not_found_detail(node: &NodeQuery, listed: usize) -> String {
    let uuid = match node.system_uuid.as_deref() {
        Some(uuid) if !uuid.trim().is_empty() => format!(" and none has system UUID {uuid}"),
        _ => String::new(),
    };
    format!(
        "no VM is named {:?}{uuid} among the {listed} VMs OpenNebula lists (DONE VMs excluded)",
        node.name
    )
}

impl InstanceProvider for OpenNebula {
    fn name(&self) -> &'static str {
        "opennebula"
    }

    async fn metadata(&self, node: &NodeQuery) -> Result<InstanceMetadata, ProviderError> {
        match self.locate(node).await? {
            Located::Vm(vm) => self
                .mapping
                .metadata(&vm)
                .map_err(|e| OpenNebulaError::Mapping(e).into_provider_error()),
            Located::Gone { id, reason } => Err(ProviderError::NotFound {
                node: node.name.clone(),
                detail: format!(
                    "VM {id} of providerID {} {reason}",
                    mapping::provider_id(id)
                ),
            }),
        }
    }

    async fn state(&self, node: &NodeQuery) -> Result<InstanceState, ProviderError> {
        match self.locate(node).await? {
            Located::Vm(vm) => Ok(mapping::instance_state(&vm)),
            Located::Gone { id, reason } => {
                debug!(node = %node.name, vm = id, reason, "VM confirmed gone by one.vm.info");
                Ok(InstanceState::Gone)
            }
        }
    }
}
