//! What a Service should look like after reconciling, and the minimal patches to get there.
//! Pure: the controller applies the returned patches (only the leader writes).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::conditions;

pub use crate::contract::{ALLOCATED_FROM, FINALIZER};
/// Condition: whether the Service holds the addresses it asks for (`False` = pending, and why).
pub const COND_ALLOCATED: &str = "baremetal-ccm.io/AddressAllocated";
/// Condition: `True` when a held address is no longer inside any pool (after a pool edit).
pub const COND_OUTSIDE_POOL: &str = "baremetal-ccm.io/AddressOutsidePool";
const OUR_PREFIX: &str = "baremetal-ccm.io/";
pub use crate::conditions::{MESSAGE_MAX, WantedCondition};

/// The desired state of a Service that is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Addresses for `status.loadBalancer.ingress`, in `ipFamilies` order.
    pub ingress: Vec<IpAddr>,
    /// Value of the `allocated-from` annotation; `None` removes it.
    pub allocated_from: Option<String>,
    pub conditions: Vec<WantedCondition>,
}

/// Service patches carry the read `resourceVersion`, so a concurrent change makes them fail
/// instead of overwriting.
pub use crate::write::Patch;

fn resource_version(service: &Service) -> Value {
    service
        .metadata
        .resource_version
        .clone()
        .map_or(Value::Null, Value::String)
}

/// The patch that adds the finalizer, if missing. Applied before anything is allocated.
pub fn add_finalizer(service: &Service) -> Option<Patch> {
    let finalizers = service.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) {
        return None;
    }
    let mut updated = finalizers;
    updated.push(FINALIZER.to_owned());
    Some(Patch::Object(
        json!({"metadata": {"finalizers": updated, "resourceVersion": resource_version(service)}}),
    ))
}

/// Patches for a Service that is ours and not being deleted.
pub fn plan(service: &Service, desired: &Desired, now: Timestamp) -> Vec<Patch> {
    let mut patches = Vec::new();
    let current_annotation = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ALLOCATED_FROM))
        .cloned();
    if current_annotation != desired.allocated_from {
        patches.push(Patch::Object(json!({"metadata": {
            "annotations": {ALLOCATED_FROM: desired.allocated_from},
            "resourceVersion": resource_version(service),
        }})));
    }
    let status = service.status.clone().unwrap_or_default();
    let current_ingress = serde_json::to_value(
        status
            .load_balancer
            .and_then(|lb| lb.ingress)
            .unwrap_or_default(),
    )
    .expect("ingress values always serialize");
    let wanted_ingress = ingress_value(&desired.ingress);
    let current_conditions = status.conditions.unwrap_or_default();
    let wanted_conditions = merge_conditions(
        &current_conditions,
        &desired.conditions,
        service.metadata.generation,
        now,
    );
    if current_ingress != wanted_ingress || current_conditions != wanted_conditions {
        patches.push(Patch::Status(json!({
            "metadata": {"resourceVersion": resource_version(service)},
            "status": {"loadBalancer": {"ingress": wanted_ingress}, "conditions": wanted_conditions},
        })));
    }
    patches
}

/// [`plan`], with the finalizer added by the first patch when it is missing: no address is
/// written to a Service before it carries the finalizer, and one metadata write does both.
pub fn plan_with_finalizer(service: &Service, desired: &Desired, now: Timestamp) -> Vec<Patch> {
    let mut patches = plan(service, desired, now);
    let Some(Patch::Object(finalizer)) = add_finalizer(service) else {
        return patches;
    };
    match patches.first_mut() {
        Some(Patch::Object(first)) => {
            first["metadata"]["finalizers"] = finalizer["metadata"]["finalizers"].clone();
        }
        _ => patches.insert(0, Patch::Object(finalizer)),
    }
    patches
}

/// Patches for a Service that is no longer ours (deleted, or type/class changed): clear the
/// ingress and our conditions and annotation, then drop the finalizer.
pub fn plan_release(service: &Service) -> Vec<Patch> {
    let mut patches = Vec::new();
    let status = service.status.clone().unwrap_or_default();
    let has_ingress = status
        .load_balancer
        .and_then(|lb| lb.ingress)
        .is_some_and(|i| !i.is_empty());
    let conditions = status.conditions.unwrap_or_default();
    let kept: Vec<&Condition> = conditions
        .iter()
        .filter(|c| !c.type_.starts_with(OUR_PREFIX))
        .collect();
    if has_ingress || kept.len() != conditions.len() {
        patches.push(Patch::Status(json!({
            "metadata": {"resourceVersion": resource_version(service)},
            "status": {"loadBalancer": {"ingress": null}, "conditions": kept},
        })));
    }
    let annotated = service
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ALLOCATED_FROM));
    let finalizers = service.metadata.finalizers.clone().unwrap_or_default();
    let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    if annotated || remaining.len() != finalizers.len() {
        // The finalizer goes in the last patch: once it is gone a deleted Service disappears.
        patches.push(Patch::Object(json!({"metadata": {
            "annotations": {ALLOCATED_FROM: null},
            "finalizers": remaining,
            "resourceVersion": resource_version(service),
        }})));
    }
    patches
}

/// `status.loadBalancer.ingress` entries: always with `ipMode: VIP` (the apiserver defaults it,
/// so omitting it makes every comparison differ and the controller loop).
pub fn ingress_value(addresses: &[IpAddr]) -> Value {
    Value::Array(
        addresses
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect(),
    )
}

/// Whether a condition type is service-lb's: ours but for layer 2's `L2Announced`, which the
/// l2-status controller writes with its own field manager. Dropping that one here would make
/// the two controllers undo each other's writes forever.
fn is_service_lbs(type_: &str) -> bool {
    type_.starts_with(OUR_PREFIX) && type_ != crate::l2::status::CONDITION
}

/// Our conditions replace our old ones; others' conditions stay. `lastTransitionTime` only
/// changes when the status flips, so an unchanged decision produces an identical list.
///
/// A `False` condition whose reason is unchanged keeps its message: a pending Service is
/// rewritten only when why it is pending changes, not whenever a detail of the message does
/// (who holds the address it asks for), so that Services waiting for one address cost nothing
/// while the address changes hands (issue 10, item 5).
fn merge_conditions(
    current: &[Condition],
    wanted: &[WantedCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let previous: BTreeMap<&str, &Condition> =
        current.iter().map(|c| (c.type_.as_str(), c)).collect();
    let merge = |want: &WantedCondition| {
        conditions::merged(
            previous.get(want.type_).copied(),
            want,
            conditions::Message::KeptWhileFalseForTheSameReason,
            generation,
            now,
        )
    };
    // Each condition keeps its place, so that an unchanged decision is an identical list
    // whatever order the other writers' conditions came in.
    let mut placed = std::collections::BTreeSet::new();
    let mut merged = Vec::new();
    for condition in current {
        if !is_service_lbs(&condition.type_) {
            merged.push(condition.clone());
        } else if let Some(want) = wanted.iter().find(|w| w.type_ == condition.type_)
            && placed.insert(want.type_)
        {
            merged.push(merge(want));
        }
    }
    for want in wanted {
        if placed.insert(want.type_) {
            merged.push(merge(want));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn allocated(ip: &str) -> Desired {
        Desired {
            ingress: vec![ip.parse().unwrap()],
            allocated_from: Some("pool-a".into()),
            conditions: vec![WantedCondition {
                type_: COND_ALLOCATED,
                status: true,
                reason: "Allocated".into(),
                message: format!("{ip} from pool pool-a"),
            }],
        }
    }

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                resource_version: Some("7".into()),
                generation: Some(1),
                finalizers: Some(vec![FINALIZER.into()]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    /// Applies our status patch's content to a Service the way the apiserver would store it.
    fn applied(mut service: Service, patches: &[Patch]) -> Service {
        for patch in patches {
            match patch {
                Patch::Status(v) => {
                    let status: ServiceStatus =
                        serde_json::from_value(v["status"].clone()).unwrap();
                    service.status = Some(status);
                }
                Patch::Object(v) => {
                    if let Some(annotations) = v["metadata"]["annotations"].as_object() {
                        let map = service.metadata.annotations.get_or_insert_default();
                        for (k, val) in annotations {
                            match val.as_str() {
                                Some(s) => map.insert(k.clone(), s.to_owned()),
                                None => map.remove(k),
                            };
                        }
                    }
                }
            }
        }
        service
    }

    #[test]
    fn a_new_allocation_patches_annotation_and_status_once() {
        let now = Timestamp::now();
        let patches = plan(&service(), &allocated("192.0.2.10"), now);
        assert_eq!(patches.len(), 2);
        let Patch::Status(status) = &patches[1] else {
            panic!("second patch is the status")
        };
        assert_eq!(
            status["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "192.0.2.10", "ipMode": "VIP"}])
        );
        assert_eq!(status["metadata"]["resourceVersion"], "7");

        let after = applied(service(), &patches);
        assert!(
            plan(&after, &allocated("192.0.2.10"), Timestamp::now()).is_empty(),
            "an unchanged decision writes nothing"
        );
    }

    #[test]
    fn ingress_without_ip_mode_is_rewritten_with_vip() {
        let mut svc = applied(
            service(),
            &plan(&service(), &allocated("192.0.2.10"), Timestamp::now()),
        );
        svc.status.as_mut().unwrap().load_balancer = Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some("192.0.2.10".into()),
                ..LoadBalancerIngress::default()
            }]),
        });
        let patches = plan(&svc, &allocated("192.0.2.10"), Timestamp::now());
        assert!(
            matches!(patches.as_slice(), [Patch::Status(_)]),
            "{patches:?}"
        );
    }

    #[test]
    fn other_controllers_conditions_are_kept() {
        let mut svc = service();
        let foreign = Condition {
            type_: "example.com/Ready".into(),
            status: "True".into(),
            reason: "Fine".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        };
        svc.status = Some(ServiceStatus {
            conditions: Some(vec![foreign.clone()]),
            ..ServiceStatus::default()
        });
        let patches = plan(&svc, &allocated("192.0.2.10"), Timestamp::now());
        let Some(Patch::Status(status)) = patches.last() else {
            panic!("a status patch")
        };
        let conditions: Vec<Condition> =
            serde_json::from_value(status["status"]["conditions"].clone()).unwrap();
        assert_eq!(conditions[0], foreign);
        assert_eq!(conditions[1].type_, COND_ALLOCATED);
    }

    #[test]
    fn the_layer_2_condition_is_kept_and_a_service_holding_it_needs_no_write() {
        let t0 = Timestamp::UNIX_EPOCH;
        let mut svc = applied(service(), &plan(&service(), &allocated("192.0.2.10"), t0));
        let l2 = Condition {
            type_: crate::l2::status::CONDITION.into(),
            status: "True".into(),
            reason: "Announced".into(),
            message: "192.0.2.10 by node n1 on eth0 (02:00:00:00:00:01)".into(),
            observed_generation: None,
            last_transition_time: Time(t0),
        };
        let status = svc.status.as_mut().unwrap();
        status.conditions.get_or_insert_default().push(l2.clone());
        // The l2-status controller added its condition: service-lb has nothing to write…
        assert_eq!(plan(&svc, &allocated("192.0.2.10"), Timestamp::now()), []);
        // …and when it writes, the condition stays.
        let mut changed = allocated("192.0.2.10");
        changed.conditions[0].message = "reworded".into();
        let patches = plan(&svc, &changed, Timestamp::now());
        let Some(Patch::Status(status)) = patches.last() else {
            panic!("a status patch")
        };
        let conditions: Vec<Condition> =
            serde_json::from_value(status["status"]["conditions"].clone()).unwrap();
        assert!(conditions.contains(&l2), "{conditions:?}");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0 = Timestamp::UNIX_EPOCH;
        let svc = applied(service(), &plan(&service(), &allocated("192.0.2.10"), t0));
        let mut changed = allocated("192.0.2.10");
        changed.conditions[0].message = "reworded".into();
        let patches = plan(&svc, &changed, Timestamp::now());
        let Some(Patch::Status(status)) = patches.last() else {
            panic!("a status patch")
        };
        assert_eq!(
            status["status"]["conditions"][0]["lastTransitionTime"],
            json!("1970-01-01T00:00:00Z")
        );
    }

    fn pending(message: &str) -> Desired {
        Desired {
            ingress: Vec::new(),
            allocated_from: None,
            conditions: vec![WantedCondition {
                type_: COND_ALLOCATED,
                status: false,
                reason: "AddressInUse".into(),
                message: message.into(),
            }],
        }
    }

    #[test]
    fn a_pending_service_is_not_rewritten_while_only_the_holder_of_its_address_changes() {
        let first = plan(
            &service(),
            &pending("address 192.0.2.1 is in use by default/a"),
            Timestamp::now(),
        );
        let svc = applied(service(), &first);
        assert!(
            plan(
                &svc,
                &pending("address 192.0.2.1 is in use by default/b"),
                Timestamp::now()
            )
            .is_empty(),
            "same reason, new detail: nothing to write"
        );
        let mut other_reason = pending("no free IPv4 address in pool a");
        other_reason.conditions[0].reason = "PoolExhausted".into();
        assert_eq!(plan(&svc, &other_reason, Timestamp::now()).len(), 1);
    }

    #[test]
    fn condition_messages_are_bounded() {
        let huge = pending(&"x".repeat(100_000));
        let patches = plan(&service(), &huge, Timestamp::now());
        let Some(Patch::Status(status)) = patches.last() else {
            panic!("a status patch")
        };
        let message = status["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert_eq!(message.len(), MESSAGE_MAX);
    }

    #[test]
    fn finalizer_is_added_once() {
        let mut svc = service();
        svc.metadata.finalizers = None;
        assert!(add_finalizer(&svc).is_some());
        assert!(add_finalizer(&service()).is_none());
    }

    #[test]
    fn release_clears_status_and_drops_the_finalizer_last() {
        let svc = applied(
            service(),
            &plan(&service(), &allocated("192.0.2.10"), Timestamp::now()),
        );
        let patches = plan_release(&svc);
        assert_eq!(patches.len(), 2);
        let Patch::Status(status) = &patches[0] else {
            panic!("status first")
        };
        assert_eq!(status["status"]["loadBalancer"]["ingress"], Value::Null);
        let Patch::Object(meta) = &patches[1] else {
            panic!("metadata last")
        };
        assert_eq!(meta["metadata"]["finalizers"], json!([]));
    }
}
