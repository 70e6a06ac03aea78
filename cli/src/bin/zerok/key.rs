//! `zerok key list|add|remove`: key slots. Adding or removing a slot never re-encrypts data.

use anyhow::{Context, Result, bail};
use serde_json::json;
use zerok_client::Home;
use zerok_core::{Kdf, SlotId};
use zerok_vault::SlotKind;

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List key slots.
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a passphrase slot (from ZEROK_NEW_PASSPHRASE or a hidden prompt), or with
    /// --device a key slot for this device.
    Add {
        #[command(flatten)]
        vault: VaultArgs,
        /// Add a device key for this device instead of a passphrase.
        #[arg(long)]
        device: bool,
        /// Label shown by `key list` (default: host name).
        #[arg(long)]
        label: Option<String>,
    },
    /// Remove a key slot (by id or unique prefix). The last recovery slot cannot be removed.
    Remove {
        /// Slot id or prefix.
        slot: String,
        #[command(flatten)]
        vault: VaultArgs,
    },
}

fn total_ram_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(8192, |kib| kib / 1024)
}

pub async fn run(args: Args) -> Result<u8> {
    match args.action {
        Action::List { vault, json } => {
            let unlocked = vault.open().await?;
            let slots = unlocked.vault.slots().await?;
            if json {
                let list: Vec<_> = slots
                    .iter()
                    .map(|(id, s)| json!({"id": id.to_string(), "kind": s.kind.to_string(), "label": s.label, "created": s.created}))
                    .collect();
                print_json(&serde_json::Value::Array(list));
            } else {
                for (id, s) in &slots {
                    println!("{}  {:<10}  {}", id.short(), s.kind.to_string(), s.label);
                }
            }
        }
        Action::Add { vault, device, label } => {
            let unlocked = vault.open_admin("key add", true).await?;
            let label = label.unwrap_or_else(zerok_vault::hostname);
            if device {
                let home = Home::locate()?;
                let key = unlocked.vault.add_device(&label).await?;
                let url = vault.url(&home)?;
                home.save_device_key(&unlocked.vault.config().vault_id, &url, &key)?;
                println!("added device slot {}", key.slot.short());
            } else {
                let pass = match std::env::var("ZEROK_NEW_PASSPHRASE") {
                    Ok(p) => p,
                    Err(_) => rpassword::prompt_password("new passphrase: ").context("reading passphrase")?,
                };
                if pass.chars().count() < 8 {
                    bail!("passphrase too short: use at least 8 characters");
                }
                let id = unlocked
                    .vault
                    .add_slot(SlotKind::Passphrase, Kdf::argon2_for_ram(total_ram_mib()), pass.as_bytes(), &label)
                    .await?;
                println!("added passphrase slot {}", id.short());
            }
        }
        Action::Remove { slot, vault } => {
            let unlocked = vault.open_admin("key remove", true).await?;
            let slots = unlocked.vault.slots().await?;
            let want = slot.to_ascii_lowercase();
            let hits: Vec<SlotId> =
                slots.iter().map(|(id, _)| *id).filter(|id| id.to_string().starts_with(&want)).collect();
            match hits.as_slice() {
                [id] if !want.is_empty() => {
                    unlocked.vault.remove_slot(id).await?;
                    println!("removed key slot {}", id.short());
                }
                [] => bail!("no key slot matches {slot:?}"),
                _ => bail!("{slot:?} matches several key slots; give more digits"),
            }
        }
    }
    Ok(0)
}
