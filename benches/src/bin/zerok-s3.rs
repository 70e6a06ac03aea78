//! zerok-s3: an S3 protocol server (s3s-fs) on loopback, seen through a pipelined one-way
//! delay ([`TcpDelay`]) when `--delay-ms` is above zero: the object store across a WAN that
//! `benches/compare.py --workload wan` measures every tool against.
//!
//! Prints one JSON object (`endpoint`, `access_key`, `secret_key`, `region`, `delay_ms`) on
//! stdout once it serves, then serves until its standard input closes.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use tokio::io::AsyncReadExt;
use zerok_testkit::{ACCESS_KEY, S3Server, SECRET_KEY, TcpDelay};

#[derive(Parser)]
struct Args {
    /// The folder served; each bucket is a sub-folder of it.
    #[arg(long)]
    root: PathBuf,
    /// Buckets to create (repeatable).
    #[arg(long = "bucket")]
    buckets: Vec<String>,
    /// One-way delay added to every byte, each direction (0: none).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    for bucket in &args.buckets {
        std::fs::create_dir_all(args.root.join(bucket))?;
    }
    let server = S3Server::start(&args.root).await;
    let link = match args.delay_ms {
        0 => None,
        ms => Some(TcpDelay::start(server.addr, Duration::from_millis(ms)).await?),
    };
    let endpoint = link.as_ref().map_or(server.endpoint.clone(), |l| format!("http://{}", l.addr));
    let ready = serde_json::json!({
        "endpoint": endpoint,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "region": "us-east-1",
        "delay_ms": args.delay_ms,
    });
    println!("{ready}");
    let mut rest = Vec::new();
    tokio::io::stdin().read_to_end(&mut rest).await?;
    drop((link, server));
    Ok(())
}
