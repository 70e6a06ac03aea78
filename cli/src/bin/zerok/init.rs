//! `zerok init`: create a vault, store this device's key, print the recovery key once;
//! with `--append-only`, protect the bucket and print the policy for devices' credentials.

use anyhow::{Context, Result, bail};
use serde_json::json;
use zerok_client::Home;
use zerok_vault::{InitOptions, Location, Vault, append_only};

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
    /// An append-only vault (S3 only), against ransomware and stolen devices: turn on the
    /// bucket's versioning and Object Lock (with these credentials, the operator's), and
    /// print the IAM policy to give devices' credentials (no deletion, no overwrite). Forget,
    /// prune, repair, tag and key remove then need the admin credentials
    /// (ZEROK_ADMIN_AWS_ACCESS_KEY_ID, ZEROK_ADMIN_AWS_SECRET_ACCESS_KEY), and so does key add.
    #[arg(long)]
    append_only: bool,
    /// With --append-only on a store without versioning or Object Lock: rely on the devices'
    /// policy alone (a credential that may delete, such as the admin's, then destroys for good).
    #[arg(long, requires = "append_only")]
    no_object_lock: bool,
    /// With --append-only: days Object Lock keeps every version (governance mode).
    #[arg(long, requires = "append_only", default_value_t = append_only::DEFAULT_RETAIN_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    retain_days: u32,
    /// Print one JSON object (vault_id, recovery_key, …) instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let location = Location::parse(&args.vault)?;
    let Location::S3 { bucket, prefix } = &location else {
        if args.append_only {
            bail!("--append-only needs an s3:// vault: whoever can write a local folder can delete from it");
        }
        return create(args, location, None).await;
    };
    let policy = args.append_only.then(|| append_only::device_policy(bucket, prefix)).transpose()?;
    let object_lock = args.append_only && !args.no_object_lock;
    // Versioning and Object Lock cannot be turned off again: not for a URL that is wrong.
    if object_lock && let Ok(id) = Vault::peek(&location.open(&args.vault)?).await {
        bail!("a vault ({}) already exists at {}; refusing to change its bucket", id.short(), args.vault);
    }
    if args.create_bucket {
        zerok_vault::store::create_bucket(&location, object_lock).await?;
    }
    if object_lock {
        append_only::protect_bucket(&location, args.retain_days).await.context(
            "not created (a bucket `--create-bucket --append-only` makes has Object Lock; or pass \
                 --no-object-lock to rely on the devices' policy alone)",
        )?;
    }
    create(args, location.clone(), policy).await
}

/// Writes the vault; `policy` is an append-only vault's policy for devices.
async fn create(args: Args, location: Location, policy: Option<serde_json::Value>) -> Result<u8> {
    let home = Home::locate()?;
    let backend = location.open(&args.vault)?;
    let opts = InitOptions {
        pack_bytes: args.pack_size_mib << 20,
        compression_level: args.compression_level,
        append_only: args.append_only,
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
        let mut out = json!({
            "vault_id": vault_id.to_string(),
            "vault": args.vault,
            "recovery_key": created.recovery_key.display(),
            "device_slot": created.device_key.slot.to_string(),
        });
        if let Some(policy) = &policy {
            out["append_only"] = json!(true);
            out["object_lock"] = json!(!args.no_object_lock);
            out["device_policy"] = policy.clone();
        }
        print_json(&out);
    } else {
        println!("created vault {} at {}", vault_id.short(), args.vault);
        println!();
        println!("RECOVERY KEY (write it down; it is shown only this once):");
        println!();
        println!("    {}", created.recovery_key.display());
        println!();
        println!("This device can open the vault without it; a new device needs it.");
        if let Some(policy) = &policy {
            println!();
            println!("APPEND-ONLY: give devices credentials held to this IAM policy (`zerok policy` prints it again):");
            println!("{}", serde_json::to_string_pretty(policy)?);
            println!("forget, prune, repair, tag and key add/remove need the admin credentials in");
            println!("{} and {}.", append_only::ADMIN_ACCESS_KEY_ENV, append_only::ADMIN_SECRET_KEY_ENV);
        }
    }
    Ok(0)
}
