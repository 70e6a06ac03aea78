//! What a backup leaves out: entries matching gitignore-style patterns, folders holding a
//! marker file (`.nobackup`, a `CACHEDIR.TAG` with its signature), and what lies on other
//! filesystems than the source path's. The source paths themselves are never left out:
//! naming a path is asking for it.

use std::{ffi::OsString, io::Read, path::Path};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::{Error, Result};

/// The signature a `CACHEDIR.TAG` starts with (<https://bford.info/cachedir/>).
pub const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// What to leave out of a backup.
#[derive(Clone, Debug, Default)]
pub struct Exclude {
    /// Gitignore-style patterns matched against each entry's absolute path: `*.tmp` and
    /// `node_modules` match a name at any depth, `a/b` a path ending in `a/b`, `/home/me/x`
    /// only that path; a trailing `/` matches folders only, `**` any number of folders,
    /// and `!pattern` takes back what an earlier pattern left out (not inside a folder left
    /// out). Later patterns win; `#` starts a comment.
    pub patterns: Vec<String>,
    /// Folders holding one of these files are left out whole.
    pub if_present: Vec<Marker>,
    /// Folders on another filesystem than their source path's are kept empty (the mount
    /// point is restored, not what was mounted there).
    pub one_file_system: bool,
}

/// A file whose presence leaves its folder out: by name, and when a header is given only
/// if the file starts with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The file's name.
    pub name: OsString,
    /// The bytes it must start with.
    pub header: Option<Vec<u8>>,
}

impl Marker {
    /// `NAME` or `NAME:HEADER` (as restic's `--exclude-if-present`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty name or one holding a `/`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, header) = match spec.split_once(':') {
            Some((name, header)) => (name, Some(header.as_bytes().to_vec())),
            None => (spec, None),
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Invalid(format!("exclude marker {spec:?}: give a file name, as in .nobackup")));
        }
        Ok(Self { name: name.into(), header })
    }

    /// A `CACHEDIR.TAG` holding the cache-directory signature.
    pub fn cache_dir_tag() -> Self {
        Self { name: "CACHEDIR.TAG".into(), header: Some(CACHEDIR_SIGNATURE.as_bytes().to_vec()) }
    }

    /// Whether `dir` holds this marker (a regular file, not through a symlink).
    fn in_dir(&self, dir: &Path) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(&self.name);
        // Never through a symlink, never waiting on a fifo put there.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|f| Ok((f.metadata()?.is_file(), f)));
        let Ok((true, file)) = opened else { return false };
        let Some(header) = &self.header else { return true };
        let mut head = Vec::with_capacity(header.len());
        file.take(header.len() as u64).read_to_end(&mut head).is_ok_and(|_| head == *header)
    }
}

/// [`Exclude`] made ready for the walk.
pub(super) struct Filter {
    patterns: Gitignore,
    markers: Vec<Marker>,
    pub one_file_system: bool,
}

impl Filter {
    /// Compiles the patterns.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming a pattern that is not a glob.
    pub fn new(exclude: &Exclude) -> Result<Self> {
        let mut builder = GitignoreBuilder::new("/");
        for pattern in &exclude.patterns {
            builder
                .add_line(None, &anywhere(pattern))
                .map_err(|e| Error::Invalid(format!("exclude pattern {pattern:?}: {}", reason(&e))))?;
        }
        let patterns = builder.build().map_err(|e| Error::Invalid(format!("exclude patterns: {}", reason(&e))))?;
        Ok(Self { patterns, markers: exclude.if_present.clone(), one_file_system: exclude.one_file_system })
    }

    /// Whether the entry at `path` (absolute) is left out by a pattern or, for a folder,
    /// by a marker inside it.
    pub fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        if self.patterns.matched(path, is_dir).is_ignore() {
            return true;
        }
        is_dir && self.markers.iter().any(|m| m.in_dir(path))
    }
}

/// A pattern with a `/` inside (not at its start) matches at any depth, as restic's do; in
/// a `.gitignore` it would be anchored to the file's folder, which here is `/`.
fn anywhere(pattern: &str) -> String {
    let (bang, body) = match pattern.strip_prefix('!') {
        Some(rest) => ("!", rest),
        None => ("", pattern),
    };
    let inner = body.trim_end_matches('/');
    if body.starts_with('/') || body.starts_with("**") || body.starts_with('#') || !inner.contains('/') {
        return pattern.to_string();
    }
    format!("{bang}**/{body}")
}

/// The glob error without the crate's own wording around it.
fn reason(e: &ignore::Error) -> String {
    match e {
        ignore::Error::Glob { err, .. } => err.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> Filter {
        Filter::new(&Exclude { patterns: patterns.iter().map(|p| p.to_string()).collect(), ..Default::default() })
            .unwrap()
    }

    #[test]
    fn patterns_match_as_documented() {
        let f = filter(&["*.tmp", "node_modules", "build/", ".cache/thumbs", "/srv/app/logs", "!keep.tmp"]);
        let ex = |p: &str, dir| f.excludes(Path::new(p), dir);
        assert!(ex("/home/a/x.tmp", false));
        assert!(!ex("/home/a/keep.tmp", false), "a later ! takes it back");
        assert!(ex("/home/a/deep/node_modules", true));
        assert!(ex("/home/a/build", true));
        assert!(!ex("/home/a/build", false), "a trailing / matches folders only");
        assert!(ex("/home/a/.cache/thumbs", true), "a/b matches at any depth");
        assert!(!ex("/home/a/cache/thumbs", true));
        assert!(ex("/srv/app/logs", true));
        assert!(!ex("/other/srv/app/logs", true), "a leading / anchors at the root");
        assert!(!ex("/home/a/notes.txt", false));
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let err = Filter::new(&Exclude { patterns: vec!["a/{b".into()], ..Default::default() }).err().unwrap();
        assert!(err.to_string().contains("\"a/{b\""), "{err}");
    }

    #[test]
    fn markers_need_their_header_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let (tagged, fake, plain) = (dir.path().join("t"), dir.path().join("f"), dir.path().join("p"));
        for d in [&tagged, &fake, &plain] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(tagged.join("CACHEDIR.TAG"), format!("{CACHEDIR_SIGNATURE}\n# made by a test")).unwrap();
        std::fs::write(fake.join("CACHEDIR.TAG"), "not the signature").unwrap();
        std::fs::write(plain.join(".nobackup"), "").unwrap();
        let f = Filter::new(&Exclude {
            if_present: vec![Marker::cache_dir_tag(), Marker::parse(".nobackup").unwrap()],
            ..Default::default()
        })
        .unwrap();
        assert!(f.excludes(&tagged, true));
        assert!(!f.excludes(&fake, true));
        assert!(f.excludes(&plain, true));
        assert!(!f.excludes(&plain.join(".nobackup"), false), "a marker is looked for in folders only");
        assert!(Marker::parse("a/b").is_err() && Marker::parse("").is_err());
    }
}
