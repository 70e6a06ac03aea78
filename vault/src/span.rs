//! Blobs to read cut into ranged reads of neighbours: restore's chunks and a backup's parent
//! trees are each fetched a span at a time, not a blob at a time.

use zerok_core::PackId;

use crate::format::{names, pack::BlobEntry};

/// One ranged read of a pack (by object name), `start..end`, and what lies in it.
pub(crate) struct Span<T> {
    pub pack: String,
    pub start: u64,
    pub end: u64,
    pub items: Vec<T>,
}

/// Cuts `placed` (each item with its pack and, through `entry`, its place there) into
/// spans: by pack, in pack order (a bundle's members in body order), neighbours at most
/// `gap` bytes apart together while a span stays within `max` bytes. The members of one
/// bundle always share a span, however long the bundle, so it is read and opened once.
pub(crate) fn cut<T>(
    mut placed: Vec<(PackId, T)>,
    entry: impl Fn(&T) -> &BlobEntry,
    gap: u64,
    max: u64,
) -> Vec<Span<T>> {
    placed.sort_by_key(|(pack, item)| (*pack, entry(item).offset, entry(item).within));
    let mut spans: Vec<Span<T>> = Vec::new();
    let mut last_pack = None;
    for (pack, item) in placed {
        let e = *entry(&item);
        let (start, end) = (e.offset as u64, e.offset as u64 + e.length as u64);
        let same_blob = |s: &Span<T>| {
            s.items.last().map(&entry).is_some_and(|p| p.within.is_some() && e.within.is_some() && p.offset == e.offset)
        };
        match spans.last_mut() {
            Some(s) if last_pack == Some(pack) && (start <= s.end + gap && end - s.start <= max || same_blob(s)) => {
                s.end = s.end.max(end);
                s.items.push(item);
            }
            _ => spans.push(Span { pack: names::pack(&pack), start, end, items: vec![item] }),
        }
        last_pack = Some(pack);
    }
    spans
}
