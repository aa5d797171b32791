//! Entry point of the `baremetal-ccm` binary: parse arguments, dispatch the subcommand.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = baremetal_ccm::Cli::parse();
    baremetal_ccm::run(cli)
}
