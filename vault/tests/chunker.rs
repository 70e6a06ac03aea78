//! The chunker cuts where `fastcdc::v2020::StreamCDC` cuts (chunk ids must not change),
//! loses no byte whatever sizes the reads come in, and reports read errors.

mod common;

use std::io::Read;

use common::noise;
use fastcdc::v2020::{Normalization, StreamCDC};
use zerok_vault::{chunker::Chunker, format::config::ChunkerParams};

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

#[test]
fn cuts_where_stream_cdc_cuts_and_loses_no_byte() {
    let params = ChunkerParams { min_bytes: 16 << 10, avg_bytes: 64 << 10, max_bytes: 256 << 10 };
    let seed = 0x5eed;
    let data = noise(7, 3 << 20);
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
