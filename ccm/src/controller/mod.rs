//! The `controller` subcommand: admin server, leader election and the cloud controllers.

mod selection;

pub(crate) use self::selection::{Controller, select};

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use crate::admin::{AdminState, Readiness};
use crate::cli::ControllerArgs;
use crate::cloud_config::{CloudConfig, ProviderKind};
use crate::cloud_node;
use crate::events::Publisher;
use crate::fence::Fence;
use crate::leader::{Elector, LeaseSettings};
use crate::provider::InstanceProvider;
use crate::provider::opennebula::OpenNebula;
use crate::provider::static_file::StaticProvider;
use crate::service_lb::class::ClassPolicy;
use crate::service_lb::{self, metrics::Metrics};

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

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The metrics of every controller, registered once.
pub struct AllMetrics {
    service_lb: Metrics,
    announce: crate::announce::metrics::Metrics,
    cloud_node: cloud_node::metrics::Metrics,
    l2_status: crate::l2::status::Metrics,
    writes: crate::writer::Metrics,
    events_dropped: Counter,
}

impl std::fmt::Debug for AllMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllMetrics").finish_non_exhaustive()
    }
}

/// The controller's admin state, with the metrics of every controller registered.
pub fn admin_state() -> (AdminState, AllMetrics) {
    let mut metrics = None;
    let admin = AdminState::new("controller", |registry| {
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events not published (queue full or API error)",
            events_dropped.clone(),
        );
        let writes = crate::writer::Metrics::new(registry);
        metrics = Some(AllMetrics {
            service_lb: Metrics::new(registry, writes.clone()),
            announce: crate::announce::metrics::Metrics::new(registry),
            cloud_node: cloud_node::metrics::Metrics::new(registry, writes.clone()),
            l2_status: crate::l2::status::Metrics::new(registry),
            writes,
            events_dropped,
        });
    });
    let metrics = metrics.expect("the registration closure ran in AdminState::new");
    (admin, metrics)
}

/// Runs the controller subcommand until leadership is lost (then exits non-zero).
pub(crate) async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let selected = select(&args.controllers)?;
    // A broken cloud config stops the program before it touches the cluster.
    let cloud_config = CloudConfig::load(args.cloud_config.as_deref())?;
    let l2_status_settings = l2_status_settings(&args, &selected)?;
    let (admin, metrics) = admin_state();
    let admin_task = (admin)
        .start(
            &args.admin,
            &args.kube,
            crate::cli::CONTROLLER_ADMIN_PORT,
            crate::cli::CONTROLLER_METRICS_PORT,
        )
        .await?;

    // Only the controllers that write shared cluster state need the lease; a replica that
    // runs just the announcer must not take it from one that does.
    let elect = args.leader_elect && selected.iter().any(|c| c.needs_lease());
    let clients = Clients::connect(&args, elect).await?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let events = Publisher::start(clients.events, &identity, metrics.events_dropped.clone());
    let cloud = cloud_controllers(
        &args,
        &selected,
        cloud_config,
        &clients.leader,
        &events,
        metrics.cloud_node,
    )
    .await?;
    // Announcing needs no lease: every replica programs its own sidecar.
    let announcer = announcer(
        &args,
        &selected,
        &clients.plain,
        &identity,
        &admin,
        metrics.announce,
    );
    let elector = Elector::new(clients.lease, LeaseSettings::new(identity));
    // A replica waiting for the lease is ready: it stands by (and announces, when the announcer
    // runs: that part of readiness is the announcer's). Rolling updates then count standbys as
    // available instead of forever unavailable.
    admin.set_readiness(Readiness::Ready);
    let mut leadership = if elect {
        Some(elector.acquire(clients.fence).await?)
    } else {
        None
    };
    let service_lb = service_lb(
        &args,
        &selected,
        &clients.leader,
        &events,
        metrics.service_lb,
    );
    let l2_status = l2_status(
        l2_status_settings,
        &clients.leader,
        &events,
        metrics.l2_status,
        metrics.writes,
    );
    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = announcer => anyhow::bail!("the BGP announcer stopped"),
        () = service_lb => anyhow::bail!("the service-lb controller stopped"),
        () = l2_status => anyhow::bail!("the l2-status controller stopped"),
        () = cloud => anyhow::bail!("the node controllers stopped"),
        () = lost => anyhow::bail!("lost leadership; exiting so that no two replicas write"),
        result = admin_task => {
            result??;
            anyhow::bail!("the admin server stopped")
        }
        () = shutdown_signal() => {
            if let Some(leadership) = leadership.take() {
                tracing::info!("asked to stop; releasing leadership");
                // No write may be in flight or start once the lease is given up.
                drop(leadership);
                elector.release().await?;
            }
            Ok(())
        }
    }
}

/// The API clients of one controller process, each with its own rate-limit budget.
struct Clients {
    /// Every write of the leader-only controllers (and their Events) passes the fence, which
    /// only a lease renewed in time keeps open.
    fence: Fence,
    /// For the announcer, which needs no lease and so no fence.
    plain: kube::Client,
    /// For the leader-only controllers' reads and writes.
    leader: kube::Client,
    /// Events have their own budget (`--event-qps`): recording them never delays a write, and
    /// in a burst of writes they do not take the API server's time from them.
    events: kube::Client,
    /// So does the lease: a burst of writes must not delay a renewal past its deadline.
    lease: kube::Client,
}

impl Clients {
    async fn connect(args: &ControllerArgs, elect: bool) -> anyhow::Result<Clients> {
        let fence = if elect {
            Fence::closed()
        } else {
            Fence::open()
        };
        Ok(Clients {
            plain: crate::apiserver::client(&args.kube).await?,
            leader: crate::apiserver::fenced_client(&args.kube, fence.clone()).await?,
            events: crate::apiserver::fenced_client_limited(
                &args.kube,
                fence.clone(),
                crate::apiserver::RateLimit::new(args.event_qps, args.event_burst),
            )
            .await?,
            lease: crate::apiserver::client(&args.kube).await?,
            fence,
        })
    }
}

/// The service-lb controller, started when first polled (after leadership is acquired); a
/// task that never ends when it is not selected.
fn service_lb(
    args: &ControllerArgs,
    selected: &BTreeSet<Controller>,
    client: &kube::Client,
    events: &Publisher,
    metrics: Metrics,
) -> Task {
    if !selected.contains(&Controller::ServiceLb) {
        return Box::pin(std::future::pending());
    }
    let settings = service_lb::controller::Settings {
        class_policy: if args.lb_class_only {
            ClassPolicy::ExplicitOnly
        } else {
            ClassPolicy::DefaultAndExplicit
        },
        concurrency: args.concurrent_service_syncs.max(1),
        reading: baremetal_ccm_core::service_lb::request::Reading {
            metallb: args.metallb_annotations,
        },
    };
    let (client, events) = (client.clone(), events.clone());
    Box::pin(async move { service_lb::controller::run(client, &events, settings, metrics).await })
}

/// The l2-status controller's settings when it runs: selected, and given the gossip key.
fn l2_status_settings(
    args: &ControllerArgs,
    selected: &BTreeSet<Controller>,
) -> anyhow::Result<Option<crate::l2::status::Settings>> {
    if !selected.contains(&Controller::L2Status) {
        return Ok(None);
    }
    let Some(path) = &args.l2.l2_gossip_key_file else {
        tracing::info!("l2-status is off (no --l2-gossip-key-file)");
        return Ok(None);
    };
    let Some(node) = args.node_name.clone() else {
        anyhow::bail!(
            "l2-status needs --node-name: the observer gossips on that node's InternalIP"
        );
    };
    // The same files as the speakers', followed the same way: a rotation reaches the
    // observer without a restart.
    let files = crate::l2::keys::KeyFiles::read(path)?;
    let (keys_tx, keys) = tokio::sync::watch::channel(files.keys());
    tokio::spawn(files.follow(keys_tx));
    Ok(Some(crate::l2::status::Settings {
        identity: args.identity.clone().unwrap_or_else(default_identity),
        node,
        port: args.l2_observer_port,
        speaker_port: args.l2.l2_gossip_port,
        keys,
    }))
}

/// The l2-status controller, started when first polled (after leadership is acquired); a task
/// that never ends when it does not run.
fn l2_status(
    settings: Option<crate::l2::status::Settings>,
    client: &kube::Client,
    events: &Publisher,
    metrics: crate::l2::status::Metrics,
    writes: crate::writer::Metrics,
) -> Task {
    let Some(settings) = settings else {
        return Box::pin(std::future::pending());
    };
    let client = client.clone();
    let recorder = events.recorder("baremetal-ccm.io/l2-status");
    Box::pin(async move {
        let result = crate::l2::status::run(client, recorder, settings, metrics, writes).await;
        if let Err(error) = result {
            tracing::error!(error = %crate::error_chain(&error), "the l2-status controller failed");
        }
    })
}

/// The central BGP announcer, started at once on every replica (a task that never ends when
/// it is not selected).
fn announcer(
    args: &ControllerArgs,
    selected: &BTreeSet<Controller>,
    client: &kube::Client,
    identity: &str,
    admin: &AdminState,
    metrics: crate::announce::metrics::Metrics,
) -> Task {
    if !selected.contains(&Controller::BgpAnnouncer) {
        return Box::pin(std::future::pending());
    }
    let settings = crate::announce::run::Settings {
        role: crate::announce::run::Role::Central {
            node: args.node_name.clone(),
        },
        speaker: identity.to_owned(),
        asn: args.bgp.bgp_asn,
        router_id: args.bgp.bgp_router_id,
        password_namespace: args.bgp.bgp_password_namespace.clone(),
    };
    let connect = crate::announce::sidecar::GobgpConnect {
        endpoint: args.bgp.gobgp_endpoint.clone(),
    };
    // Spawned now, not when first polled: a replica waiting for the lease announces too.
    let task = tokio::spawn(crate::announce::run::run(
        client.clone(),
        connect,
        settings,
        metrics,
        admin.readiness_part("bgp"),
    ));
    Box::pin(async move {
        if let Err(error) = task.await {
            tracing::error!(%error, "the BGP announcer task failed");
        }
    })
}

/// The `cloud-node` and `cloud-node-lifecycle` controllers over the configured provider, as
/// one task (they share the Node watch); a task that never ends when neither is selected.
async fn cloud_controllers(
    args: &ControllerArgs,
    selected: &BTreeSet<Controller>,
    config: CloudConfig,
    client: &kube::Client,
    events: &Publisher,
    metrics: cloud_node::metrics::Metrics,
) -> anyhow::Result<Task> {
    let settings = cloud_node::controller::Settings {
        initialize: selected.contains(&Controller::CloudNode),
        lifecycle: selected.contains(&Controller::CloudNodeLifecycle),
        concurrency: args.concurrent_node_syncs.max(1),
        refresh_period: args.node_status_update_frequency,
        monitor_period: args.node_monitor_period,
    };
    if !settings.initialize && !settings.lifecycle {
        return Ok(Box::pin(std::future::pending()));
    }
    fn task<P: InstanceProvider>(
        client: &kube::Client,
        events: &Publisher,
        provider: P,
        settings: cloud_node::controller::Settings,
        metrics: cloud_node::metrics::Metrics,
    ) -> Task {
        let (client, events) = (client.clone(), events.clone());
        tracing::info!(provider = provider.name(), "node controllers configured");
        Box::pin(async move {
            cloud_node::controller::run(client, &events, Arc::new(provider), settings, metrics)
                .await;
        })
    }
    match config.provider {
        ProviderKind::Static => {
            let provider = StaticProvider::new(config.static_.unwrap_or_default());
            Ok(task(client, events, provider, settings, metrics))
        }
        ProviderKind::OpenNebula => {
            let settings_one = config
                .opennebula
                .as_ref()
                .expect("the cloud config's validation requires the opennebula section");
            let provider = OpenNebula::connect(settings_one, Some(client)).await?;
            Ok(task(client, events, provider, settings, metrics))
        }
    }
}

/// SIGTERM (how Kubernetes stops a pod) or SIGINT.
pub(crate) async fn shutdown_signal() {
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
