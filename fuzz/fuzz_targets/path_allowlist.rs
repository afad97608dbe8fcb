//! `canonicalize` + `Allowlist::allows`: a fuzzed path must never match an
//! entry its canonical form does not.
//!
//! Input: first byte picks the method, the rest is the raw path (lossy UTF-8).
//! Checks: canonical paths are fixed points and safe (visible ASCII, no
//! empty/dot segments, no encoded separators); the same verdict for the
//! canonical form and its re-canonicalization; the fixed Stripe allowlist
//! admits only `POST /v1/payment_intents` and `GET /v1/customers/<one segment>`;
//! a glob-free allowlist entry made of the raw path parses exactly when the
//! path canonicalizes, and then admits it (patterns and paths share one form).
#![no_main]

use std::sync::OnceLock;

use capgate::policy::{canonicalize, Allowlist};
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 9] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "post", "PROPFIND"];

/// The README's example key scope.
fn stripe() -> &'static Allowlist {
    static LIST: OnceLock<Allowlist> = OnceLock::new();
    LIST.get_or_init(|| Allowlist::parse(&["POST /v1/payment_intents", "GET /v1/customers/*"]).expect("fixed allowlist parses"))
}

fn is_dot(seg: &str) -> bool {
    let name = seg.split_once(';').map_or(seg, |(n, _)| n);
    name == "." || name == ".."
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else { return };
    let method = METHODS[usize::from(selector) % METHODS.len()];
    let raw = String::from_utf8_lossy(raw);
    let stripe = stripe();

    let Ok(c) = canonicalize(&raw) else {
        // Refused paths are refused as patterns too (globs aside; entries
        // trim surrounding spaces, paths do not).
        if !raw.contains('*') && METHODS[..7].contains(&method) && raw.trim_matches(' ') == raw.as_ref() {
            assert!(Allowlist::parse(&[format!("{method} {raw}")]).is_err(), "pattern accepted for a refused path: {raw:?}");
        }
        return;
    };

    // Fixed point, same verdict.
    assert_eq!(canonicalize(&c).as_deref(), Ok(c.as_str()), "not idempotent: {raw:?}");
    for m in METHODS {
        assert_eq!(stripe.allows(m, &c), canonicalize(&c).is_ok_and(|cc| stripe.allows(m, &cc)));
    }

    // Safe form.
    assert!(c.starts_with('/'));
    assert!(c.bytes().all(|b| (0x21..=0x7E).contains(&b) && !b"#?\\".contains(&b)), "{c:?}");
    if c != "/" {
        assert!(c[1..].split('/').all(|s| !s.is_empty() && !is_dot(s)), "{c:?}");
    }
    let upper = c.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%25"), "{c:?}");

    // The fixed allowlist admits exactly the intended shapes.
    if stripe.allows(method, &c) {
        let segs: Vec<&str> = c[1..].split('/').collect();
        let ok = (method == "POST" && c == "/v1/payment_intents")
            || (method == "GET" && segs.len() == 3 && segs[0] == "v1" && segs[1] == "customers" && !segs[2].is_empty());
        assert!(ok, "{method} {raw:?} (canonical {c:?}) admitted");
    }

    // A glob-free entry spelled like the raw path admits the canonical path.
    if !raw.contains('*') && METHODS[..7].contains(&method) {
        let entry = format!("{method} {raw}");
        match Allowlist::parse(&[entry.as_str()]) {
            Ok(list) => {
                assert!(list.allows(method, &c), "{entry:?} does not admit {c:?}");
                let again = Allowlist::parse(&list.entries()).expect("normalised entries re-parse");
                assert_eq!(again, list);
            }
            Err((_, e)) => panic!("{entry:?} refused ({e}) though the path canonicalizes to {c:?}"),
        }
    }
});
