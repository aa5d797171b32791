//! The `baremetal-ccm` program: subcommand wiring over the controller, speaker and CRD modules.

mod admin;
mod announce;
mod apiserver;
mod cli;
mod cloud_config;
mod cloud_node;
mod controller;
mod events;
mod fence;
mod l2;
mod leader;
mod listed;
mod migrate;
mod provider;
mod retry;
mod service_lb;
mod speaker;
mod telemetry;
mod writer;

use baremetal_ccm_core::{conditions, contract, crd, instance, ipam};

// What the binary, the integration tests and the benches use; nothing else is public.
pub use cli::{
    CONTROLLER_ADMIN_PORT, CONTROLLER_METRICS_PORT, Cli, Command, SPEAKER_ADMIN_PORT,
    SPEAKER_METRICS_PORT,
};
pub use cloud_config::CloudConfig;
pub use telemetry::error_chain;

/// The admin servers (probes, metrics, the metrics listener's authorization), for their tests.
pub mod admin_server {
    pub use crate::admin::auth::REVIEW_TIMEOUT;
    pub use crate::admin::tls::server_config as metrics_tls_config;
    pub use crate::admin::{AdminState, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
    /// Each subcommand's admin state, with its metrics registered.
    pub use crate::controller::admin_state as controller;
    pub use crate::speaker::admin_state as speaker;
}

/// The GoBGP wire adapter: one converge against a gobgpd, its sessions, its restart signal.
pub mod gobgp {
    pub use crate::announce::gobgp::{
        ConvergeReport, Daemon, DaemonOptions, GobgpError, RestartCause,
    };
}

/// The instance providers and what the announcer reads of BGP password Secrets.
pub mod providers {
    pub use crate::announce::passwords::Passwords;
    pub use crate::provider::opennebula::{
        Config as OpenNebulaConfig, OpenNebula, OpenNebulaError,
    };
    pub use crate::provider::{InstanceProvider, ProviderError};
}

/// What the service-lb controller keeps of a Service in its cache, for the memory bench.
pub mod service_cache {
    pub use crate::service_lb::cache::{CachedService, slim};
}

/// The API client's rate limit, for benches that measure the controllers under it.
pub use apiserver::RateLimit;

/// Runs the parsed command line to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log)?;
    match cli.command {
        Command::Crd => {
            use std::io::Write as _;
            let yaml = crd::render_yaml()?;
            Ok(std::io::stdout().lock().write_all(yaml.as_bytes())?)
        }
        Command::Controller(args) => on_workers(controller::run(args)),
        Command::Speaker(args) => on_workers(speaker::run(args)),
        Command::Migrate(cli::MigrateCommand::Metallb(args)) => {
            let status = runtime()?.block_on(migrate::run(args))?;
            if status != 0 {
                std::process::exit(i32::from(status));
            }
            Ok(())
        }
    }
}

/// Runs a long-lived process's `main` as a task on the runtime's worker threads. Not on the
/// thread that calls `block_on`: a future given to `block_on` is polled there, outside the
/// workers, so every wake between it and the tasks it drives (the controllers' streams, their
/// API requests) would cross threads — measured: a third of the controller's CPU went to
/// that thread and to waking it (issue 16).
fn on_workers<F>(main: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    runtime()?.block_on(async move {
        match tokio::spawn(main).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(anyhow::anyhow!("the main task was cancelled: {error}")),
        }
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
