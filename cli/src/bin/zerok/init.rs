//! `zerok init`: create a vault, store this device's key, print the recovery key once.

use anyhow::{Context, Result};
use serde_json::json;
use zerok_client::Home;
use zerok_vault::{InitOptions, Location, Vault};

use crate::common::print_json;

#[derive(clap::Args)]
pub struct Args {
    /// Where to create the vault: a folder path, file:///abs/path or s3://bucket/prefix.
    #[arg(long, env = "ZEROK_VAULT")]
    vault: String,
    /// Create the S3 bucket if it does not exist.
    #[arg(long)]
    create_bucket: bool,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pack_size_mib: u32,
    /// zstd compression level (1–19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression_level: i32,
    /// Print one JSON object (vault_id, recovery_key, …) instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let home = Home::locate()?;
    let location = Location::parse(&args.vault)?;
    if args.create_bucket {
        zerok_vault::store::create_bucket(&location).await?;
    }
    let backend = location.open(&args.vault)?;
    let opts = InitOptions {
        pack_bytes: args.pack_size_mib << 20,
        compression_level: args.compression_level,
        ..InitOptions::default()
    };
    let created = Vault::init(backend, opts).await?;
    let vault_id = created.vault.config().vault_id;
    home.save_device_key(&vault_id, &args.vault, &created.device_key)
        .context("vault created, but this device's key could not be saved (the recovery key still opens it)")?;
    home.set_default_vault(&args.vault)?;
    // The config and this device's slot are kept in the metadata cache: the next command
    // opens the vault without a round trip.
    drop(zerok_client::cached(created.vault));
    if args.json {
        print_json(&json!({
            "vault_id": vault_id.to_string(),
            "vault": args.vault,
            "recovery_key": created.recovery_key.display(),
            "device_slot": created.device_key.slot.to_string(),
        }));
    } else {
        println!("created vault {} at {}", vault_id.short(), args.vault);
        println!();
        println!("RECOVERY KEY (write it down; it is shown only this once):");
        println!();
        println!("    {}", created.recovery_key.display());
        println!();
        println!("This device can open the vault without it; a new device needs it.");
    }
    Ok(0)
}
