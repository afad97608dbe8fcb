//! capgate's fjall patch (vendor/fjall/CAPGATE-PATCH.md): a journal's
//! range ahead of the write position is filled with written zeros (a new
//! journal's preallocation, and past the data of one reopened after a
//! restart), what was written reads back the same after a reopen, and a
//! torn last write (a page of it missing after a power cut) is discarded
//! rather than stopping the database from opening.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use capgate::store::Store;
use fjall::PersistMode;

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn journals(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "jnl")).collect()
}

/// Table files of capgate's keyspaces (keyspace 0 is fjall's own).
fn tables(dir: &Path) -> usize {
    files(dir).iter().filter(|p| p.parent().is_some_and(|d| d.ends_with("tables")) && !p.to_string_lossy().contains("/keyspaces/0/")).count()
}

/// Where the journal's data ends: after its last byte that is not zero.
fn data_end(p: &Path) -> u64 {
    let bytes = std::fs::read(p).unwrap();
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i as u64 + 1)
}

/// Bytes of `p` backed by allocated blocks (a hole has none).
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// A new store in a temp dir (kept while the `TempDir` lives).
fn fresh_store() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    (dir, data, store)
}

/// Overwrites the 4 KiB page at `at` of the store's only journal with
/// zeros: a page of a sync that never reached the disk.
fn lose_page(data: &Path, at: u64) {
    let js = journals(data);
    assert_eq!(js.len(), 1, "{js:?}");
    let f = std::fs::OpenOptions::new().write(true).open(&js[0]).unwrap();
    f.write_all_at(&[0u8; 4096], at).unwrap();
    f.sync_all().unwrap();
}

/// Record `i`'s value: incompressible bytes (the journal compresses what it
/// can), none of them zero.
fn value(i: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8 | 1
        })
        .collect()
}

fn write_synced(store: &Store, from: u32, n: u32, len: usize) {
    for i in from..from + n {
        let mut b = store.db.batch();
        b.insert(&store.audit, i.to_be_bytes().to_vec(), value(i, len));
        b.commit().unwrap();
        store.db.persist(PersistMode::SyncData).unwrap();
    }
}

fn read_back(store: &Store, n: u32, len: usize) {
    for i in 0..n {
        let v = store.audit.get(i.to_be_bytes()).unwrap().unwrap_or_else(|| panic!("record {i} lost"));
        assert!(*v == value(i, len)[..], "record {i} differs");
    }
}

#[test]
fn synced_appends_land_on_zeroed_blocks_and_recover_unchanged() {
    let (_dir, data, store) = fresh_store();
    // About 60 KB of journal in small commits: less than one zeroed range.
    write_synced(&store, 0, 100, 500);
    let js = journals(&data);
    assert_eq!(js.len(), 1, "{js:?}");
    let len = std::fs::metadata(&js[0]).unwrap().len();
    assert_eq!(len, 64 * 1024 * 1024, "the journal keeps its preallocated length");
    let backed = allocated(&js[0]);
    assert!(backed >= 256 * 1024, "the range ahead of the writes is written zeros, not a hole: {backed} bytes allocated");
    assert!(backed < 1024 * 1024, "only about one zeroed range ahead: {backed} bytes allocated");
    // Then 2 MB more in small commits: the zeroed range keeps ahead, and no
    // further than one range.
    write_synced(&store, 100, 4000, 500);
    let end = data_end(&js[0]);
    let backed = allocated(&js[0]);
    assert!(end > 2_000_000, "{end}");
    assert!((end + 64 * 1024..end + 400 * 1024).contains(&backed), "{backed} bytes allocated for {end} bytes of journal");
    // One large commit is not zeroed ahead (it would double what it writes).
    write_synced(&store, 4100, 1, 1_500_000);
    let before = allocated(&js[0]);
    write_synced(&store, 4101, 1, 1_500_000);
    let after = allocated(&js[0]);
    assert!(after - before < 1_600_000, "a large commit allocates about itself: {before} -> {after}");
    assert_eq!(tables(&data), 0, "everything is still in the journal (and the memtable)");
    drop(store);

    // Reopened: recovery replays the journal, zeros and all, and truncates
    // it to its data; appends to the reopened journal are zeroed ahead too
    // (it is written by position, not opened for appending) and survive
    // the next reopen.
    let store = Store::open(&data).unwrap();
    read_back(&store, 4100, 500);
    assert_eq!(store.audit.iter().count(), 4102);
    let js = journals(&data);
    assert_eq!(js.len(), 1, "{js:?}");
    let reopened_end = std::fs::metadata(&js[0]).unwrap().len();
    assert_eq!(reopened_end, data_end(&js[0]), "recovery cut the journal to its data");
    write_synced(&store, 5000, 10, 500);
    let end = data_end(&js[0]);
    assert!(end > reopened_end, "the appends land after the recovered data: {reopened_end} -> {end}");
    let len = std::fs::metadata(&js[0]).unwrap().len();
    assert!(len >= end + 128 * 1024, "zeros written ahead of the reopened journal's writes: {len} bytes for {end} of data");
    assert!(allocated(&js[0]) >= end + 128 * 1024, "and allocated: {}", allocated(&js[0]));
    drop(store);
    let store = Store::open(&data).unwrap();
    assert_eq!(store.audit.iter().count(), 4112);
    assert!(*store.audit.get(5009u32.to_be_bytes()).unwrap().unwrap() == value(5009, 500)[..]);
}

#[test]
fn a_torn_last_write_is_discarded_and_the_store_opens() {
    let (_dir, data, store) = fresh_store();
    // Commits of 20 KB, each spanning several pages.
    write_synced(&store, 0, 6, 20_000);
    assert_eq!(tables(&data), 0, "the records are only in the journal");
    drop(store);
    // A power cut during the last commit's sync: one page in the middle of
    // it never reached the disk and reads as the zeros written ahead.
    let end = data_end(&journals(&data)[0]);
    assert!(end > 6 * 20_000, "six records written: {end} bytes of journal");
    lose_page(&data, (end - 12_000) & !4095);
    // The store opens; the torn record is gone, the five before it are whole.
    let store = Store::open(&data).expect("a torn last write does not stop the store from opening");
    read_back(&store, 5, 20_000);
    assert_eq!(store.audit.iter().count(), 5, "the torn record is discarded");
    // And the journal takes new writes after the discarded one.
    write_synced(&store, 5, 1, 20_000);
    drop(store);
    let store = Store::open(&data).unwrap();
    read_back(&store, 6, 20_000);
    assert_eq!(store.audit.iter().count(), 6);
}

#[test]
fn a_bad_batch_followed_by_good_ones_is_still_an_error() {
    let (_dir, data, store) = fresh_store();
    write_synced(&store, 0, 6, 20_000);
    drop(store);
    // Damage in the middle of the journal, with intact batches after it, is
    // corruption, not a torn write: the store refuses to open.
    lose_page(&data, 40_960);
    assert!(Store::open(&data).is_err(), "mid-journal damage is reported");
}
