//! `zerok completions SHELL` and `zerok man`: what shells and `man` need, made from the
//! same argument definitions the program parses with (so they never drift from it).

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// The folder to write the pages into (created when missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub fn completions<C: clap::CommandFactory>(args: CompletionsArgs) -> Result<u8> {
    let mut command = C::command();
    clap_complete::generate(args.shell, &mut command, "zerok", &mut std::io::stdout());
    Ok(0)
}

pub fn man<C: clap::CommandFactory>(args: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let command = C::command();
    clap_mangen::generate_to(command, &args.out)
        .with_context(|| format!("writing man pages into {}", args.out.display()))?;
    eprintln!("zerok: man pages written into {}", args.out.display());
    Ok(0)
}
