//! capgate's fjall patch (vendor/fjall/CAPGATE-PATCH.md): a new journal's
//! preallocated range is filled with written zeros ahead of the write
//! position, and what was written reads back the same after a reopen.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use capgate::store::Store;
use fjall::PersistMode;

fn journals(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jnl") {
                out.push(p);
            }
        }
    }
    out
}

/// Bytes of `p` backed by allocated blocks (a hole has none).
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

fn write_synced(store: &Store, from: u32, n: u32) {
    for i in from..from + n {
        let mut b = store.db.batch();
        b.insert(&store.audit, i.to_be_bytes().to_vec(), vec![i as u8; 500]);
        b.commit().unwrap();
        store.db.persist(PersistMode::SyncData).unwrap();
    }
}

fn read_back(store: &Store, n: u32) {
    for i in 0..n {
        let v = store.audit.get(i.to_be_bytes()).unwrap().unwrap_or_else(|| panic!("record {i} lost"));
        assert_eq!(&*v, &vec![i as u8; 500][..], "record {i}");
    }
    assert_eq!(store.audit.iter().count(), n as usize);
}

#[test]
fn synced_appends_land_on_zeroed_blocks_and_recover_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    // About 60 KB of journal: far less than the zeroed range.
    write_synced(&store, 0, 100);
    let js = journals(&data);
    assert_eq!(js.len(), 1, "{js:?}");
    let len = std::fs::metadata(&js[0]).unwrap().len();
    assert_eq!(len, 64 * 1024 * 1024, "the journal keeps its preallocated length");
    let backed = allocated(&js[0]);
    assert!(backed >= 1024 * 1024, "the range ahead of the writes is written zeros, not a hole: {backed} bytes allocated");
    assert!(backed < 4 * 1024 * 1024, "only about one zeroed range ahead: {backed} bytes allocated");
    read_back(&store, 100);
    drop(store);

    // Reopened after a clean close: everything is there, and more appends
    // (to the reopened journal, which is appended to) are too.
    let store = Store::open(&data).unwrap();
    read_back(&store, 100);
    write_synced(&store, 100, 100);
    read_back(&store, 200);
    drop(store);
    // And what went into the reopened journal survives the next reopen.
    let store = Store::open(&data).unwrap();
    read_back(&store, 200);
    // (A kill -9 mid-load, with this journal, is tests/crash_recovery.rs.)
}
