//! `zerok-relay`: run the relay. Flags override the config file, which overrides defaults.
//! Prints its endpoint id and the address clients pass as `ADDR` (with `--json`, as the
//! first stdout line); stops gracefully on SIGTERM or ctrl-c.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use zerok_relay::{Config, Relay};

/// Zero-knowledge sync relay.
#[derive(Parser)]
#[command(name = "zerok-relay", version, about)]
struct Args {
    /// Config file (TOML); missing keys take their defaults.
    #[arg(long, env = "ZEROK_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder (store and identity key).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// UDP address for QUIC, e.g. 0.0.0.0:4433.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// TCP address for /health and /metrics.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Vault mode: keep every message forever in this object store (`s3://bucket/prefix`,
    /// `file:///path` or a folder), as `[storage] mode = "vault"` with `object-store`.
    #[arg(long, value_name = "URL")]
    vault: Option<String>,
    /// First stdout line: one JSON object with endpoint_id, addr, http.
    #[arg(long)]
    json: bool,
}

fn config(args: &Args) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Config::default(),
    };
    config.apply_env().map_err(anyhow::Error::msg)?;
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(http) = args.http {
        config.http.listen = http;
    }
    if let Some(url) = &args.vault {
        config.storage.mode = zerok_relay::StorageMode::Vault;
        config.storage.object_store = Some(url.clone());
    }
    config.check().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// SIGTERM and SIGINT, listened for from now on: installed before the relay says it is
/// ready, so a stop sent the moment it is (an orchestrator's) shuts it down gracefully
/// instead of killing it.
fn shutdown_signals() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn run(args: Args) -> Result<()> {
    let config = config(&args)?;
    let mode = if config.storage.mode == zerok_relay::StorageMode::Vault { "vault" } else { "transit" };
    let relay = Relay::start(config).await.context("starting the relay")?;
    let stop = shutdown_signals()?;
    let addr = relay.addr();
    let http = relay.http_addr().map(|a| a.to_string());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "endpoint_id": hex::encode(addr.id), "addr": addr.to_string(), "http": http, "mode": mode,
            })
        );
    } else {
        println!("zerok-relay {} listening ({mode} mode)", env!("CARGO_PKG_VERSION"));
        println!("endpoint id: {}", hex::encode(addr.id));
        println!("address:     {addr}");
        if let Some(h) = &http {
            println!("http:        http://{h}/health");
        }
    }
    stop.await;
    tracing::info!("shutting down");
    relay.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ZEROK_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zerok-relay: error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("zerok-relay: error: {message}");
            ExitCode::FAILURE
        }
    }
}
