//! The shared, read-mostly key registry. Cores read it on every request;
//! only the admin API writes it (after the store has the change), so a
//! revocation is visible to every core on its very next request.

use std::sync::Arc;

use dashmap::DashMap;

use super::{token, VaultKey};

/// All known keys, by token hash and by id.
#[derive(Default)]
pub struct KeyRegistry {
    by_hash: DashMap<[u8; 32], Arc<VaultKey>>,
    by_id: DashMap<Arc<str>, [u8; 32]>,
    /// One shared allowlist per distinct entry list.
    allowlists: DashMap<Vec<String>, Arc<crate::policy::Allowlist>>,
}

impl KeyRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a key.
    pub fn put(&self, mut key: VaultKey) {
        let entries = key.allowed.entries();
        key.allowed = Arc::clone(self.allowlists.entry(entries).or_insert_with(|| Arc::clone(&key.allowed)).value());
        self.by_id.insert(key.id.clone(), key.token_hash);
        self.by_hash.insert(key.token_hash, Arc::new(key));
    }

    /// Looks a key up by id.
    pub fn get(&self, id: &str) -> Option<Arc<VaultKey>> {
        let hash = *self.by_id.get(id)?;
        self.by_hash.get(&hash).map(|k| Arc::clone(&k))
    }

    /// Every key (admin listing).
    pub fn all(&self) -> Vec<Arc<VaultKey>> {
        self.by_hash.iter().map(|e| Arc::clone(e.value())).collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The key a presented token belongs to, live or not.
    pub fn find(&self, presented: &str) -> Option<Arc<VaultKey>> {
        if !presented.starts_with(token::TOKEN_PREFIX) {
            return None;
        }
        let hash = token::hash(presented);
        let key = self.by_hash.get(&hash).map(|k| Arc::clone(&k))?;
        token::hashes_equal(&key.token_hash, &hash).then_some(key)
    }
}
