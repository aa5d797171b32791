//! The `speaker` subcommand: the node-local agent. Today it runs the node-local BGP
//! placement (its gobgpd sidecar announces this node as next hop); the layer-2 responder
//! arrives with its feature.

use crate::admin::{AdminState, Readiness};
use crate::announce::run::{Role, Settings};
use crate::announce::sidecar::GobgpConnect;
use crate::cli::SpeakerArgs;

/// The speaker's metrics: its BGP announcer's and its layer 2's.
#[derive(Debug, Clone)]
pub struct SpeakerMetrics {
    announce: crate::announce::metrics::Metrics,
    l2: crate::l2::metrics::Metrics,
}

/// The speaker's admin state, with its metrics registered.
pub fn admin_state() -> (AdminState, SpeakerMetrics) {
    let mut metrics = None;
    let admin = AdminState::new("speaker", |registry| {
        metrics = Some(SpeakerMetrics {
            announce: crate::announce::metrics::Metrics::new(registry),
            l2: crate::l2::metrics::Metrics::new(registry),
        });
    });
    let metrics = metrics.expect("the registration closure ran in AdminState::new");
    (admin, metrics)
}

/// Runs until SIGTERM or SIGINT.
pub(crate) async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    let (admin, metrics) = admin_state();
    let admin_task = (admin)
        .start(
            &args.admin,
            &args.kube,
            crate::cli::SPEAKER_ADMIN_PORT,
            crate::cli::SPEAKER_METRICS_PORT,
        )
        .await?;
    let client = crate::apiserver::client(&args.kube).await?;
    let settings = Settings {
        role: Role::NodeLocal {
            node: args.node_name.clone(),
        },
        speaker: args.node_name.clone(),
        asn: args.bgp.bgp_asn,
        router_id: args.bgp.bgp_router_id,
        password_namespace: args.bgp.bgp_password_namespace.clone(),
    };
    let connect = GobgpConnect {
        endpoint: args.bgp.gobgp_endpoint.clone(),
    };
    let l2 = match &args.l2.l2_gossip_key_file {
        Some(path) => {
            let keys = crate::l2::keys::KeyFiles::read(path)?;
            Some(crate::l2::run::Settings {
                node: args.node_name.clone(),
                port: args.l2.l2_gossip_port,
                keys,
                replies: crate::l2::responder::ReplyOptions {
                    realtime: args.l2_reply_realtime,
                    in_kernel: args.l2_reply_in_kernel,
                },
            })
        }
        None => {
            tracing::info!("layer 2 is off (no --l2-gossip-key-file)");
            None
        }
    };
    admin.set_readiness(Readiness::Ready);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut l2_task = match l2 {
        Some(settings) => {
            let client = client.clone();
            let readiness = admin.readiness_part("l2");
            let metrics = metrics.l2.clone();
            let mut stop = stop_rx;
            tokio::spawn(async move {
                let stopped = async move {
                    // The sender lives as long as `run`: an error here means it is gone too.
                    let _gone = stop.wait_for(|stop| *stop).await;
                };
                crate::l2::run::run(client, settings, metrics, readiness, stopped).await
            })
        }
        None => tokio::spawn(std::future::pending()),
    };
    let announcer = tokio::spawn(crate::announce::run::run(
        client,
        connect,
        settings,
        metrics.announce,
        admin.readiness_part("bgp"),
    ));
    tokio::select! {
        result = announcer => {
            result?;
            anyhow::bail!("the BGP announcer stopped")
        }
        result = &mut l2_task => {
            result??;
            anyhow::bail!("layer 2 stopped")
        }
        result = admin_task => {
            result??;
            anyhow::bail!("the admin server stopped")
        }
        () = crate::controller::shutdown_signal() => {
            tracing::info!("asked to stop");
            // Hand the layer-2 addresses over before exiting: stop answering, leave.
            stop_tx.send_replace(true);
            match tokio::time::timeout(std::time::Duration::from_secs(5), l2_task).await {
                Ok(Ok(Err(error))) => tracing::warn!(error = %crate::error_chain(&error), "leaving layer 2"),
                Ok(_) => {}
                Err(_elapsed) => tracing::warn!("layer 2 did not stop within 5 s"),
            }
            Ok(())
        }
    }
}
