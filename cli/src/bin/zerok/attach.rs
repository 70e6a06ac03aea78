//! `zerok sync push --attach`, `zerok sync fetch`, `zerok sync serve`: attachments.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use serde_json::json;
use zerok_client::sync::{ContentSource, SyncClient, SyncEvent, SyncHome};
use zerok_core::sync::content::ContentHash;

use crate::common::print_json;

/// Longest wait for the group's vault relays to archive an attachment.
const ARCHIVE_WAIT: Duration = Duration::from_secs(30 * 60);

pub async fn push(home: SyncHome, data: &[u8], attach: &Path, mime: &str, wait: bool, json: bool) -> Result<u8> {
    let mut client = SyncClient::connect(home).await?;
    let pushed = client.push_attached(data, ContentSource::Path(attach.to_path_buf()), mime).await?;
    let hash = pushed.content.hash;
    let archived = if wait { client.wait_archived(&hash, ARCHIVE_WAIT).await? } else { 0 };
    if json {
        print_json(&json!({
            "cursor": pushed.cursor,
            "blob_id": pushed.blob_id.to_string(),
            "content": hash.to_string(),
            "size": pushed.content.size,
            "archived": archived,
        }));
    } else {
        println!("pushed attachment {hash} ({} bytes) at cursor {}", pushed.content.size, pushed.cursor);
        if archived == 0 {
            println!(
                "no vault relay holds it: keep this device online (`zerok sync serve`) until the others fetched it"
            );
        }
    }
    client.disconnect().await;
    Ok(0)
}

pub async fn fetch(home: SyncHome, reference: &str, out: &Path, json: bool) -> Result<u8> {
    let hash = ContentHash::from_hex(reference.trim())
        .context("an attachment reference is 64 hex digits, as `pull --json` shows in `content`")?;
    if out.exists() {
        anyhow::bail!("{} exists: not overwritten", out.display());
    }
    let mut client = SyncClient::connect(home).await?;
    let content = client
        .content(&hash)
        .with_context(|| format!("no message pulled here references attachment {hash}: run `zerok sync pull` first"))?;
    let bar =
        if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(content.encrypted_size()) };
    let mut events = client.subscribe();
    let watch = bar.clone();
    let shown = tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if let SyncEvent::ContentProgress { received, .. } = e {
                watch.set_position(received);
            }
        }
    });
    let fetched = client.fetch_content(&content, out).await;
    shown.abort();
    bar.finish_and_clear();
    let fetched = fetched?;
    if json {
        print_json(&json!({
            "content": hash.to_string(),
            "size": fetched.size,
            "received": fetched.received,
            "resumed_from": fetched.resumed_from,
            "out": out.display().to_string(),
        }));
    } else {
        println!("fetched {} bytes into {}", fetched.size, out.display());
    }
    client.disconnect().await;
    Ok(0)
}

/// How often `serve` refreshes the roster without being told it changed.
const SERVE_REFRESH: Duration = Duration::from_secs(60);

pub async fn serve(home: SyncHome) -> Result<u8> {
    let mut client = SyncClient::connect(home).await?;
    let mut events = client.subscribe();
    eprintln!("zerok: serving this device's attachments; interrupt to stop");
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for an interrupt")?;
                break;
            }
            e = events.recv() => match e {
                Ok(SyncEvent::RosterChanged { .. }) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    client.refresh_roster().await?;
                }
                Ok(_) => {}
                Err(_) => anyhow::bail!("connection to the relay closed"),
            },
            // Also notices a dropped connection, and reconnects.
            _ = tokio::time::sleep(SERVE_REFRESH) => client.refresh_roster().await?,
        }
    }
    client.disconnect().await;
    Ok(0)
}
