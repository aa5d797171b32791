//! What the `cloud-node-lifecycle` controller does with a node, decided from the Node's
//! readiness and taints and its machine's state.

use k8s_openapi::api::core::v1::{Node, Taint};

use super::plan::taints;
use crate::instance::InstanceState;

pub use crate::contract::SHUTDOWN_TAINT;

/// What to do with a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Nothing,
    /// Ask the provider about the node's machine, then call [`after_state`].
    AskProvider,
    /// Write these taints (the shutdown taint added or removed).
    SetTaints {
        taints: Vec<Taint>,
        shutdown: bool,
    },
    /// Delete the Node: the provider is certain its machine is gone.
    Delete,
}

/// The node's Ready condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    (node.status.as_ref().and_then(|s| s.conditions.as_ref()))
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn has_shutdown_taint(node: &Node) -> bool {
    taints(node).iter().any(|t| t.key == SHUTDOWN_TAINT)
}

/// The first step: a Ready node only loses a leftover shutdown taint; a NotReady one (Ready
/// `False`, `Unknown` or absent) is looked up at the provider. A node being deleted is left alone.
pub fn decide(node: &Node) -> Action {
    if node.metadata.deletion_timestamp.is_some() {
        return Action::Nothing;
    }
    if !is_ready(node) {
        return Action::AskProvider;
    }
    if has_shutdown_taint(node) {
        let taints = (taints(node).iter())
            .filter(|t| t.key != SHUTDOWN_TAINT)
            .cloned()
            .collect();
        return Action::SetTaints {
            taints,
            shutdown: false,
        };
    }
    Action::Nothing
}

/// The second step, for a NotReady node whose machine's state is known.
pub fn after_state(node: &Node, state: InstanceState) -> Action {
    match state {
        InstanceState::Gone => Action::Delete,
        InstanceState::ShutDown if !has_shutdown_taint(node) => {
            let mut taints = taints(node).to_vec();
            taints.push(Taint {
                key: SHUTDOWN_TAINT.to_owned(),
                effect: "NoSchedule".to_owned(),
                ..Taint::default()
            });
            Action::SetTaints {
                taints,
                shutdown: true,
            }
        }
        // A machine running again keeps the taint until its node is Ready.
        InstanceState::ShutDown | InstanceState::Running => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn node(ready: Option<&str>, taint_keys: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    (taint_keys.iter())
                        .map(|k| Taint {
                            key: (*k).into(),
                            effect: "NoSchedule".into(),
                            ..Taint::default()
                        })
                        .collect(),
                ),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|status| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        ..NodeCondition::default()
                    }]
                }),
                ..NodeStatus::default()
            }),
        }
    }

    #[test]
    fn ready_nodes_are_not_looked_up() {
        assert_eq!(decide(&node(Some("True"), &[])), Action::Nothing);
    }

    #[test]
    fn not_ready_unknown_and_silent_nodes_are_looked_up() {
        for ready in [Some("False"), Some("Unknown"), None] {
            assert_eq!(decide(&node(ready, &[])), Action::AskProvider, "{ready:?}");
        }
    }

    #[test]
    fn a_ready_node_loses_the_shutdown_taint_and_keeps_the_others() {
        let n = node(Some("True"), &["a", SHUTDOWN_TAINT, "b"]);
        let Action::SetTaints { taints, shutdown } = decide(&n) else {
            panic!("expected a taint change");
        };
        assert!(!shutdown);
        let keys: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn a_shut_down_machine_taints_its_node_once() {
        let n = node(Some("False"), &["a"]);
        let Action::SetTaints { taints, shutdown } = after_state(&n, InstanceState::ShutDown)
        else {
            panic!("expected the shutdown taint");
        };
        assert!(shutdown);
        assert_eq!(taints.last().unwrap().key, SHUTDOWN_TAINT);
        assert_eq!(taints.last().unwrap().effect, "NoSchedule");
        let tainted = node(Some("False"), &["a", SHUTDOWN_TAINT]);
        assert_eq!(
            after_state(&tainted, InstanceState::ShutDown),
            Action::Nothing
        );
    }

    #[test]
    fn only_a_gone_machine_deletes_the_node() {
        let n = node(Some("False"), &[]);
        assert_eq!(after_state(&n, InstanceState::Gone), Action::Delete);
        assert_eq!(after_state(&n, InstanceState::Running), Action::Nothing);
    }

    #[test]
    fn a_node_being_deleted_is_left_alone() {
        let mut n = node(Some("False"), &[]);
        n.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(decide(&n), Action::Nothing);
    }
}
