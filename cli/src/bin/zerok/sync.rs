//! `zerok sync …`: membership in a sync group and its encrypted messages.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use serde_json::json;
use zerok_client::{
    Error, Home,
    sync::{SyncClient, SyncEvent, SyncHome, create, join},
};
use zerok_core::sync::{DeviceId, message::PushPlatform};
use zerok_wire::RelayAddr;

use crate::common::print_json;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Create a sync group on this device.
    Create {
        /// Relay address as the relay printed it (ENDPOINT_ID@IP:PORT); repeat for more.
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
        /// This device's name (default: host name).
        #[arg(long)]
        name: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Make a single-use invite (URL for a QR code, and a short code), valid 10 minutes.
    Invite {
        /// Print one JSON object with `url` and `code`.
        #[arg(long)]
        json: bool,
    },
    /// Join a group with an invite URL or a short code.
    Join {
        /// `zerok://pair?invite=…` or `XXXX-XXXX-XXXX-XXXX`.
        invite: String,
        /// Relay holding a short code's invite (also from ZEROK_RELAY).
        #[arg(long, env = "ZEROK_RELAY")]
        relay: Option<String>,
        /// This device's name (default: host name).
        #[arg(long)]
        name: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt and push a file (or `-` for standard input) to the group.
    Push {
        /// File to push as the message, or `-` (with --attach: optional, the message that
        /// goes with the attachment).
        #[arg(required_unless_present = "attach")]
        file: Option<PathBuf>,
        /// Attach a file (up to 100 MiB): encrypted here and served to the group's devices
        /// over iroh-blobs; only its sealed reference goes through the relays.
        #[arg(long, value_name = "FILE")]
        attach: Option<PathBuf>,
        /// The attachment's media type.
        #[arg(long, default_value = "application/octet-stream")]
        mime: String,
        /// Do not wait for the group's vault relays to archive the attachment (this device
        /// must then stay online, e.g. `zerok sync serve`, until the others fetched it).
        #[arg(long)]
        no_wait: bool,
        /// Print one JSON object with `cursor` and `blob_id` (and `content`, `size`).
        #[arg(long)]
        json: bool,
    },
    /// Fetch an attachment a pulled message referenced (from its sender, or a vault relay)
    /// into a new file.
    Fetch {
        /// Its reference (`content` in `pull --json`).
        content: String,
        /// File to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stay online serving this device's attachments until interrupted.
    Serve,
    /// How this device reaches others: shows the settings, and changes those given. All
    /// off by default (a self-hosted group dials its relays by address). Taken at the
    /// next connection.
    Net {
        /// iroh's public relay servers: hole punching across NATs (they see who talks to
        /// whom, never what).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        iroh_relays: Option<bool>,
        /// iroh's DNS discovery: relays and devices found by id alone, anywhere (n0's
        /// servers learn this device's id and addresses).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        discovery: Option<bool>,
        /// Local-network discovery (mDNS): devices and relays on this LAN found by id alone,
        /// e.g. a device whose address changed since it attached a file (anyone on the LAN
        /// sees this device's id).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        mdns: Option<bool>,
        /// Print one JSON object: `iroh_relays`, `discovery`, `mdns`.
        #[arg(long)]
        json: bool,
    },
    /// This device's mobile push token, so relays wake it when a message arrives while it
    /// is offline.
    PushToken {
        #[command(subcommand)]
        action: PushTokenAction,
    },
    /// Pull and decrypt new messages. Exit 3 when some were refused (named on stderr).
    Pull {
        /// One JSON line per message: `cursor`, `blob_id`, `sender`, `data` (base64).
        #[arg(long)]
        json: bool,
        /// Keep waiting for new messages (until interrupted).
        #[arg(long)]
        follow: bool,
    },
    /// List the group's devices.
    Devices {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: a signed roster entry removes it and moves every other device to a
    /// new group secret, so it cannot read anything pushed afterwards under any key.
    Revoke {
        /// Device id (hex, as `devices` shows it).
        device_id: String,
        /// Rotate the group secret (the default; kept for scripts).
        #[arg(long, conflicts_with = "no_rotate")]
        rotate: bool,
        /// Only have relays refuse the device, keeping the secret: for a device that is lost,
        /// not stolen. It can still read what is pushed later if a relay helps it.
        #[arg(long)]
        no_rotate: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
enum PushTokenAction {
    /// Register (or replace) the token at every relay of the group.
    Register {
        /// The platform's token.
        #[arg(long)]
        token: String,
        /// `apns` or `fcm`.
        #[arg(long, value_parser = ["apns", "fcm"])]
        platform: String,
        /// The app (APNs bundle id).
        #[arg(long)]
        app_id: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Drop the token at every relay.
    Unregister {
        /// Why: user-disabled, token-expired, app-uninstalled.
        #[arg(long, default_value = "user-disabled")]
        reason: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// With `pull --follow`, pull at least this often even without a NOTIFY.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(30);

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("say on or off".into()),
    }
}

fn sync_home() -> Result<SyncHome> {
    Ok(Home::locate()?.sync())
}

fn relays(list: &[String]) -> Result<Vec<RelayAddr>> {
    list.iter().map(|r| RelayAddr::parse(r).map_err(anyhow::Error::from)).collect()
}

/// A file's bytes, or standard input's for `-`.
fn read_input(file: &std::path::Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut data).context("reading standard input")?;
    } else {
        data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(data)
}

fn print_received(client: &SyncClient, json: bool, items: &[zerok_client::sync::Received]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    for m in items {
        if json {
            let mut line = json!({
                "cursor": m.cursor,
                "blob_id": m.blob_id.to_string(),
                "sender": m.sender.to_string(),
                "this_device": m.sender == client.device_id(),
                "data": b64.encode(&m.data),
            });
            if let Some(c) = &m.content {
                line["content"] = json!(c.hash.to_string());
                line["size"] = json!(c.size);
                line["mime"] = json!(c.mime);
                line["name"] = json!(c.name);
            }
            print_json(&line);
        } else {
            let attached = m.content.as_ref().map_or(String::new(), |c| {
                format!(
                    ", attachment {} ({} bytes, {}): zerok sync fetch {} --out FILE",
                    c.hash, c.size, c.mime, c.hash
                )
            });
            println!(
                "{} {} from {} ({} bytes{attached})",
                m.cursor,
                m.blob_id,
                &m.sender.to_string()[..16],
                m.data.len()
            );
        }
    }
}

/// Says on stderr why a message or roster entry was refused; whether it was one.
fn warn_refused(event: &SyncEvent) -> bool {
    let why = match event {
        SyncEvent::DecryptFailed { cursor } => format!("message at cursor {cursor} does not decrypt: not delivered"),
        SyncEvent::Forged { cursor } => {
            format!("message at cursor {cursor} is not signed by the member the relay names: not delivered")
        }
        SyncEvent::RosterRefused { reason } => format!("roster entry refused: {reason}"),
        _ => return false,
    };
    eprintln!("zerok: warning: {why}");
    true
}

pub async fn run(args: Args) -> Result<u8> {
    let home = sync_home()?;
    let name = |n: Option<String>| n.unwrap_or_else(zerok_vault::hostname);
    match args.action {
        Action::Create { relays: list, name: n, json } => {
            let client = create(home, &relays(&list)?, &name(n)).await?;
            if json {
                print_json(&json!({ "device_id": client.device_id().to_string(), "relays": list }));
            } else {
                println!("created a sync group; this device is {}", client.device_id());
            }
            client.disconnect().await;
        }
        Action::Invite { json } => {
            let mut client = SyncClient::connect(home).await?;
            let (url, code) = client.invite().await?;
            if json {
                print_json(
                    &json!({ "url": url, "code": code.to_string(), "expires_in_secs": zerok_client::sync::INVITE_SECS }),
                );
            } else {
                println!("invite URL (QR): {url}");
                println!("short code:      {code}   (single use, valid 10 minutes)");
            }
            client.disconnect().await;
        }
        Action::Join { invite, relay, name: n, json } => {
            let relay = relay.map(|r| RelayAddr::parse(&r)).transpose()?;
            let client = join(home, &invite, relay.as_ref(), &name(n)).await?;
            if json {
                print_json(&json!({ "device_id": client.device_id().to_string() }));
            } else {
                println!("joined the sync group; this device is {}", client.device_id());
            }
            client.disconnect().await;
        }
        Action::Push { file, attach: Some(attach), mime, no_wait, json } => {
            let data = match file {
                Some(file) => read_input(&file)?,
                None => Vec::new(),
            };
            return crate::attach::push(home, &data, &attach, &mime, !no_wait, json).await;
        }
        Action::Fetch { content, out, json } => return crate::attach::fetch(home, &content, &out, json).await,
        Action::Serve => return crate::attach::serve(home).await,
        Action::Net { iroh_relays, discovery, mdns, json } => {
            let mut net = home.net()?;
            if iroh_relays.is_some() || discovery.is_some() || mdns.is_some() {
                net.iroh_relays = iroh_relays.unwrap_or(net.iroh_relays);
                net.discovery = discovery.unwrap_or(net.discovery);
                net.mdns = mdns.unwrap_or(net.mdns);
                home.set_net(net)?;
            }
            if json {
                print_json(&serde_json::to_value(net)?);
            } else {
                let word = |on: bool| if on { "on" } else { "off" };
                println!("iroh-relays {}", word(net.iroh_relays));
                println!("discovery   {}", word(net.discovery));
                println!("mdns        {}", word(net.mdns));
            }
        }
        Action::PushToken { action } => {
            let mut client = SyncClient::connect(home).await?;
            let (done, json) = match action {
                PushTokenAction::Register { token, platform, app_id, json } => {
                    let platform = if platform == "apns" { PushPlatform::Apns } else { PushPlatform::Fcm };
                    client.register_push_token(&token, platform, app_id.as_deref()).await?;
                    ("registered", json)
                }
                PushTokenAction::Unregister { reason, json } => {
                    client.unregister_push_token(&reason).await?;
                    ("unregistered", json)
                }
            };
            if json {
                print_json(&json!({ "push_token": done }));
            } else {
                println!("push token {done} at the group's relays");
            }
            client.disconnect().await;
        }
        Action::Push { file, attach: None, json, .. } => {
            let data = read_input(&file.context("a file to push")?)?;
            let mut client = match SyncClient::connect(home.clone()).await {
                Ok(c) => c,
                Err(e @ (Error::Unreachable(_) | Error::Connection(_))) => {
                    let blob_id = SyncClient::queue_offline(&home, &data)?;
                    if json {
                        print_json(&json!({ "cursor": null, "blob_id": blob_id.to_string(), "queued": true }));
                    }
                    eprintln!("zerok: no relay reachable ({e}); queued, sent on the next connect");
                    return Ok(crate::EXIT_PARTIAL);
                }
                Err(e) => return Err(e.into()),
            };
            let (blob_id, cursor) = client.push(&data).await?;
            if json {
                print_json(&json!({ "cursor": cursor, "blob_id": blob_id.to_string() }));
            } else {
                println!("pushed {} bytes as {blob_id} at cursor {cursor}", data.len());
            }
            client.disconnect().await;
        }
        Action::Pull { json, follow } => {
            let mut client = SyncClient::connect(home).await?;
            let mut events = client.subscribe();
            let mut refused = 0;
            loop {
                let items = client.pull().await?;
                print_received(&client, json, &items);
                while let Ok(e) = events.try_recv() {
                    refused += u32::from(warn_refused(&e));
                }
                if !follow {
                    break;
                }
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {
                            client.disconnect().await;
                            return Ok(0);
                        }
                        e = events.recv() => match e {
                            // A roster change: a pull brings it (and who may fetch this
                            // device's attachments) up to date.
                            Ok(SyncEvent::BlobAvailable { .. } | SyncEvent::RosterChanged { .. })
                            | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Ok(e) => {
                                warn_refused(&e);
                                continue;
                            }
                            Err(_) => anyhow::bail!("connection to the relay closed"),
                        },
                        // A pull now and then also notices a dropped connection and reconnects.
                        _ = tokio::time::sleep(FOLLOW_POLL) => break,
                    }
                }
            }
            client.disconnect().await;
            if refused > 0 {
                return Ok(crate::EXIT_PARTIAL);
            }
        }
        Action::Devices { json } => {
            let mut client = SyncClient::connect(home).await?;
            let me = client.device_id();
            let devices = client.list_devices().await?;
            if json {
                let list: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        json!({
                            "device_id": d.device_id.to_string(),
                            "name": d.name,
                            "last_seen": d.last_seen,
                            "this_device": d.device_id == me,
                            "online": d.online,
                            "revoked": d.revoked,
                            "added_by": d.added_by.to_string(),
                            "removed_by": d.removed_by.map(|r| r.to_string()),
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(list));
            } else {
                for d in &devices {
                    let tag = if d.device_id == me {
                        " (this device)"
                    } else if d.revoked {
                        " (revoked)"
                    } else {
                        ""
                    };
                    println!("{}  {}{}  added by {}", d.device_id, d.name, tag, &d.added_by.to_string()[..16]);
                }
            }
            client.disconnect().await;
        }
        Action::Revoke { device_id, rotate: _, no_rotate, json } => {
            let device =
                DeviceId::from_hex(&device_id).context("device id: 64 hex digits, as `zerok sync devices` shows")?;
            let mut client = SyncClient::connect(home).await?;
            let invited: Vec<String> = client
                .list_devices()
                .await?
                .iter()
                .filter(|d| d.added_by == device && d.device_id != device && !d.revoked)
                .map(|d| d.device_id.to_string())
                .collect();
            client.revoke(device, !no_rotate).await?;
            if json {
                print_json(&json!({ "revoked": device_id, "rotated": !no_rotate, "invited_by_it": invited }));
            } else if no_rotate {
                println!("revoked {device_id}; the group secret was NOT rotated: relays refuse it, but it still holds");
                println!("the secret, so a relay that helps it could let it read what is pushed from now on");
            } else {
                println!("revoked {device_id} and moved the other devices to a new group secret");
            }
            if !invited.is_empty() {
                eprintln!(
                    "zerok: devices this one admitted are still members (revoke them too if they are not yours): {}",
                    invited.join(", ")
                );
            }
            client.disconnect().await;
        }
    }
    Ok(0)
}
