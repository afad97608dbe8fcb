//! Admin key routes: create (token shown once), list, get with today's
//! spend, revoke. The store is written (fsynced) before the registry, so a
//! key the API reports is never lost and a revocation the API reports is
//! already enforced.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{AdminState, Reply};
use crate::clock;
use crate::error::{usd, Refusal};
use crate::keys::spec::build_key;
use crate::keys::VaultKey;
use crate::ledger::query_spent;

fn key_json(k: &VaultKey) -> Value {
    json!({
        "id": k.id,
        "vendor": k.vendor,
        "label": k.label,
        "daily_usd_cap": usd(k.cap_micros),
        "allowed_endpoints": k.allowed.entries(),
        "created_at": clock::rfc3339(k.created_ms),
        "expires_at": clock::rfc3339(k.expires_ms),
        "revoked": k.revoked_ms.is_some(),
        "revoked_at": k.revoked_ms.map(clock::rfc3339),
        "max_usd_per_call": k.rules.max_per_call_micros.map(usd),
        "max_calls": k.rules.max_calls,
        "constraints": k.rules.constraints.iter().map(|(p, v)| (p.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
        "allow_full_refunds": k.rules.allow_full_refunds,
    })
}

/// `POST /v1/keys`.
///
/// # Errors
/// 400 naming the bad field; 500 if the store fails.
pub fn create(state: &AdminState, body: &[u8]) -> Result<Reply, Refusal> {
    let new = build_key(body, |v| state.vendors.get(v).is_some(), clock::now_ms())?;
    state.store.put_key(&new.key.to_record()).map_err(Refusal::internal)?;
    let mut v = key_json(&new.key);
    v["token"] = json!(new.token);
    v["vault_key"] = json!(new.token);
    tracing::info!(key_id = %new.key.id, vendor = %new.key.vendor, label = %new.key.label, "vault key issued");
    state.registry.put(new.key);
    Ok(Reply::json(201, &v))
}

/// Most keys one batch may issue.
pub const MAX_BATCH: usize = 10_000;

/// `POST /v1/keys/batch`: a JSON array of key bodies (as for
/// `POST /v1/keys`), issued all or nothing with one fsync. For fleets that
/// pre-issue keys, and the bench harness.
///
/// # Errors
/// 400 naming the entry and field; 500 if the store fails.
pub fn create_batch(state: &AdminState, body: &[u8]) -> Result<Reply, Refusal> {
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| Refusal::bad_request("invalid_json", format!("body must be a JSON array of key requests: {e}")))?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(Refusal::bad_request("invalid_field", format!("batch: 1 to {MAX_BATCH} keys per request")));
    }
    let now = clock::now_ms();
    let mut new = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        let k = build_key(&bytes, |v| state.vendors.get(v).is_some(), now).map_err(|mut r| {
            r.message = format!("[{i}] {}", r.message);
            r
        })?;
        new.push(k);
    }
    let records: Vec<_> = new.iter().map(|k| k.key.to_record()).collect();
    state.store.put_keys(&records).map_err(Refusal::internal)?;
    let data: Vec<Value> = new
        .into_iter()
        .map(|k| {
            let mut v = key_json(&k.key);
            v["token"] = json!(k.token);
            state.registry.put(k.key);
            v
        })
        .collect();
    tracing::info!(count = data.len(), "vault keys issued in a batch");
    Ok(Reply::json(201, &json!({ "data": data, "count": data.len() })))
}

/// `GET /v1/keys?label_prefix=`.
///
/// # Errors
/// Never in practice.
pub fn list(state: &AdminState, q: &HashMap<String, String>) -> Result<Reply, Refusal> {
    let prefix = q.get("label_prefix").map(String::as_str).unwrap_or("");
    let mut keys = state.registry.all();
    keys.retain(|k| k.label.starts_with(prefix));
    keys.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
    let data: Vec<Value> = keys.iter().map(|k| key_json(k)).collect();
    Ok(Reply::json(200, &json!({ "data": data, "count": data.len() })))
}

fn not_found(id: &str) -> Refusal {
    Refusal::new(404, "key_not_found", crate::error::Source::Client, format!("no vault key {id}"))
}

/// `GET /v1/keys/{id}` with today's spend from the owning core.
///
/// # Errors
/// 404 for an unknown id.
pub async fn get(state: &AdminState, id: &str) -> Result<Reply, Refusal> {
    let k = state.registry.get(id).ok_or_else(|| not_found(id))?;
    let today = clock::day_of(clock::now_ms());
    let spent = query_spent(&state.mailboxes, &k.id, k.owner_hash, today).await.unwrap_or(0);
    let mut v = key_json(&k);
    v["spent_today_usd"] = json!(usd(spent));
    v["remaining_today_usd"] = json!(usd(k.cap_micros.saturating_sub(spent)));
    Ok(Reply::json(200, &v))
}

/// `DELETE /v1/keys/{id}`: revoke (idempotent).
///
/// # Errors
/// 404 for an unknown id; 500 if the store fails.
pub fn revoke(state: &AdminState, id: &str) -> Result<Reply, Refusal> {
    let k = state.registry.get(id).ok_or_else(|| not_found(id))?;
    if k.revoked_ms.is_none() {
        let mut revoked = (*k).clone();
        revoked.revoked_ms = Some(clock::now_ms());
        state.store.put_key(&revoked.to_record()).map_err(Refusal::internal)?;
        tracing::info!(key_id = %revoked.id, "vault key revoked");
        state.registry.put(revoked);
    }
    let k = state.registry.get(id).ok_or_else(|| not_found(id))?;
    Ok(Reply::json(200, &key_json(&k)))
}
