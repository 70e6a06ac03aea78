//! `zerok mount`: the vault's snapshots as a read-only folder, until ctrl-c (or an
//! unmount) ends it.

use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use zerok_cli::mount::VaultFs;
use zerok_vault::{MasterIndex, Vault};

use crate::common::{VaultArgs, snapshots};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
    /// An empty folder to show the snapshots in: snapshots/<time>/…, latest, ids/, hosts/,
    /// tags/.
    mountpoint: PathBuf,
    /// Let other users see the mount too, each held to the files' recorded owners and modes
    /// (FUSE's allow_other with default_permissions; /etc/fuse.conf must allow it).
    #[arg(long)]
    allow_other: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let meta =
        std::fs::metadata(&args.mountpoint).with_context(|| format!("mount point {}", args.mountpoint.display()))?;
    if !meta.is_dir() {
        bail!("mount point {} is not a folder", args.mountpoint.display());
    }
    // As /proc/self/mounts names it.
    let at = std::fs::canonicalize(&args.mountpoint)
        .with_context(|| format!("mount point {}", args.mountpoint.display()))?;
    let vault = args.vault.open().await?.vault;
    let (index, list) = tokio::join!(MasterIndex::load(&vault), snapshots(&vault));
    let (index, list) = (index?, list?);
    let latest = Vault::pick(list.clone(), "latest").ok().map(|(id, _)| id);
    let count = list.len();
    let fs = VaultFs::new(vault, index, &list, latest, tokio::runtime::Handle::current());
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("zerok".into()),
        fuser::MountOption::Subtype("zerok".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
    ];
    if args.allow_other {
        config.acl = fuser::SessionACL::All;
        config.mount_options.push(fuser::MountOption::DefaultPermissions);
    }
    config.n_threads = Some(4);
    use tokio::signal::unix::{SignalKind, signal};
    // ctrl-c, a kill, or the terminal closing: each unmounts (a dead mount is left by none);
    // caught from before the mount on.
    let (mut int, mut term, mut hup) =
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?);
    let session = fuser::spawn_mount(fs, &at, &config)
        .with_context(|| format!("cannot mount at {} (is /dev/fuse there, and fuse3 installed?)", at.display()))?;
    eprintln!("zerok: {count} snapshots mounted at {}; ctrl-c unmounts", at.display());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut detached = false;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = tick.tick() => {
                if session.guard.is_finished() {
                    // Unmounted: by us, or from outside (fusermount3 -u, umount).
                    session.join().context("the mount ended")?;
                    return Ok(0);
                }
                continue;
            }
        }
        if detached {
            bail!("ended with files of {} still open (they now fail)", at.display());
        }
        match unmount(&at, false) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                unmount(&at, true).context("detaching the mount")?;
                detached = true;
                eprintln!(
                    "zerok: {} is in use (a file open, or a shell inside): detached it; it ends when they close \
                     (ctrl-c again to end now)",
                    at.display()
                );
            }
            Err(e) => return Err(e).with_context(|| format!("unmounting {}", at.display())),
        }
    }
}

/// Unmounts `at` (with `lazy`, detaches it: gone for new lookups, open files read on until
/// closed); through `fusermount3 -u` where this user may not unmount.
fn unmount(at: &Path, lazy: bool) -> std::io::Result<()> {
    let path = std::ffi::CString::new(at.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path holding NUL"))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: umount2 reads the NUL-terminated path, which lives across the call.
    if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(err);
    }
    let mut fusermount = std::process::Command::new("fusermount3");
    fusermount.arg("-u");
    if lazy {
        fusermount.arg("-z");
    }
    let out = fusermount.arg("--").arg(at).output()?;
    if out.status.success() {
        return Ok(());
    }
    // Still mounted after a refusal: in use (fusermount3 says so in words of its own).
    if mounted(at) {
        return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
    }
    Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()))
}

/// Whether something is mounted at `at` (by /proc/self/mounts, which escapes spaces).
fn mounted(at: &Path) -> bool {
    let want = at.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(&want)))
}
