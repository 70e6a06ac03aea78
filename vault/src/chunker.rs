//! Chunking of files through one reusable read buffer: content-defined, or in fixed runs
//! for files whose layout is fixed (SQLite databases, cut at page boundaries).
//!
//! Cut points are FastCDC 2020's (normalization level 1, gear tables keyed by the vault's
//! chunker seed), exactly those of `fastcdc::v2020::StreamCDC` with the same settings, so
//! chunk ids do not change. What differs is the copying: `StreamCDC` shifts its whole buffer
//! down after every chunk and zero-fills a fresh buffer per file; this reader keeps one
//! buffer of two maximum chunks for the whole backup, copies each chunk out once, and moves
//! only the short unchunked tail when it refills.

use std::{borrow::Cow, io::Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

use crate::format::config::ChunkerParams;

/// Splits byte streams into content-defined chunks.
pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    gear: (Cow<'static, [u64]>, Cow<'static, [u64]>),
    buf: Vec<u8>,
    /// Unchunked bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// Cut every this many bytes instead (set per stream by [`Chunker::set_fixed`]).
    fixed: Option<usize>,
}

impl Chunker {
    /// A chunker for `params`, with gear tables keyed by `seed`.
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        Self {
            params,
            masks: select_masks(params.avg_bytes as usize, Normalization::Level1),
            gear: get_gear_with_seed(seed),
            buf: vec![0; 2 * params.max_bytes as usize],
            start: 0,
            end: 0,
            eof: true,
            fixed: None,
        }
    }

    /// Starts a new stream, content-defined; bytes left from the previous one are dropped.
    pub fn reset(&mut self) {
        (self.start, self.end, self.eof) = (0, 0, false);
        self.set_fixed(None);
    }

    /// Cuts the current stream every `bytes` bytes from here on (or content-defined).
    pub fn set_fixed(&mut self, bytes: Option<usize>) {
        self.fixed = bytes.map(|b| b.clamp(1, self.params.max_bytes as usize));
    }

    /// Fills the buffer from `source` (as [`Chunker::next_chunk`] would) and returns the
    /// stream's first unchunked bytes, for a look at its header before cutting it.
    ///
    /// # Errors
    /// A read error of `source`.
    pub fn head(&mut self, source: &mut impl Read) -> std::io::Result<&[u8]> {
        self.fill(source)?;
        Ok(&self.buf[self.start..self.end])
    }

    fn fill(&mut self, source: &mut impl Read) -> std::io::Result<()> {
        let max = self.params.max_bytes as usize;
        if self.end - self.start < max && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            (self.end, self.start) = (self.end - self.start, 0);
            while self.end < self.buf.len() {
                match source.read(&mut self.buf[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The next chunk of `source`, or `None` at its end.
    ///
    /// # Errors
    /// A read error of `source` (interrupted reads are retried).
    pub fn next_chunk(&mut self, source: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
        self.fill(source)?;
        if self.start == self.end {
            return Ok(None);
        }
        let len = match self.fixed {
            Some(fixed) => fixed.min(self.end - self.start),
            None => self.cut(),
        };
        let chunk = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }

    /// FastCDC's length of the next chunk of the buffered bytes.
    fn cut(&self) -> usize {
        cut_gear(
            &self.buf[self.start..self.end],
            self.params.min_bytes as usize,
            self.params.avg_bytes as usize,
            self.params.max_bytes as usize,
            self.masks.0,
            self.masks.1,
            self.masks.0 << 1,
            self.masks.1 << 1,
            &self.gear.0,
            &self.gear.1,
        )
        .1
    }
}
