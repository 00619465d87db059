//! The `catmq` binary: server roles, admin, produce/consume tools and benchmarks.
//!
//! Logs go to stderr through `tracing` (filter with `RUST_LOG`, default `info`); stdout carries
//! only command output.

mod bench;
mod cli;
mod server;
mod store_tool;
mod tools;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server(args) => server::run(server::Role::All, &args),
        Command::Namesrv(args) => server::run(server::Role::Namesrv, &args),
        Command::Broker(args) => server::run(server::Role::Broker, &args),
        Command::Produce(args) => tools::produce::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Consume(args) => tools::consume::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Admin(args) => tools::admin::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Store(cmd) => store_tool::run(cmd),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
