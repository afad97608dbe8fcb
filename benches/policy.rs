//! Per-request policy work: path canonicalization, allowlist matching,
//! vault-key lookup in a large registry, and parameter constraint checks.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use capgate::keys::registry::KeyRegistry;
use capgate::keys::{owner_hash, token, KeyRules, VaultKey};
use capgate::policy::{canonicalize, constraints, Allowlist};
use capgate::pricing::Params;
use criterion::{criterion_group, criterion_main, Criterion};

const CLEAN_PATH: &str = "/v1/payment_intents/pi_3PJ1x2LkdIwHu7ix0aBc1234/confirm";
const ESCAPED_PATH: &str = "/v1/customers/cus%5FQ2x9kLmN4pRtYz/sources/%7Esrc%20card%C3%A9/verify%3Fx";

const TEN_ENTRIES: [&str; 10] = [
    "POST /v1/payment_intents",
    "GET /v1/payment_intents/*",
    "POST /v1/payment_intents/*/confirm",
    "POST /v1/payment_intents/*/capture",
    "GET /v1/customers/*",
    "POST /v1/customers",
    "GET /v1/charges/*",
    "POST /v1/refunds",
    "GET /v1/balance",
    "GET /v1/files/**",
];

fn canonicalize_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy/canonicalize");
    g.bench_function("clean", |b| b.iter(|| black_box(canonicalize(black_box(CLEAN_PATH)))));
    g.bench_function("escapes", |b| b.iter(|| black_box(canonicalize(black_box(ESCAPED_PATH)))));
    g.finish();
}

fn allowlist_bench(c: &mut Criterion) {
    let list = Allowlist::parse(&TEN_ENTRIES).expect("valid allowlist");
    // Hit on the 4th entry; miss walks all ten.
    let hit = "/v1/payment_intents/pi_3PJ1x2LkdIwHu7ix0aBc1234/capture";
    let miss = "/v1/payment_intents/pi_3PJ1x2LkdIwHu7ix0aBc1234/cancel";
    assert!(list.allows("POST", hit));
    assert!(!list.allows("POST", miss));
    let mut g = c.benchmark_group("policy/allowlist_10");
    g.bench_function("hit", |b| b.iter(|| black_box(list.allows(black_box("POST"), black_box(hit)))));
    g.bench_function("miss", |b| b.iter(|| black_box(list.allows(black_box("POST"), black_box(miss)))));
    g.finish();
}

fn test_token(i: u64) -> String {
    format!("{}{:048x}", token::TOKEN_PREFIX, i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn key_for(i: u64, allowed: &Arc<Allowlist>) -> VaultKey {
    let id = format!("key_{i:016x}");
    VaultKey {
        owner_hash: owner_hash(&id),
        id: id.into(),
        token_hash: token::hash(&test_token(i)),
        vendor: "stripe".into(),
        label: format!("flowise/session-{i}").into(),
        cap_micros: 50_000_000,
        allowed: Arc::clone(allowed),
        created_ms: 1_715_000_000_000,
        expires_ms: 1_715_003_600_000,
        revoked_ms: None,
        rules: KeyRules::default(),
    }
}

fn registry_bench(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    let allowed = Arc::new(Allowlist::parse(&["POST /v1/payment_intents", "GET /v1/customers/*"]).expect("valid allowlist"));
    let registry = KeyRegistry::new();
    for i in 0..KEYS {
        registry.put(key_for(i, &allowed));
    }
    assert_eq!(registry.len(), KEYS as usize);
    let hit = test_token(KEYS / 2);
    let miss = test_token(KEYS + 7);
    assert!(registry.find(&hit).is_some());
    assert!(registry.find(&miss).is_none());
    let mut g = c.benchmark_group("policy/key_lookup_100k");
    g.bench_function("hit", |b| b.iter(|| black_box(registry.find(black_box(&hit)).is_some())));
    g.bench_function("miss", |b| b.iter(|| black_box(registry.find(black_box(&miss)).is_some())));
    // For scale: the SHA-256 alone, which every lookup pays.
    g.bench_function("sha256_only", |b| b.iter(|| black_box(token::hash(black_box(&hit)))));
    g.finish();
}

fn constraints_bench(c: &mut Criterion) {
    let rules: Vec<(String, Vec<String>)> = vec![
        ("currency".into(), vec!["usd".into(), "eur".into()]),
        ("customer".into(), vec!["cus_*".into()]),
        ("metadata[order]".into(), vec!["ord_*_2024".into(), "test-*".into()]),
    ];
    let body = b"amount=3000&currency=usd&customer=cus_Q2x9kLmN4pRtYz&metadata%5Border%5D=ord_81723_2024&description=Widget";
    let params = Params::parse("", Some("application/x-www-form-urlencoded"), body).expect("form parses");
    assert_eq!(constraints::check(&rules, true, |n| params.str_values(n)), Ok(()));
    let bad = Params::parse("", Some("application/x-www-form-urlencoded"), b"amount=3000&currency=usd&customer=acct_1").expect("form parses");
    c.bench_function("policy/constraints_3/pass", |b| {
        b.iter(|| black_box(constraints::check(black_box(&rules), true, |n| params.str_values(n)).is_ok()))
    });
    c.bench_function("policy/constraints_3/refuse", |b| {
        b.iter(|| black_box(constraints::check(black_box(&rules), true, |n| bad.str_values(n)).is_ok()))
    });
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = canonicalize_bench, allowlist_bench, registry_bench, constraints_bench
}
criterion_main!(benches);
