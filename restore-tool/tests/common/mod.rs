//! Helpers shared by the restore tests.

use std::path::Path;

/// Every entry under `root`, sorted: files with their bytes, symlinks with their target,
/// folders as `<dir>`.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if m.file_type().is_symlink() {
                out.push((rel, std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()));
            } else if m.is_dir() {
                stack.push(p);
                out.push((rel, b"<dir>".to_vec()));
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
