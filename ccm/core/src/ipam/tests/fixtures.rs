//! Builders for pools and Service requests, so that each test reads as its story.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ipam::{
    Allocator, Assignment, Family, IpFamilyPolicy, Pool, PoolSpec, Protocol, SelectorSpec,
    ServiceKey, ServiceRequest,
};

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub(super) fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The addresses of an assignment, in order.
pub(super) fn addresses(assignment: &Assignment) -> Vec<IpAddr> {
    assignment.addresses.iter().map(|a| a.address).collect()
}

pub(super) fn allocator(pools: impl IntoIterator<Item = PoolBuilder>) -> Allocator {
    Allocator::new(pools.into_iter().map(PoolBuilder::build).collect()).unwrap()
}

/// A pool with the resource's defaults.
pub(super) fn pool(name: &str, addresses: &[&str]) -> PoolBuilder {
    PoolBuilder(PoolSpec::new(name, addresses))
}

#[derive(Debug, Clone)]
pub(super) struct PoolBuilder(pub(super) PoolSpec);

impl PoolBuilder {
    pub(super) fn priority(mut self, priority: i32) -> Self {
        self.0.priority = priority;
        self
    }

    /// autoAssign: false.
    pub(super) fn manual(mut self) -> Self {
        self.0.auto_assign = false;
        self
    }

    pub(super) fn avoid_buggy_ips(mut self) -> Self {
        self.0.avoid_buggy_ips = true;
        self
    }

    pub(super) fn cross_namespace_sharing(mut self) -> Self {
        self.0.allow_cross_namespace_sharing = true;
        self
    }

    pub(super) fn namespaces(mut self, namespaces: &[&str]) -> Self {
        self.0.scope.namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub(super) fn namespace_labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.scope.namespace_selector = Some(SelectorSpec {
            match_labels: labels(pairs),
            ..SelectorSpec::default()
        });
        self
    }

    pub(super) fn service_labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.scope.service_selector = Some(SelectorSpec {
            match_labels: labels(pairs),
            ..SelectorSpec::default()
        });
        self
    }

    pub(super) fn build(self) -> Pool {
        Pool::new(&self.0).unwrap()
    }
}

/// A SingleStack IPv4 Service in `namespace`, created at time 0.
pub(super) fn service(namespace: &str, name: &str) -> ServiceBuilder {
    ServiceBuilder(ServiceRequest::new(ServiceKey::new(namespace, name), 0))
}

#[derive(Debug, Clone)]
pub(super) struct ServiceBuilder(pub(super) ServiceRequest);

impl ServiceBuilder {
    pub(super) fn created(mut self, seconds: i64) -> Self {
        self.0.created = seconds;
        self
    }

    pub(super) fn families(mut self, policy: IpFamilyPolicy, families: &[Family]) -> Self {
        self.0.ip_family_policy = policy;
        self.0.ip_families = families.to_vec();
        self
    }

    /// RequireDualStack, IPv4 first.
    pub(super) fn dual_stack(self) -> Self {
        self.families(IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6])
    }

    /// PreferDualStack, IPv4 first.
    pub(super) fn prefer_dual_stack(self) -> Self {
        self.families(IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6])
    }

    pub(super) fn ipv6(self) -> Self {
        self.families(IpFamilyPolicy::SingleStack, &[Family::V6])
    }

    pub(super) fn pool(mut self, pool: &str) -> Self {
        self.0.pool = Some(pool.to_owned());
        self
    }

    pub(super) fn requesting(mut self, addresses: &[&str]) -> Self {
        self.0.requested = ips(addresses);
        self
    }

    pub(super) fn sharing_key(mut self, key: &str) -> Self {
        self.0.sharing_key = Some(key.to_owned());
        self
    }

    pub(super) fn tcp(mut self, port: u16) -> Self {
        self.0.ports.push((Protocol::Tcp, port));
        self
    }

    pub(super) fn udp(mut self, port: u16) -> Self {
        self.0.ports.push((Protocol::Udp, port));
        self
    }

    pub(super) fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.service_labels = labels(pairs);
        self
    }

    pub(super) fn namespace_labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.namespace_labels = labels(pairs);
        self
    }

    pub(super) fn key(&self) -> ServiceKey {
        self.0.key.clone()
    }

    pub(super) fn request(&self) -> &ServiceRequest {
        &self.0
    }
}

/// Assigns and returns the addresses, failing the test on a refusal.
pub(super) fn assign_ok(allocator: &mut Allocator, service: &ServiceBuilder) -> Vec<IpAddr> {
    match allocator.assign(service.request()) {
        Ok(assignment) => addresses(&assignment),
        Err(pending) => panic!("{} is pending: {pending}", service.key()),
    }
}
