//! `zerok policy`: the IAM policy for devices' credentials on an append-only vault.

use anyhow::{Result, bail};
use zerok_client::Home;
use zerok_vault::{Location, append_only};

use crate::common::VaultArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
}

pub fn run(args: Args) -> Result<u8> {
    let url = args.vault.url(&Home::locate()?)?;
    let Location::S3 { bucket, prefix } = Location::parse(&url)? else {
        bail!("{url} is not an s3:// vault: a policy holds S3 credentials");
    };
    println!("{}", serde_json::to_string_pretty(&append_only::device_policy(&bucket, &prefix)?)?);
    Ok(0)
}
