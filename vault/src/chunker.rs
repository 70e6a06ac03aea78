//! Content-defined chunking of files through one reusable read buffer.
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
        }
    }

    /// Starts a new stream; bytes left from the previous one are dropped.
    pub fn reset(&mut self) {
        (self.start, self.end, self.eof) = (0, 0, false);
    }

    /// The next chunk of `source`, or `None` at its end.
    ///
    /// # Errors
    /// A read error of `source` (interrupted reads are retried).
    pub fn next_chunk(&mut self, source: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
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
        if self.start == self.end {
            return Ok(None);
        }
        let (_, len) = cut_gear(
            &self.buf[self.start..self.end],
            self.params.min_bytes as usize,
            self.params.avg_bytes as usize,
            max,
            self.masks.0,
            self.masks.1,
            self.masks.0 << 1,
            self.masks.1 << 1,
            &self.gear.0,
            &self.gear.1,
        );
        let chunk = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use fastcdc::v2020::StreamCDC;

    use super::*;

    /// Hands out at most `step` bytes per read, as pipes and network files may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn cuts_where_stream_cdc_cuts_and_loses_no_byte() {
        let params = ChunkerParams { min_bytes: 16 << 10, avg_bytes: 64 << 10, max_bytes: 256 << 10 };
        let seed = 0x5eed;
        let data = noise(3 << 20);
        let mut chunker = Chunker::new(params, seed);
        for len in [0, 1, 10_000, 256 << 10, (256 << 10) + 1, 600_000, 3 << 20] {
            let expected: Vec<Vec<u8>> = StreamCDC::with_level_and_seed(
                &data[..len],
                params.min_bytes as usize,
                params.avg_bytes as usize,
                params.max_bytes as usize,
                Normalization::Level1,
                seed,
            )
            .map(|c| c.unwrap().data)
            .collect();
            for step in [len.max(1), 4096, 777] {
                chunker.reset();
                let mut source = Trickle { data: &data[..len], step };
                let mut got = Vec::new();
                while let Some(chunk) = chunker.next_chunk(&mut source).unwrap() {
                    got.push(chunk);
                }
                assert_eq!(got, expected, "length {len}, reads of {step}");
            }
        }
    }

    #[test]
    fn reports_read_errors() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut chunker = Chunker::new(ChunkerParams::default(), 1);
        chunker.reset();
        let err = chunker.next_chunk(&mut Broken).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
