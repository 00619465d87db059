//! `catmq server`, `catmq namesrv`, `catmq broker`: the server roles, in one process or alone.
//!
//! Each prints its listening addresses on stdout once it serves, and stops cleanly on SIGTERM
//! or Ctrl-C: the broker unregisters, persists consumer offsets, flushes and closes the store.

pub mod config;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use catmq_broker::Broker;
use catmq_namesrv::{NameServer, NamesrvConfig};
use tokio::net::TcpListener;

use crate::cli::ServerArgs;
use config::ServerConfig;

/// Which roles to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Name server and broker in one process.
    All,
    /// Name server only.
    Namesrv,
    /// Broker only.
    Broker,
}

fn load(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
    let env = |k: &str| std::env::var(k).ok();
    let mut cfg = ServerConfig::load(args.config.as_deref(), &env)?;
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = &args.namesrv_listen {
        cfg.namesrv.listen = l.clone();
    }
    if let Some(l) = &args.broker_listen {
        cfg.broker.listen = l.clone();
    }
    if !args.namesrv.is_empty() {
        cfg.broker.namesrv = args.namesrv.clone();
    }
    if let Some(n) = &args.broker_name {
        cfg.broker.name = n.clone();
    }
    if let Some(a) = &args.advertised_addr {
        cfg.broker.advertised_addr = a.clone();
    }
    if let Some(f) = args.flush {
        cfg.store.flush = f.name().to_owned();
    }
    cfg.broker_config(None)?;
    Ok(cfg)
}

/// Where the embedded broker reaches the embedded name server.
fn local_reach(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

async fn bind(addr: &str, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))
}

async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("waiting for Ctrl-C"),
    }
}

async fn serve(role: Role, cfg: ServerConfig) -> anyhow::Result<()> {
    let namesrv = if role == Role::Broker {
        None
    } else {
        let listener = bind(&cfg.namesrv.listen, "name server").await?;
        let ns = NameServer::start(listener, NamesrvConfig::default())
            .context("starting the name server")?;
        println!("catmq namesrv listening on {}", ns.addr());
        Some(ns)
    };
    let broker = if role == Role::Namesrv {
        None
    } else {
        let embedded = namesrv.as_ref().map(|n| local_reach(n.addr()));
        let bcfg = cfg.broker_config(embedded)?;
        if bcfg.namesrv_addrs.is_empty() {
            tracing::warn!(
                "no name server configured (--namesrv): clients will not find this broker"
            );
        }
        let listener = bind(&cfg.broker.listen, "broker").await?;
        let b = Broker::start(listener, bcfg)
            .await
            .context("starting the broker")?;
        println!(
            "catmq broker {} listening on {} (advertised as {}), data in {}",
            b.name(),
            b.local_addr(),
            b.addr(),
            cfg.data_dir.display()
        );
        Some(b)
    };
    println!("catmq ready");
    let why = stop_signal().await?;
    tracing::info!("{why} received: shutting down");
    if let Some(b) = broker {
        b.shutdown().await.context("stopping the broker")?;
    }
    if let Some(ns) = namesrv {
        ns.shutdown().await;
    }
    println!("catmq stopped");
    Ok(())
}

/// Runs `role` until SIGTERM or Ctrl-C.
pub fn run(role: Role, args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let cfg = load(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("catmq-worker")
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(role, cfg))?;
    Ok(ExitCode::SUCCESS)
}
