//! Snapshots read without restoring them: `zerok ls` (what one holds), `zerok diff` (what
//! changed between two), `zerok find` (which snapshots hold a name), `zerok dump` (one file
//! to stdout, or a folder as tar). Paths are the ones backed up (`/home/me/app/notes.txt`).

use std::{
    ffi::OsStr,
    io::Write,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use zerok_client::time::rfc3339;
use zerok_vault::{
    MasterIndex, Vault,
    browse::{Browse, Change, diff},
    format::tree::{Node, NodeKind},
};

use crate::common::{VaultArgs, print_json, snapshot, snapshots};

#[derive(clap::Args)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), or `latest`.
    snapshot: String,
    /// List only this path and what lies below it.
    path: Option<PathBuf>,
    /// Show mode, owner, size and modification time.
    #[arg(long, short = 'l')]
    long: bool,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print a JSON array of entries.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The snapshot before (id, unique prefix, or `latest`).
    first: String,
    /// The snapshot after.
    second: String,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object: the changes and their totals.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct FindArgs {
    /// A glob matched against each entry's name, or against its whole path when it holds
    /// a `/` (`*.db`, `/home/*/notes/**`).
    pattern: String,
    /// Search only this snapshot (repeatable; default: all).
    #[arg(long = "snapshot", short = 's')]
    snapshots: Vec<String>,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print a JSON array of matches.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DumpArgs {
    /// Snapshot id (or unique prefix), or `latest`.
    snapshot: String,
    /// The file to write to stdout, or a folder to write as a tar archive.
    path: PathBuf,
    #[command(flatten)]
    vault: VaultArgs,
}

fn kind(node: &Node) -> &'static str {
    match node.kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
    }
}

/// An entry as `--json` shows it.
fn entry_json(path: &Path, node: &Node) -> Value {
    let mut v = json!({
        "path": path.to_string_lossy(),
        "type": kind(node),
        "size": node.size,
        "mode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
        "mtime": rfc3339(node.mtime_ns),
    });
    if let Some(target) = &node.target {
        v["target"] = String::from_utf8_lossy(target).into();
    }
    if let Some(links) = node.links {
        v["links"] = links.count.into();
    }
    if !node.xattrs.is_empty() {
        v["xattrs"] =
            node.xattrs.iter().map(|x| String::from_utf8_lossy(&x.name).into_owned()).collect::<Vec<_>>().into();
    }
    if node.sparse {
        v["sparse"] = true.into();
    }
    v
}

/// `drwxr-xr-x`-style mode.
fn mode_string(node: &Node) -> String {
    let first = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::File => '-',
    };
    let bits = "rwxrwxrwx".chars().enumerate().map(|(i, c)| if node.mode & (0o400 >> i) != 0 { c } else { '-' });
    std::iter::once(first).chain(bits).collect()
}

async fn open_snapshot(vault: &Vault, spec: &str) -> Result<(String, Browse, MasterIndex)> {
    let (id, snap) = snapshot(vault, spec).await?;
    let index = MasterIndex::load(vault).await?;
    let browse =
        Browse::open(vault, &index, &snap).await.with_context(|| format!("reading snapshot {}", id.short()))?;
    Ok((id.to_string(), browse, index))
}

pub async fn ls(args: LsArgs) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let (_, browse, _) = open_snapshot(&unlocked.vault, &args.snapshot).await?;
    let mut listed = Vec::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    browse.visit(args.path.as_deref(), |path, node| {
        if args.json {
            listed.push(entry_json(path, node));
        } else if args.long {
            let _ = writeln!(
                out,
                "{} {:>5} {:>5} {:>12} {} {}",
                mode_string(node),
                node.uid,
                node.gid,
                node.size,
                rfc3339(node.mtime_ns),
                path.display()
            );
        } else {
            let _ = writeln!(out, "{}", path.display());
        }
    })?;
    out.flush()?;
    drop(out);
    if args.json {
        print_json(&Value::Array(listed));
    }
    Ok(0)
}

pub async fn diff_cmd(args: DiffArgs) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let all = snapshots(&unlocked.vault).await?;
    let (a, sa) = Vault::pick(all.clone(), &args.first)?;
    let (b, sb) = Vault::pick(all, &args.second)?;
    let index = MasterIndex::load(&unlocked.vault).await?;
    let (ba, bb) =
        tokio::try_join!(Browse::open(&unlocked.vault, &index, &sa), Browse::open(&unlocked.vault, &index, &sb))?;
    let changes = diff(&ba, &bb)?;
    let size = |n: &Option<Node>| n.as_ref().filter(|n| n.kind == NodeKind::File).map_or(0, |n| n.size);
    let count = |c: Change| changes.iter().filter(|d| d.change == c).count();
    let (added, removed): (u64, u64) = changes.iter().fold((0, 0), |(add, rem), d| match d.change {
        Change::Added => (add + size(&d.after), rem),
        Change::Removed => (add, rem + size(&d.before)),
        Change::Modified => (add + size(&d.after), rem + size(&d.before)),
        Change::Type | Change::Metadata => (add, rem),
    });
    if args.json {
        let list: Vec<Value> = changes
            .iter()
            .map(|d| {
                json!({
                    "path": d.path.to_string_lossy(),
                    "change": format!("{:?}", d.change).to_lowercase(),
                    "mark": d.change.mark().to_string(),
                    "size_before": d.before.as_ref().map(|n| n.size),
                    "size_after": d.after.as_ref().map(|n| n.size),
                })
            })
            .collect();
        print_json(&json!({
            "first": a.to_string(),
            "second": b.to_string(),
            "changes": list,
            "added": count(Change::Added),
            "removed": count(Change::Removed),
            "modified": count(Change::Modified),
            "type_changed": count(Change::Type),
            "metadata_changed": count(Change::Metadata),
            "bytes_added": added,
            "bytes_removed": removed,
        }));
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for d in &changes {
            writeln!(out, "{}    {}", d.change.mark(), d.path.display())?;
        }
        writeln!(
            out,
            "{} added, {} removed, {} modified, {} metadata only; {} added, {} removed",
            count(Change::Added),
            count(Change::Removed),
            count(Change::Modified),
            count(Change::Metadata),
            indicatif::HumanBytes(added),
            indicatif::HumanBytes(removed)
        )?;
        out.flush()?;
    }
    Ok(0)
}

pub async fn find(args: FindArgs) -> Result<u8> {
    let glob = globset::GlobBuilder::new(&args.pattern)
        .literal_separator(true)
        .build()
        .with_context(|| format!("pattern {:?}", args.pattern))?
        .compile_matcher();
    let whole_path = args.pattern.contains('/');
    let unlocked = args.vault.open().await?;
    let all = snapshots(&unlocked.vault).await?;
    let chosen = if args.snapshots.is_empty() {
        all
    } else {
        args.snapshots.iter().map(|s| Ok(Vault::pick(all.clone(), s)?)).collect::<Result<Vec<_>>>()?
    };
    let index = MasterIndex::load(&unlocked.vault).await?;
    let mut found = Vec::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (id, snap) in &chosen {
        let browse = Browse::open(&unlocked.vault, &index, snap).await?;
        let mut header = false;
        browse.visit(None, |path, node| {
            let hit = if whole_path { glob.is_match(path) } else { glob.is_match(OsStr::from_bytes(&node.name)) };
            if !hit {
                return;
            }
            if args.json {
                let mut v = entry_json(path, node);
                v["snapshot"] = id.to_string().into();
                found.push(v);
                return;
            }
            if !header {
                let _ = writeln!(out, "snapshot {} of {}:", id.short(), rfc3339(snap.time_ns));
                header = true;
            }
            let _ = writeln!(
                out,
                "  {} {:>12} {}  {}",
                mode_string(node),
                node.size,
                rfc3339(node.mtime_ns),
                path.display()
            );
        })?;
    }
    out.flush()?;
    drop(out);
    if args.json {
        print_json(&Value::Array(found));
    }
    Ok(0)
}

pub async fn dump(args: DumpArgs) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let (id, browse, index) = open_snapshot(&unlocked.vault, &args.snapshot).await?;
    let Some((path, node)) = browse.get(&args.path)? else {
        bail!("{} is not in snapshot {}", args.path.display(), &id[..8]);
    };
    let node = node.clone();
    let vault = unlocked.vault.clone();
    let runtime = tokio::runtime::Handle::current();
    // The archive is written on a thread of its own, chunks read through the runtime.
    tokio::task::spawn_blocking(move || -> Result<()> {
        let stdout = std::io::stdout().lock();
        let reader = Reader { runtime: &runtime, vault: &vault, index: &index };
        match node.kind {
            NodeKind::File => {
                let mut out = std::io::BufWriter::new(stdout);
                std::io::copy(&mut reader.bytes(&node), &mut out)?;
                out.flush()?;
            }
            NodeKind::Dir => reader.tar(&browse, &path, stdout)?,
            NodeKind::Symlink | NodeKind::Fifo => bail!("{} is not a file or a folder", path.display()),
        }
        Ok(())
    })
    .await??;
    Ok(0)
}

/// Reads chunks for a blocking writer.
struct Reader<'a> {
    runtime: &'a tokio::runtime::Handle,
    vault: &'a Vault,
    index: &'a MasterIndex,
}

/// Chunks read ahead of the one being written.
const READ_AHEAD: usize = 8;

impl Reader<'_> {
    /// A file's bytes as a [`std::io::Read`], [`READ_AHEAD`] chunks fetched ahead.
    fn bytes<'a>(&'a self, node: &'a Node) -> ChunkRead<'a> {
        use futures::StreamExt;
        let (vault, index) = (self.vault, self.index);
        let chunks = futures::stream::iter(node.content.iter())
            .map(move |id| async move { vault.read_chunk(index, id).await })
            .buffered(READ_AHEAD)
            .boxed();
        ChunkRead { runtime: self.runtime, chunks, size: node.size, buf: Vec::new(), at: 0, total: 0 }
    }

    /// Writes the folder at `root` as a tar archive, its entries named below the folder's
    /// own name.
    fn tar(&self, browse: &Browse, root: &Path, out: impl Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let base = root.parent().unwrap_or(Path::new("/"));
        let mut failed = None;
        browse.visit(Some(root), |path, node| {
            if failed.is_some() {
                return;
            }
            let name = path.strip_prefix(base).unwrap_or(path);
            // A backup of `/` itself: its entries are named below it.
            if name.as_os_str().is_empty() {
                return;
            }
            if let Err(e) = self.entry(&mut tar, name, node) {
                failed = Some(e.context(format!("writing {} into the archive", path.display())));
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        tar.into_inner()?.flush()?;
        Ok(())
    }

    fn entry(&self, tar: &mut tar::Builder<impl Write>, name: &Path, node: &Node) -> Result<()> {
        // A name another device wrote could climb out of wherever the archive is unpacked.
        if !node.has_safe_name() {
            bail!("refusing the unsafe name {:?}", String::from_utf8_lossy(&node.name));
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(node.uid.into());
        header.set_gid(node.gid.into());
        header.set_mtime(node.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
        match node.kind {
            NodeKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, name, std::io::empty())?;
            }
            NodeKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_size(0);
                tar.append_data(&mut header, name, std::io::empty())?;
            }
            NodeKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = OsStr::from_bytes(node.target.as_deref().unwrap_or_default());
                tar.append_link(&mut header, name, target)?;
            }
            NodeKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(node.size);
                tar.append_data(&mut header, name, &mut self.bytes(node))?;
            }
        }
        Ok(())
    }
}

/// A file's bytes as a [`std::io::Read`], chunk by chunk, failing when they come to more or
/// less than the size the snapshot lists.
struct ChunkRead<'a> {
    runtime: &'a tokio::runtime::Handle,
    chunks: futures::stream::BoxStream<'a, zerok_vault::Result<Vec<u8>>>,
    size: u64,
    buf: Vec<u8>,
    at: usize,
    /// Bytes read so far.
    total: u64,
}

impl std::io::Read for ChunkRead<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use futures::StreamExt;
        while self.at == self.buf.len() {
            let Some(chunk) = self.runtime.block_on(self.chunks.next()) else {
                if self.total != self.size {
                    let why = format!("{} bytes read where the snapshot lists {}", self.total, self.size);
                    return Err(std::io::Error::other(why));
                }
                return Ok(0);
            };
            (self.buf, self.at) = (chunk.map_err(std::io::Error::other)?, 0);
            self.total += self.buf.len() as u64;
            if self.total > self.size {
                let why = format!("more bytes than the {} the snapshot lists", self.size);
                return Err(std::io::Error::other(why));
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
