//! The `speaker` subcommand: the node-local agent. Today it runs the node-local BGP
//! placement (its gobgpd sidecar announces this node as next hop); the layer-2 responder
//! arrives with its feature.

use crate::admin::{AdminState, Readiness};
use crate::announce::run::{Role, Settings};
use crate::announce::sidecar::GobgpConnect;
use crate::cli::SpeakerArgs;

/// The speaker's admin state, with its metrics registered.
pub fn admin_state() -> (AdminState, crate::announce::metrics::Metrics) {
    let mut metrics = None;
    let admin = AdminState::new("speaker", |registry| {
        metrics = Some(crate::announce::metrics::Metrics::new(registry));
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
    admin.set_readiness(Readiness::Ready);
    let announcer = tokio::spawn(crate::announce::run::run(
        client,
        connect,
        settings,
        metrics,
        admin.readiness_part("bgp"),
    ));
    tokio::select! {
        result = announcer => {
            result?;
            anyhow::bail!("the BGP announcer stopped")
        }
        result = admin_task => {
            result??;
            anyhow::bail!("the admin server stopped")
        }
        () = crate::controller::shutdown_signal() => {
            tracing::info!("asked to stop");
            Ok(())
        }
    }
}
