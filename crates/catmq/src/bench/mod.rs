//! `catmq bench ...`: benchmarks. `store` drives the storage engine directly; `produce`, `consume`
//! and `e2e` drive a running cluster over the wire with `catmq-client`.

pub mod net;
pub mod report;
pub mod store;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::BenchCommand;

/// Runs a `bench` subcommand.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Store(args) => store::run(&args),
        BenchCommand::Produce(args) => net::run_produce(args),
        BenchCommand::Consume(args) => net::run_consume(args),
        BenchCommand::E2e(args) => net::run_e2e(args),
        BenchCommand::Timer(args) => net::run_timer(args),
        BenchCommand::StoreChild(args) => store::child_main(&args).map(|()| ExitCode::SUCCESS),
    }
}
