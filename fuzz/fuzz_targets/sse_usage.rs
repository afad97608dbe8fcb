//! `SseUsageScanner`: the usage read from a stream depends only on its bytes,
//! never on how the network split them.
//!
//! Input: byte 0 picks the vendor (bit 0) and the number of cut points
//! (bits 1..=5); then two bytes (LE) per cut point; the rest is the stream.
//! Checks: whole == split at the cut points (empty pieces included) ==
//! byte-by-byte (for short streams); `usage()` is a pure read.
#![no_main]

use capgate::pricing::{LlmVendor, SseUsageScanner, Usage};
use libfuzzer_sys::fuzz_target;

fn scan<'a>(vendor: LlmVendor, pieces: impl IntoIterator<Item = &'a [u8]>) -> Option<Usage> {
    let mut s = SseUsageScanner::new(vendor);
    for p in pieces {
        s.feed(p);
    }
    let first = s.usage();
    assert_eq!(s.usage(), first, "usage() changed the scanner");
    first
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let vendor = if head & 1 == 0 { LlmVendor::OpenAi } else { LlmVendor::Anthropic };
    let cuts_wanted = usize::from((head >> 1) & 0x1f);
    let cut_bytes = (cuts_wanted * 2).min(rest.len() / 2 * 2);
    let (cut_raw, stream) = rest.split_at(cut_bytes);

    let mut cuts: Vec<usize> = cut_raw
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();

    let whole = scan(vendor, [stream]);
    let split = scan(vendor, cuts.windows(2).map(|w| &stream[w[0]..w[1]]));
    assert_eq!(whole, split, "cuts at {cuts:?} change the usage");
    if stream.len() <= 4096 {
        assert_eq!(whole, scan(vendor, stream.chunks(1)), "byte-by-byte feeding changes the usage");
    }
});
