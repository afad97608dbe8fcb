//! `keys::spec::build_key` on arbitrary admin request bodies.
//!
//! Checks: never panics; an accepted key is sane (cap within the maximum,
//! expiry after creation and within 366 days, token hash matches the token,
//! label within limits); its allowlist entries re-parse to the same list; the
//! stored record survives JSON and rebuilds the same key.
#![no_main]

use capgate::keys::spec::{build_key, MAX_CAP_USD, MAX_EXPIRES};
use capgate::keys::{token, KeyRecord, VaultKey};
use capgate::policy::Allowlist;
use libfuzzer_sys::fuzz_target;

const NOW_MS: u64 = 1_715_678_467_123;

fuzz_target!(|data: &[u8]| {
    let known = |v: &str| matches!(v, "stripe" | "demo" | "twilio" | "resend" | "openai" | "anthropic");
    let Ok(new) = build_key(data, known, NOW_MS) else { return };
    let key = &new.key;

    assert!(known(&key.vendor));
    assert!(key.cap_micros as f64 <= MAX_CAP_USD * 1_000_000.0);
    assert!(key.expires_ms > key.created_ms);
    assert!(key.expires_ms - key.created_ms <= MAX_EXPIRES.as_millis() as u64);
    assert_eq!(key.token_hash, token::hash(&new.token));
    assert!(new.token.starts_with(token::TOKEN_PREFIX));
    assert!(key.label.len() <= 256 && !key.label.chars().any(char::is_control));
    assert!(!key.allowed.is_empty());
    if key.rules.allow_full_refunds {
        assert!(key.rules.max_per_call_micros.is_some());
    }

    let entries = key.allowed.entries();
    let again = Allowlist::parse(&entries).unwrap_or_else(|(i, e)| panic!("entry {i} {:?} does not re-parse: {e}", entries[i]));
    assert_eq!(&again, &*key.allowed);
    assert_eq!(again.entries(), entries);

    let json = serde_json::to_vec(&key.to_record()).expect("record serializes");
    let record: KeyRecord = serde_json::from_slice(&json).expect("record deserializes");
    let rebuilt = VaultKey::from_record(&record).expect("stored record rebuilds");
    assert_eq!(rebuilt.allowed, key.allowed);
    assert_eq!(rebuilt.rules, key.rules);
    assert_eq!((rebuilt.cap_micros, rebuilt.expires_ms, rebuilt.owner_hash), (key.cap_micros, key.expires_ms, key.owner_hash));
    assert_eq!(rebuilt.token_hash, key.token_hash);
});
