//! `catmq bench ...`: benchmarks. `store` drives the storage engine directly; the network
//! benchmarks (`produce`, `consume`) come with the broker.

pub mod report;
pub mod store;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::BenchCommand;

/// Runs a `bench` subcommand.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Store(args) => store::run(&args),
        BenchCommand::StoreChild(args) => store::child_main(&args).map(|()| ExitCode::SUCCESS),
    }
}
