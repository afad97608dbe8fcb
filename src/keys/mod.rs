//! Vault keys: what a key may do ([`VaultKey`]), how its token is made and
//! checked ([`token`]), how an admin request becomes a key ([`spec`]), and
//! the shared read-mostly registry the proxy cores authenticate against
//! ([`registry`]).

pub mod registry;
pub mod spec;
pub mod token;

use serde::{Deserialize, Serialize};

use crate::policy::Allowlist;

/// A vault key as the proxy sees it. Immutable: revocation replaces the
/// registry entry with a revoked copy.
#[derive(Debug, Clone)]
pub struct VaultKey {
    /// Public id (`key_…`), safe to log.
    pub id: std::sync::Arc<str>,
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: [u8; 32],
    /// Vendor this key may call.
    pub vendor: std::sync::Arc<str>,
    /// Free-form label, e.g. `flowise/<session>`.
    pub label: std::sync::Arc<str>,
    /// Daily cap in micro-dollars (UTC day).
    pub cap_micros: u64,
    /// Parsed allowlist, shared by every key with the same entries (the
    /// registry interns it: fleets issue millions of keys from a few policies).
    pub allowed: std::sync::Arc<Allowlist>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
    /// Revocation time, Unix ms.
    pub revoked_ms: Option<u64>,
    /// Which core owns this key's spend ledger (hash of the id).
    pub owner_hash: u64,
    /// Per-key parameter rules.
    pub rules: KeyRules,
}

/// Parameter-level limits of a key (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRules {
    /// Largest single call, micro-dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_call_micros: Option<u64>,
    /// Calls per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Request parameter → allowed value globs (`*` wildcard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<(String, Vec<String>)>,
    /// Allow refunds without an amount, reserving `max_per_call_micros`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_full_refunds: bool,
}

/// The stored form of a key (JSON in the `keys` keyspace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// Vendor name.
    pub vendor: String,
    /// Label.
    pub label: String,
    /// Cap in micro-dollars.
    pub cap_micros: u64,
    /// Allowlist entries as normalised strings.
    pub allowed_endpoints: Vec<String>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
    /// Revocation time, Unix ms.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
    /// Parameter rules.
    #[serde(default)]
    pub rules: KeyRules,
}

impl VaultKey {
    /// Rebuilds a key from its stored record.
    ///
    /// # Errors
    /// A message when the record is corrupt.
    pub fn from_record(r: &KeyRecord) -> Result<VaultKey, String> {
        let hash = token::hash_from_hex(&r.token_sha256).ok_or("bad token hash")?;
        let allowed = Allowlist::parse(&r.allowed_endpoints).map_err(|(i, e)| format!("allowed_endpoints[{i}]: {e}"))?;
        Ok(VaultKey {
            id: r.id.as_str().into(),
            token_hash: hash,
            vendor: r.vendor.as_str().into(),
            label: r.label.as_str().into(),
            cap_micros: r.cap_micros,
            allowed: std::sync::Arc::new(allowed),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            revoked_ms: r.revoked_ms,
            owner_hash: owner_hash(&r.id),
            rules: r.rules.clone(),
        })
    }

    /// Refuses a revoked or expired key.
    ///
    /// # Errors
    /// `key_revoked` or `key_expired`.
    pub fn check_live(&self, now_ms: u64) -> Result<(), crate::error::Refusal> {
        if self.revoked_ms.is_some() {
            return Err(crate::error::Refusal::key_revoked());
        }
        if now_ms >= self.expires_ms {
            return Err(crate::error::Refusal::key_expired());
        }
        Ok(())
    }

    /// The stored record for this key.
    pub fn to_record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id.to_string(),
            token_sha256: token::hash_to_hex(&self.token_hash),
            vendor: self.vendor.to_string(),
            label: self.label.to_string(),
            cap_micros: self.cap_micros,
            allowed_endpoints: self.allowed.entries(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            revoked_ms: self.revoked_ms,
            rules: self.rules.clone(),
        }
    }
}

/// Stable hash of a key id, used to pick its owning core.
pub fn owner_hash(id: &str) -> u64 {
    // FNV-1a: stable across builds and platforms.
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
