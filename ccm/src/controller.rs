//! The `controller` subcommand: admin server, leader election and the cloud controllers.

use std::collections::BTreeSet;

use crate::admin::{AdminState, Readiness};
use crate::cli::ControllerArgs;
use crate::leader::{Elector, LeaseSettings};
use crate::service_lb::class::ClassPolicy;
use crate::service_lb::{self, metrics::Metrics};

/// The controllers this program knows, by their upstream names.
pub const KNOWN: [&str; 3] = ["cloud-node", "cloud-node-lifecycle", "service-lb"];
/// The controllers implemented in this build.
const IMPLEMENTED: [&str; 1] = ["service-lb"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error(
        "unknown controller {0:?} in --controllers (known: cloud-node, cloud-node-lifecycle, service-lb)"
    )]
    Unknown(String),
}

/// Resolves `--controllers` the upstream way: `*` for all, `name` adds, `-name` removes.
pub fn select(items: &[String]) -> Result<BTreeSet<&'static str>, SelectionError> {
    let mut selected = BTreeSet::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        if item == "*" {
            selected.extend(KNOWN);
            continue;
        }
        let (remove, name) = item.strip_prefix('-').map_or((false, item), |n| (true, n));
        let known = KNOWN
            .iter()
            .find(|k| **k == name)
            .ok_or_else(|| SelectionError::Unknown(item.to_owned()))?;
        if remove {
            selected.remove(known);
        } else {
            selected.insert(*known);
        }
    }
    Ok(selected)
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{}-{}",
        if host.is_empty() {
            "baremetal-ccm"
        } else {
            &host
        },
        std::process::id()
    )
}

/// Runs the controller subcommand until leadership is lost (then exits non-zero).
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let selected = select(&args.controllers)?;
    for name in selected.iter().filter(|n| !IMPLEMENTED.contains(n)) {
        tracing::warn!(
            controller = name,
            "controller is not implemented in this build; it does not run"
        );
    }
    let mut metrics = None;
    let admin = AdminState::new("controller", |registry| {
        metrics = Some(Metrics::new(registry))
    });
    let metrics = metrics.expect("the registration closure ran in AdminState::new");
    let server = admin.clone();
    let address = args.admin.bind_address;
    let admin_task = tokio::spawn(async move { server.serve(address).await });

    let client = crate::apiserver::client(&args.kube).await?;
    // Events have their own rate-limit budget: recording them never delays an address.
    let events_client = crate::apiserver::client(&args.kube).await?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let elector = Elector::new(client.clone(), LeaseSettings::new(identity.clone()));
    admin.set_readiness(Readiness::NotReady("waiting for leadership".into()));
    let mut leadership = if args.leader_elect {
        Some(elector.acquire().await?)
    } else {
        None
    };
    admin.set_readiness(Readiness::Ready);

    let settings = service_lb::controller::Settings {
        class_policy: if args.lb_class_only {
            ClassPolicy::ExplicitOnly
        } else {
            ClassPolicy::DefaultAndExplicit
        },
        concurrency: args.concurrent_service_syncs.max(1),
        identity,
    };
    let service_lb = async {
        if selected.contains("service-lb") {
            service_lb::controller::run(client.clone(), events_client, settings, metrics).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = service_lb => anyhow::bail!("the service-lb controller stopped"),
        () = lost => anyhow::bail!("lost leadership; exiting so that no two replicas write"),
        result = admin_task => {
            result??;
            anyhow::bail!("the admin server stopped")
        }
        () = shutdown_signal() => {
            tracing::info!("asked to stop; releasing leadership");
            drop(leadership);
            elector.release().await?;
            Ok(())
        }
    }
}

/// SIGTERM (how Kubernetes stops a pod) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(items: &[&str]) -> Result<Vec<&'static str>, SelectionError> {
        let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
        select(&items).map(|s| s.into_iter().collect())
    }

    #[test]
    fn star_selects_all_and_minus_removes() {
        assert_eq!(
            sel(&["*"]).unwrap(),
            ["cloud-node", "cloud-node-lifecycle", "service-lb"]
        );
        assert_eq!(
            sel(&["*", "-cloud-node-lifecycle"]).unwrap(),
            ["cloud-node", "service-lb"]
        );
        assert_eq!(sel(&["service-lb"]).unwrap(), ["service-lb"]);
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(
            sel(&["route"]),
            Err(SelectionError::Unknown("route".into()))
        );
        assert_eq!(
            sel(&["*", "-routes"]),
            Err(SelectionError::Unknown("-routes".into()))
        );
    }
}
