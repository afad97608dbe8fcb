//! The fjall database and its keyspaces: `keys` (key records, hashes only),
//! `audit` (rkyv events by time), `spend` (per-day, per-key spend rows,
//! checkpointed by the audit writer; see `audit::spend`), `views` (per-day spend views
//! kept by the compaction thread) and `meta` (admin token hash, view cursor).
//! Only control-plane threads touch it; proxy cores never call fjall.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::keys::KeyRecord;

/// Storage errors, as text for the operator.
pub type StoreResult<T> = Result<T, String>;

/// A storage error as operator text.
pub(crate) fn err(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

/// The opened database.
pub struct Store {
    /// The fjall database.
    pub db: Database,
    /// Key records by id.
    pub keys: Keyspace,
    /// Audit events by `ts_ms ‖ seq` (big-endian).
    pub audit: Keyspace,
    /// Spend checkpoint by `day ‖ key_id` (see [`spend_value`]); read it
    /// through `audit::spend`, which adds the events logged since.
    pub spend: Keyspace,
    /// Materialised spend views (see `views`).
    pub views: Keyspace,
    /// Small settings.
    pub meta: Keyspace,
}

/// Encodes a `spend` value: micro-dollars then calls, big-endian.
pub fn spend_value(micros: u64, calls: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&micros.to_be_bytes());
    v[8..].copy_from_slice(&calls.to_be_bytes());
    v
}

/// Decodes a `spend` value.
pub fn parse_spend_value(v: &[u8]) -> Option<(u64, u32)> {
    let micros = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let calls = v.get(8..12).and_then(|c| c.try_into().ok()).map_or(0, u32::from_be_bytes);
    Some((micros, calls))
}

/// A `spend` row as (key id, micro-dollars, calls).
///
/// # Errors
/// When the value is malformed.
pub fn parse_spend_row((k, v): (fjall::UserKey, fjall::UserValue)) -> StoreResult<(String, u64, u32)> {
    let id = String::from_utf8_lossy(k.get(4..).unwrap_or_default()).into_owned();
    let (micros, calls) = parse_spend_value(&v).ok_or_else(|| "store: bad spend value".to_string())?;
    Ok((id, micros, calls))
}

/// `spend` keyspace key for a day and key id.
pub fn spend_key(day: u32, key_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key_id.len());
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(key_id.as_bytes());
    k
}

impl Store {
    /// Opens (or creates) the database under `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created or the database is corrupt or locked.
    pub fn open(dir: &Path) -> StoreResult<Store> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        let db = Database::builder(dir).worker_threads(1).open().map_err(err)?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(err);
        Ok(Store { keys: ks("keys")?, audit: ks("audit")?, spend: ks("spend")?, views: ks("views")?, meta: ks("meta")?, db })
    }

    /// Writes a key record durably (fsync) before returning.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn put_key(&self, rec: &KeyRecord) -> StoreResult<()> {
        let v = serde_json::to_vec(rec).map_err(err)?;
        self.keys.insert(rec.id.as_bytes(), v).map_err(err)?;
        self.db.persist(PersistMode::SyncAll).map_err(err)
    }

    /// Writes many key records with one fsync.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn put_keys(&self, recs: &[KeyRecord]) -> StoreResult<()> {
        let mut b = self.db.batch();
        for rec in recs {
            b.insert(&self.keys, rec.id.as_bytes().to_vec(), serde_json::to_vec(rec).map_err(err)?);
        }
        b.commit().map_err(err)?;
        self.db.persist(PersistMode::SyncAll).map_err(err)
    }

    /// Every stored key record.
    ///
    /// # Errors
    /// On I/O failure or a corrupt record.
    pub fn load_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        self.keys
            .iter()
            .map(|g| {
                let (_, v) = g.into_inner().map_err(err)?;
                serde_json::from_slice(&v).map_err(err)
            })
            .collect()
    }

    /// The checkpointed spend and call count of every key on `day`, for
    /// tests: events logged after the checkpoint are not in them
    /// (`audit::spend`, which recovery uses, adds them).
    ///
    /// # Errors
    /// On I/O failure or a corrupt value.
    #[cfg(test)]
    pub(crate) fn spend_rows_for_day(&self, day: u32) -> StoreResult<Vec<(String, u64, u32)>> {
        self.spend.prefix(day.to_be_bytes()).map(|g| parse_spend_row(g.into_inner().map_err(err)?)).collect()
    }

    /// Reads a `meta` value.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn meta_get(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.meta.get(name).map_err(err)?.map(|v| v.to_vec()))
    }

    /// Writes a `meta` value durably.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.meta.insert(name, value.to_vec()).map_err(err)?;
        self.db.persist(PersistMode::SyncAll).map_err(err)
    }
}
