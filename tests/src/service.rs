//! Services as tests write and read them: a fixture builder, the addresses and conditions
//! the controller sets, and the Events it publishes.

use k8s_openapi::api::core::v1::{Event, Service, ServicePort, ServiceSpec};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::ccm::WAIT;
use crate::process::wait_for;

/// A Service fixture builder.
#[derive(Debug, Clone)]
pub struct Svc {
    pub service: Service,
}

impl Svc {
    pub fn lb(namespace: &str, name: &str) -> Self {
        Self {
            service: Service {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(namespace.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".into()),
                    ports: Some(vec![ServicePort {
                        port: 80,
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            },
        }
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.service
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }

    pub fn port(mut self, protocol: &str, port: i32) -> Self {
        let spec = self.service.spec.as_mut().expect("fixture has a spec");
        spec.ports = Some(vec![ServicePort {
            port,
            protocol: Some(protocol.into()),
            ..ServicePort::default()
        }]);
        self
    }

    pub fn class(mut self, class: &str) -> Self {
        self.service
            .spec
            .as_mut()
            .expect("fixture has a spec")
            .load_balancer_class = Some(class.into());
        self
    }

    pub fn families(mut self, policy: &str, families: &[&str]) -> Self {
        let spec = self.service.spec.as_mut().expect("fixture has a spec");
        spec.ip_family_policy = Some(policy.into());
        spec.ip_families = Some(families.iter().map(|f| (*f).to_owned()).collect());
        self
    }

    pub fn load_balancer_ip(mut self, ip: &str) -> Self {
        self.service
            .spec
            .as_mut()
            .expect("fixture has a spec")
            .load_balancer_ip = Some(ip.into());
        self
    }

    /// No NodePorts (`allocateLoadBalancerNodePorts: false`): thousands of Services would
    /// exceed the NodePort range.
    pub fn without_node_ports(mut self) -> Self {
        self.service
            .spec
            .as_mut()
            .expect("fixture has a spec")
            .allocate_load_balancer_node_ports = Some(false);
        self
    }

    pub async fn create(self, client: &Client) -> Service {
        let namespace = self
            .service
            .metadata
            .namespace
            .clone()
            .expect("fixture has a namespace");
        Api::<Service>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &self.service)
            .await
            .expect("service created")
    }
}

/// The `ip`s in the Service's status, with their `ipMode`.
pub fn ingress(service: &Service) -> Vec<(String, Option<String>)> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.ip.unwrap_or_default(), i.ip_mode))
        .collect()
}

/// Waits until the Service has `count` ingress addresses and returns them.
pub async fn wait_addresses(
    client: &Client,
    namespace: &str,
    name: &str,
    count: usize,
) -> Vec<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let service = api.get(name).await.ok()?;
            let ips = ingress(&service);
            (ips.len() == count).then(|| ips.into_iter().map(|(ip, _)| ip).collect::<Vec<_>>())
        }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!("{namespace}/{name} did not get {count} address(es) within {WAIT:?}")
    })
}

/// Our condition of type `type_` on the Service: (status, reason, message).
pub fn condition(service: &Service, type_: &str) -> Option<(String, String, String)> {
    service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the Service carries condition `type_` with `status` and returns (reason, message).
pub async fn wait_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> (String, String) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let service = api.get(name).await.ok()?;
            let (s, reason, message) = condition(&service, type_)?;
            (s == status).then_some((reason, message))
        }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!("{namespace}/{name} did not get {type_}={status} within {WAIT:?}")
    })
}

/// Events our controllers published about one object, as (type, reason, message). Events
/// of other reporters are left out: the apiserver's own repair loops may report on a Service
/// (`ClusterIPNotAllocated` under load), and that is not ours to assert on.
pub async fn events_for(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params)
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| {
            (e.reporting_component.as_deref()).is_some_and(|c| c.starts_with("baremetal-ccm.io/"))
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until an Event with `reason` exists for the object and returns its message.
pub async fn wait_event(client: &Client, namespace: &str, name: &str, reason: &str) -> String {
    let found = wait_for(WAIT, || async {
        events_for(client, namespace, name)
            .await
            .into_iter()
            .find(|(_, r, _)| r == reason)
            .map(|(_, _, m)| m)
    })
    .await;
    found.unwrap_or_else(|| panic!("no {reason} event for {namespace}/{name} within {WAIT:?}"))
}

/// Sets a Service's status the way another implementation would (an address, no annotation of
/// ours).
pub async fn set_ingress(client: &Client, namespace: &str, name: &str, ip: &str) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let status =
        serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patched");
}
