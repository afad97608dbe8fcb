//! One key's recent-request fingerprints for the duplicate-charge guard:
//! who asked what, when, in arrival order, at most a fixed number per key.
//!
//! Every guarded reserve looks a fingerprint up among up to 256 entries, so
//! the lookup scans a one-byte tag per entry (four cache lines, compared 32
//! at a time) and reads a full entry only where its tag matches.

use std::collections::VecDeque;

use super::Dedupe;

/// A fingerprint as two words (word compares beat `memcmp`); its first
/// byte is the tag.
type Packed = [u64; 2];

fn pack(f: &[u8; 16]) -> Packed {
    let x = u128::from_le_bytes(*f);
    [x as u64, (x >> 64) as u64]
}

fn tag(p: &Packed) -> u8 {
    p[0] as u8
}

/// Fingerprints and when each was first seen (Unix ms), oldest first, give
/// or take clock skew between cores and slow uploads (times come from when
/// each request started, so an entry can be older than one before it).
#[derive(Debug, Clone, Default)]
pub(super) struct Recent {
    /// `tag(fingerprint)` of each entry, in step with `items`.
    tags: VecDeque<u8>,
    items: VecDeque<(Packed, u64)>,
    /// No entry was first seen before this: a lower bound, exact after a
    /// sweep, left alone when entries go (so it can only be too low).
    oldest: u64,
}

impl Recent {
    /// When a live (in-window) copy of `fingerprint` was first seen, if
    /// one is held. Expired entries at the front are dropped on the way.
    pub(super) fn find(&mut self, fingerprint: &[u8; 16], d: &Dedupe) -> Option<u64> {
        // `oldest` bounds every entry from below: while it is in the window
        // nothing has expired, and the (cold) front entry is not read.
        if !d.in_window(self.oldest) {
            while self.items.front().is_some_and(|&(_, seen)| !d.in_window(seen)) {
                self.items.pop_front();
                self.tags.pop_front();
            }
        }
        let fp = pack(fingerprint);
        let t = tag(&fp);
        let (a, b) = self.tags.as_slices();
        [(0, a), (a.len(), b)].into_iter().find_map(|(offset, tags)| {
            first_match(tags, t, |i| {
                let (f, seen) = self.items[offset + i];
                (f == fp && d.in_window(seen)).then_some(seen)
            })
        })
    }

    /// Remembers `fingerprint` as first seen at `d.now_ms`. When `max` are
    /// held already, expired entries go first (they can sit behind live
    /// ones), and only then the oldest live one.
    pub(super) fn remember(&mut self, fingerprint: &[u8; 16], d: &Dedupe, max: usize) {
        if self.items.len() >= max {
            if !d.in_window(self.oldest) {
                self.sweep(d);
            }
            while self.items.len() >= max.max(1) {
                self.items.pop_front();
                self.tags.pop_front();
            }
        }
        if max == 0 {
            return;
        }
        if self.items.is_empty() || d.now_ms < self.oldest {
            self.oldest = d.now_ms;
        }
        let fp = pack(fingerprint);
        self.tags.push_back(tag(&fp));
        self.items.push_back((fp, d.now_ms));
    }

    /// Drops every copy of `fingerprint` (its request never reached the vendor).
    pub(super) fn forget(&mut self, fingerprint: &[u8; 16]) {
        let fp = pack(fingerprint);
        self.retain(|f, _| f != fp);
    }

    /// Drops every expired entry and makes `oldest` exact.
    fn sweep(&mut self, d: &Dedupe) {
        self.retain(|_, seen| d.in_window(seen));
        self.oldest = self.items.iter().map(|&(_, seen)| seen).min().unwrap_or(0);
    }

    fn retain(&mut self, mut keep: impl FnMut(Packed, u64) -> bool) {
        let mut kept = 0;
        for i in 0..self.items.len() {
            let (f, seen) = self.items[i];
            if keep(f, seen) {
                self.items[kept] = (f, seen);
                self.tags[kept] = self.tags[i];
                kept += 1;
            }
        }
        self.items.truncate(kept);
        self.tags.truncate(kept);
    }
}

/// Calls `f` with the index of each byte of `tags` equal to `t`, in
/// order, and returns its first `Some`. Compares 32 tags at a time into a
/// bit mask (one vector compare), so a scan costs a few instructions per 32
/// entries rather than a branch per entry.
fn first_match<R>(tags: &[u8], t: u8, mut f: impl FnMut(usize) -> Option<R>) -> Option<R> {
    const LANES: usize = 32;
    let mut chunks = tags.chunks_exact(LANES);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut mask: u32 = 0;
        for (j, &g) in chunk.iter().enumerate() {
            mask |= u32::from(g == t) << j;
        }
        while mask != 0 {
            if let Some(r) = f(base + mask.trailing_zeros() as usize) {
                return Some(r);
            }
            mask &= mask - 1;
        }
        base += LANES;
    }
    chunks.remainder().iter().enumerate().filter(|&(_, &g)| g == t).find_map(|(j, _)| f(base + j))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The guard as it was first written: a plain list scanned in full.
    #[derive(Default)]
    struct Model {
        items: Vec<([u8; 16], u64)>,
    }

    impl Model {
        fn find(&mut self, f: &[u8; 16], d: &Dedupe) -> Option<u64> {
            while self.items.first().is_some_and(|&(_, seen)| !d.in_window(seen)) {
                self.items.remove(0);
            }
            self.items.iter().find(|&&(g, seen)| g == *f && d.in_window(seen)).map(|&(_, seen)| seen)
        }

        fn remember(&mut self, f: &[u8; 16], d: &Dedupe, max: usize) {
            if self.items.len() >= max {
                self.items.retain(|&(_, seen)| d.in_window(seen));
                while self.items.len() >= max.max(1) {
                    self.items.remove(0);
                }
            }
            if max > 0 {
                self.items.push((*f, d.now_ms));
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Look up fingerprint n; remember it unless found.
        Ask(u8),
        /// Forget fingerprint n.
        Forget(u8),
        /// Move the clock (negative: a request that started earlier).
        Tick(i16),
    }

    fn fp(n: u8) -> [u8; 16] {
        // Fingerprints 0..16 share one tag, so tag collisions are exercised.
        let mut f = [n; 16];
        f[0] = if n < 16 { 7 } else { n };
        f
    }

    #[test]
    fn packing_keeps_every_byte() {
        let f: [u8; 16] = std::array::from_fn(|i| i as u8);
        for i in 0..16 {
            let mut g = f;
            g[i] ^= 1;
            assert_ne!(pack(&f), pack(&g), "byte {i}");
        }
    }

    /// Runs `ops` against the guard and the model, comparing every answer
    /// and the entries held after each step.
    fn against_the_model(max: usize, window_ms: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let (mut recent, mut model) = (Recent::default(), Model::default());
        let mut now = 1_000u64;
        for op in ops {
            let d = Dedupe { fingerprint: [0; 16], now_ms: now, window_ms };
            match op {
                Op::Ask(n) => {
                    let got = recent.find(&fp(n), &d);
                    prop_assert_eq!(got, model.find(&fp(n), &d));
                    if got.is_none() {
                        recent.remember(&fp(n), &d, max);
                        model.remember(&fp(n), &d, max);
                    }
                }
                Op::Forget(n) => {
                    recent.forget(&fp(n));
                    model.items.retain(|(g, _)| *g != fp(n));
                }
                Op::Tick(t) => now = now.saturating_add_signed(i64::from(t)),
            }
            let held: Vec<_> = recent.items.iter().map(|&(f, seen)| (f, seen)).collect();
            let want: Vec<_> = model.items.iter().map(|(f, seen)| (pack(f), *seen)).collect();
            prop_assert_eq!(held, want);
            prop_assert!(recent.tags.iter().copied().eq(recent.items.iter().map(|(f, _)| tag(f))), "tags in step with entries");
            prop_assert!(recent.items.iter().all(|&(_, seen)| seen >= recent.oldest));
        }
    Ok(())
    }

    #[test]
    fn tag_matches_are_found_in_order_at_every_length() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let tags: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 4) as u8
                })
                .collect();
            for t in 0..5u8 {
                let want: Vec<usize> = tags.iter().enumerate().filter(|&(_, &g)| g == t).map(|(i, _)| i).collect();
                let mut got = Vec::new();
                let none = first_match(&tags, t, |i| {
                    got.push(i);
                    None::<usize>
                });
                assert_eq!((got, none), (want.clone(), None), "len {len}, tag {t}");
                if let Some(&third) = want.get(2) {
                    let mut seen = Vec::new();
                    let hit = first_match(&tags, t, |i| {
                        seen.push(i);
                        (i == third).then_some(i)
                    });
                    assert_eq!((seen.as_slice(), hit), (&want[..3], Some(third)), "stops at the first `Some` and returns it");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn behaves_like_a_full_scan(
            max in 0usize..9,
            window_ms in 0u64..50,
            ops in prop::collection::vec(prop_oneof![
                4 => (0u8..24).prop_map(Op::Ask),
                1 => (0u8..24).prop_map(Op::Forget),
                3 => (-20i16..30).prop_map(Op::Tick),
            ], 0..200),
        ) {
            against_the_model(max, window_ms, ops)?;
        }

        /// Windows past one 32-entry chunk of tags, and wrapped deques.
        #[test]
        fn behaves_like_a_full_scan_with_long_windows(
            max in 30usize..100,
            window_ms in 0u64..400,
            ops in prop::collection::vec(prop_oneof![
                6 => (0u8..140).prop_map(Op::Ask),
                1 => (0u8..140).prop_map(Op::Forget),
                3 => (-20i16..30).prop_map(Op::Tick),
            ], 0..600),
        ) {
            against_the_model(max, window_ms, ops)?;
        }
    }
}
