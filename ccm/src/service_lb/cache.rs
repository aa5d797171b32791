//! What the controller keeps of a Service in its cache: only what deciding reads, so that
//! memory follows the Services we serve, not every Service of the cluster, and that packed
//! ([`CachedService`]), so that each costs a fraction of a k8s-openapi `Service`.

use std::borrow::Cow;

use baremetal_ccm_core::contract::{METALLB_IPS, METALLB_POOL, METALLB_SHARING_KEY};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::ResourceExt as _;
use kube::api::ObjectMeta;

use super::class::{ClassPolicy, is_anothers, is_ours};
use super::status;

/// The prefix of our annotations.
const OUR_PREFIX: &str = "baremetal-ccm.io/";

/// A Service as the cache keeps it: slimmed ([`slim`]), then packed: its namespace and name in
/// the metadata that kube's store and controller read, the rest as abbreviated JSON
/// ([`abbreviate`]), decoded for each reconcile ([`CachedService::service`]).
///
/// Why packed: a k8s-openapi `Service` is about 830 bytes inline even when empty, and every
/// map in it costs a whole B-tree node (over 500 bytes for one annotation), so a slimmed Service
/// of ours still took about 2.7 KiB of heap; packed, about 0.7 KiB (`hack/bench service_memory`).
/// Decoding costs a few microseconds per reconcile, against the milliseconds of a write.
#[derive(Debug, Clone)]
pub struct CachedService {
    /// Only the namespace and the name: the store's key and the controller's requests read
    /// no more, and everything else is in `rest`.
    metadata: ObjectMeta,
    /// The slimmed Service without its namespace and name, as abbreviated JSON.
    rest: Box<str>,
}

impl CachedService {
    /// `service` as the cache keeps it: slimmed under `policy`, then packed.
    pub fn new(mut service: Service, policy: ClassPolicy) -> Self {
        slim(&mut service, policy);
        Self::pack(service)
    }

    fn pack(mut service: Service) -> Self {
        let metadata = ObjectMeta {
            name: service.metadata.name.take(),
            namespace: service.metadata.namespace.take(),
            ..ObjectMeta::default()
        };
        let json = serde_json::to_string(&service)
            .expect("a Service encodes to JSON: it holds only strings, numbers, lists and maps");
        Self {
            metadata,
            rest: abbreviate(json).into_boxed_str(),
        }
    }

    /// The Service as [`slim`] left it, equal to it field for field: its times are whole seconds,
    /// as the API server sends them (`metav1.Time` has no fraction on the wire), and JSON keeps
    /// those exactly.
    pub fn service(&self) -> Service {
        let mut service: Service = serde_json::from_str(&expand(&self.rest))
            .expect("the cache decodes only the JSON it encoded from a Service");
        service.metadata.name.clone_from(&self.metadata.name);
        service
            .metadata
            .namespace
            .clone_from(&self.metadata.namespace);
        service
    }
}

/// What [`abbreviate`] replaces, each with one control character (the first with U+0001, the
/// second with U+0002, …): what every cached Service of ours spells out. Their order changes only
/// how much is saved, never what [`expand`] gives back. Compact JSON holds no control character (in strings they are escaped as
/// `\u00XX`, and there is no whitespace between tokens), so [`expand`] cannot misread one; at most
/// 31 (U+0001 to U+001F).
const WORDS: [&str; 25] = [
    r#"{"apiVersion":"v1","kind":"Service","metadata":{"#,
    r#""annotations":{"baremetal-ccm.io/allocated-from":""#,
    r#""finalizers":["service.kubernetes.io/load-balancer-cleanup"],"#,
    r#""creationTimestamp":""#,
    r#""managedFields":[],"#,
    r#""resourceVersion":""#,
    r#""uid":""#,
    r#""spec":{"#,
    r#""ipFamilies":["IPv4"]"#,
    r#""ipFamilies":["IPv6"]"#,
    r#""ipFamilies":["IPv4","IPv6"]"#,
    r#""ipFamilies":["IPv6","IPv4"]"#,
    r#""ipFamilyPolicy":"SingleStack""#,
    r#""ipFamilyPolicy":"PreferDualStack""#,
    r#""ipFamilyPolicy":"RequireDualStack""#,
    r#""ports":[{"port":"#,
    r#","protocol":"TCP"}"#,
    r#""type":"LoadBalancer"}"#,
    r#""status":{"conditions":[{"lastTransitionTime":""#,
    r#""message":""#,
    r#""reason":""#,
    r#""status":"True","type":"baremetal-ccm.io/Address"#,
    r#""loadBalancer":{"ingress":[{"ip":""#,
    r#"","ipMode":"VIP"}"#,
    " from pool ",
];

// A 32nd word would be abbreviated to a space, which JSON strings hold.
const _: () = assert!(WORDS.len() <= 31, "only U+0001 to U+001F abbreviate");

/// `json` with every one of [`WORDS`] replaced by its control character.
fn abbreviate(mut json: String) -> String {
    for (word, short) in WORDS.iter().zip('\u{1}'..) {
        if json.contains(word) {
            json = json.replace(word, short.encode_utf8(&mut [0; 4]));
        }
    }
    json
}

/// What [`abbreviate`] was given.
fn expand(short: &str) -> String {
    let mut json = String::with_capacity(short.len() * 3);
    for c in short.chars() {
        match u32::from(c).checked_sub(1).map(|i| WORDS.get(i as usize)) {
            Some(Some(word)) => json.push_str(word),
            _ => json.push(c),
        }
    }
    json
}

/// A cached Service is a Service to kube (the same kind, scope and API).
impl kube::Resource for CachedService {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Service::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        Service::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        Service::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        Service::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// kube's `Controller` asks that the objects it runs on can be deserialized; the controller
/// never does it (its watch reads Services and caches them with [`CachedService::new`]). One
/// read this way is packed whole, without slimming, since no class policy is at hand.
impl<'de> serde::Deserialize<'de> for CachedService {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Service::deserialize(deserializer).map(Self::pack)
    }
}

/// Drops from a cached Service what deciding never reads, so that memory follows the
/// Services we serve: managedFields, the annotations deciding does not read (kubectl's
/// last-applied copy among them: with managedFields most of an object's size), the spec fields
/// of routing and node ports, and, for a Service that is not ours and carries none of our
/// state, everything but what says whether it is ours.
///
/// A Service not ours carries our state when it holds the cleanup finalizer and is not
/// another implementation's (`class::is_anothers`: the finalizer is every implementation's,
/// only our `allocated-from` annotation marks our writes): its release reads the rest. One of
/// another implementation is never read past that rule, finalizer or not, so it is kept as
/// small as one without (the rule still holds on what is kept: type and class, no annotation).
pub fn slim(service: &mut Service, policy: ClassPolicy) {
    service.managed_fields_mut().clear();
    if let Some(annotations) = service.metadata.annotations.as_mut() {
        annotations.retain(|key, _| is_read(key));
    }
    if !carries_our_state(service, policy) {
        service.metadata.annotations = None;
        service.metadata.labels = None;
        service.metadata.owner_references = None;
        service.status = None;
        service.spec = service.spec.take().map(|spec| ServiceSpec {
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            ..ServiceSpec::default()
        });
        return;
    }
    if let Some(spec) = service.spec.as_mut() {
        *spec = ServiceSpec {
            type_: spec.type_.take(),
            load_balancer_class: spec.load_balancer_class.take(),
            load_balancer_ip: spec.load_balancer_ip.take(),
            ip_families: spec.ip_families.take(),
            ip_family_policy: spec.ip_family_policy.take(),
            ports: spec.ports.take().map(|ports| {
                (ports.into_iter())
                    .map(|p| ServicePort {
                        port: p.port,
                        protocol: p.protocol,
                        ..ServicePort::default()
                    })
                    .collect()
            }),
            ..ServiceSpec::default()
        };
    }
}

/// Whether deciding reads the annotation `key`: ours (`baremetal-ccm.io/…`) and the MetalLB ones
/// read in their place (`request::read`). Every other annotation (kubectl's last-applied copy,
/// Helm's and Argo CD's marks, …) is dropped from the cache.
fn is_read(key: &str) -> bool {
    key.starts_with(OUR_PREFIX)
        || [METALLB_IPS, METALLB_POOL, METALLB_SHARING_KEY]
            .iter()
            .any(|names| names.contains(&key))
}

/// Whether deciding reads more of `service` than whether it is ours: it is ours, it is being
/// deleted, or it holds the cleanup finalizer without being another implementation's.
fn carries_our_state(service: &Service, policy: ClassPolicy) -> bool {
    let finalized = (service.metadata.finalizers.iter().flatten()).any(|f| f == status::FINALIZER);
    is_ours(service, policy)
        || service.metadata.deletion_timestamp.is_some()
        || (finalized && !is_anothers(service, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use baremetal_ccm_core::contract::{ALLOCATED_FROM, LOAD_BALANCER_CLASS, held_addresses};
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ManagedFieldsEntry, Time};

    use crate::crd::ippool::IPPool;
    use crate::service_lb::decide::Decider;
    use crate::service_lb::request::Reading;

    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    use kube::api::ObjectMeta;

    fn full(class: Option<&str>, finalized: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_owned(), "{...}".to_owned()),
                        ("meta.helm.sh/release-name".to_owned(), "web".to_owned()),
                        ("metallb.io/allow-shared-ip".to_owned(), "k".to_owned()),
                        ("baremetal-ccm.io/pool".to_owned(), "a".to_owned()),
                    ]
                    .into(),
                ),
                finalizers: finalized.then(|| vec![status::FINALIZER.to_owned()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(Into::into),
                cluster_ip: Some("10.96.0.10".into()),
                selector: Some([("app".to_owned(), "web".to_owned())].into()),
                ip_families: Some(vec!["IPv4".into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    node_port: Some(31000),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn slim_keeps_what_deciding_reads() {
        let mut ours = full(None, false);
        slim(&mut ours, ClassPolicy::DefaultAndExplicit);
        assert!(
            ours.metadata
                .managed_fields
                .as_ref()
                .is_none_or(Vec::is_empty)
        );
        let annotations = ours.metadata.annotations.clone().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert!(!annotations.contains_key("meta.helm.sh/release-name"));
        assert_eq!(annotations["metallb.io/allow-shared-ip"], "k");
        assert_eq!(annotations["baremetal-ccm.io/pool"], "a");
        assert!(ours.metadata.labels.is_some());
        let spec = ours.spec.clone().unwrap();
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.ip_families, Some(vec!["IPv4".into()]));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(
            (port.port, port.protocol.as_deref(), port.node_port),
            (80, Some("TCP"), None)
        );
        assert!(is_ours(&ours, ClassPolicy::DefaultAndExplicit));
    }

    #[test]
    fn slim_reduces_foreign_services_to_what_says_they_are_not_ours() {
        let mut foreign = full(Some("example.com/other"), false);
        slim(&mut foreign, ClassPolicy::DefaultAndExplicit);
        assert!(foreign.metadata.annotations.is_none() && foreign.metadata.labels.is_none());
        assert_eq!(foreign.metadata.uid.as_deref(), Some("u1"));
        let spec = foreign.spec.clone().unwrap();
        assert_eq!(
            spec.load_balancer_class.as_deref(),
            Some("example.com/other")
        );
        assert!(spec.ports.is_none());
        // One that still carries our finalizer and our mark (its class changed after we
        // addressed it) keeps its state for the release.
        let mut leaving = full(Some("example.com/other"), true);
        leaving
            .annotations_mut()
            .insert(ALLOCATED_FROM.into(), "a".into());
        slim(&mut leaving, ClassPolicy::DefaultAndExplicit);
        assert!(
            leaving
                .metadata
                .annotations
                .unwrap()
                .contains_key("baremetal-ccm.io/pool")
        );
    }

    #[test]
    fn another_implementations_service_with_the_shared_finalizer_is_cached_as_small_as_one_without()
    {
        let mut theirs = addressed(Some("example.com/other"), false);
        slim(&mut theirs, ClassPolicy::DefaultAndExplicit);
        assert!(theirs.metadata.annotations.is_none() && theirs.status.is_none());
        assert!(theirs.spec.as_ref().unwrap().ports.is_none());
        // What the rule that leaves it alone reads is kept.
        assert!(is_anothers(&theirs, ClassPolicy::DefaultAndExplicit));
        assert_eq!(
            theirs.metadata.finalizers,
            Some(vec![status::FINALIZER.to_owned()])
        );
    }

    fn bench_pool() -> Arc<IPPool> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool",
                "metadata": {"name": "bench", "resourceVersion": "1"},
                "spec": {"addresses": ["2001:db8:100::/104"], "announce": {"mode": "none"}},
            }))
            .unwrap(),
        )
    }

    /// A Service as the API returns it after our writes (finalizer, mark, address, condition,
    /// as the decider wants them, so that nothing is left to write), then given `class`.
    fn addressed(class: Option<&str>, marked: bool) -> Service {
        let mut service = full(None, true);
        service.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        (service.annotations_mut()).insert("baremetal-ccm.io/pool".into(), "bench".into());
        let mut decider = Decider::new(Reading { metallb: true });
        decider.refresh_pools(&[bench_pool()]);
        let desired = decider
            .decide(&service, &|_: &str| std::collections::BTreeMap::new())
            .desired;
        let when = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    (desired.ingress.iter())
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ip_mode: Some("VIP".into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            conditions: Some(
                (desired.conditions.iter())
                    .map(|c| Condition {
                        type_: c.type_.into(),
                        status: if c.status { "True" } else { "False" }.into(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        observed_generation: None,
                        last_transition_time: when.clone(),
                    })
                    .collect(),
            ),
        });
        if marked {
            let from = desired.allocated_from.clone().unwrap();
            service
                .annotations_mut()
                .insert(ALLOCATED_FROM.into(), from);
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let left = status::plan_with_finalizer(&service, &desired, now);
        assert!(
            !marked || left.is_empty(),
            "the fixture is what our writes leave"
        );
        service.metadata.name = Some(format!("web-{}", class.unwrap_or("ours")));
        service.spec.as_mut().unwrap().load_balancer_class = class.map(Into::into);
        service
    }

    /// Everything the reconcile reads of a cached Service, on the full object and on the
    /// slimmed one, must be the same: the rules (ours, another's), the decision, the planned
    /// writes, the release, and the addresses held.
    #[test]
    fn a_slimmed_service_decides_and_plans_exactly_as_the_full_one() {
        let policy = ClassPolicy::DefaultAndExplicit;
        let pool = bench_pool();
        let mut deleting = addressed(None, true);
        // Whole seconds, as the API server's times always are (`metav1.Time` is RFC 3339 to
        // the second): the cache's JSON keeps no more.
        let second = k8s_openapi::jiff::Timestamp::now().as_second();
        deleting.metadata.deletion_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
        ));
        let mut fresh = full(None, false);
        fresh.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        let cases = [
            fresh,
            addressed(None, true),
            addressed(Some(LOAD_BALANCER_CLASS), true),
            addressed(Some("example.com/other"), true),
            addressed(Some("example.com/other"), false),
            deleting,
        ];
        let no_labels = |_: &str| std::collections::BTreeMap::new();
        let now = k8s_openapi::jiff::Timestamp::now();
        for full in cases {
            let mut slimmed = full.clone();
            slim(&mut slimmed, policy);
            let name = full.name_any();
            // What the reconcile reads is what the cache gives back: the slimmed Service, exactly.
            let cached = CachedService::new(full.clone(), policy);
            assert_eq!(cached.service(), slimmed, "{name}: cached");
            let slimmed = cached.service();
            assert_eq!(is_ours(&full, policy), is_ours(&slimmed, policy), "{name}");
            let anothers = is_anothers(&full, policy);
            assert_eq!(anothers, is_anothers(&slimmed, policy), "{name}");
            if anothers {
                continue;
            }
            let mut deciders = [&full, &slimmed].map(|service| {
                let mut decider = Decider::new(Reading { metallb: true });
                decider.refresh_pools(std::slice::from_ref(&pool));
                let outcome = decider.decide(service, &no_labels);
                let plan = status::plan_with_finalizer(service, &outcome.desired, now);
                (decider, outcome, plan)
            });
            assert_eq!(deciders[0].1, deciders[1].1, "{name}: outcome");
            assert_eq!(deciders[0].2, deciders[1].2, "{name}: planned writes");
            assert_eq!(
                status::plan_release(&full),
                status::plan_release(&slimmed),
                "{name}: release"
            );
            assert_eq!(
                held_addresses(&full),
                held_addresses(&slimmed),
                "{name}: held"
            );
            let [(first, ..), (second, ..)] = &mut deciders;
            assert_eq!(first.release(&full), second.release(&slimmed), "{name}");
        }
    }

    #[test]
    fn the_cache_gives_back_any_service_exactly_even_one_spelling_its_abbreviations() {
        let policy = ClassPolicy::DefaultAndExplicit;
        let mut odd = addressed(None, true);
        // Control characters and the abbreviated words inside values, and every word at once.
        let value = format!("{}\u{1}\u{1f}\t\"\\ from pool x", WORDS.concat());
        (odd.annotations_mut()).insert("baremetal-ccm.io/pool".into(), value.clone());
        odd.metadata.labels = Some([(value.clone(), value)].into());
        for service in [
            odd,
            addressed(None, true),
            full(None, false),
            Service::default(),
        ] {
            let mut slimmed = service.clone();
            slim(&mut slimmed, policy);
            assert_eq!(CachedService::new(service, policy).service(), slimmed);
        }
    }

    #[test]
    fn a_cached_service_of_ours_is_at_most_half_its_slimmed_json() {
        let mut service = addressed(None, true);
        let cached = CachedService::new(service.clone(), ClassPolicy::DefaultAndExplicit);
        slim(&mut service, ClassPolicy::DefaultAndExplicit);
        let json = serde_json::to_string(&service).unwrap();
        assert!(
            cached.rest.len() * 2 <= json.len(),
            "{} of {}: {:?}",
            cached.rest.len(),
            json.len(),
            cached.rest
        );
    }

    #[test]
    fn a_cached_service_is_the_services_key_to_kube() {
        let service = addressed(None, true);
        let cached = CachedService::new(service.clone(), ClassPolicy::DefaultAndExplicit);
        let key = kube::runtime::reflector::ObjectRef::<CachedService>::from_obj(&cached);
        assert_eq!(
            key,
            kube::runtime::reflector::ObjectRef::new("web-ours").within("default")
        );
        assert_eq!(
            <CachedService as kube::Resource>::url_path(&(), Some("default")),
            <Service as kube::Resource>::url_path(&(), Some("default"))
        );
        // Read as kube would (it never is): packed whole.
        let read: CachedService =
            serde_json::from_value(serde_json::to_value(&service).unwrap()).unwrap();
        assert_eq!(read.service(), service);
    }
}
