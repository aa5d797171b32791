//! The `baremetal-ccm` program: subcommand wiring over the controller, speaker and CRD modules.

pub mod admin;
pub mod announce;
pub mod apiserver;
pub mod cli;
pub mod cloud_config;
pub mod cloud_node;
pub mod controller;
pub mod duration;
pub mod events;
pub mod fence;
pub mod leader;
pub mod listed;
pub mod provider;
pub mod retry;
pub mod service_lb;
pub mod speaker;
pub mod telemetry;
pub mod writer;

pub use baremetal_ccm_core::{conditions, contract, crd, instance, ipam, selector};

use cli::{Cli, Command};

/// Runs the parsed command line to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log)?;
    match cli.command {
        Command::Crd => {
            use std::io::Write as _;
            let yaml = crd::render_yaml()?;
            Ok(std::io::stdout().lock().write_all(yaml.as_bytes())?)
        }
        Command::Controller(args) => runtime()?.block_on(controller::run(args)),
        Command::Speaker(args) => runtime()?.block_on(speaker::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
