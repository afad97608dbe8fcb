//! `Params::parse` + `pricing::quote` over arbitrary requests, for every vendor.
//!
//! Input: byte 0 picks the vendor, byte 1 the method; the rest is
//! `path \0 query \0 content-type \0 body` (missing fields are empty; an
//! absent content-type field means no header).
//! Checks: never panics; parsing and quoting are deterministic; non-POST
//! calls and unlisted paths are free (the shipped table has no `extra`
//! rules); an operator `extra` rule prices an unlisted path at exactly its
//! price whatever the parameters; only OpenAI/Anthropic settle from usage,
//! and their reserve covers the body bytes at the worst input rate (a fixed
//! quote from them is an unlisted call and costs 0); the
//! constraint checker accepts any parsed parameters.
#![no_main]

use std::sync::OnceLock;

use capgate::policy::constraints;
use capgate::pricing::llm::reserve_micros;
use capgate::pricing::table::FixedPrice;
use capgate::pricing::{quote, CompiledPrices, Params, PriceRequest, PriceTable, Quote, Settle, VendorKind};
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 6] = ["POST", "GET", "post", "DELETE", "PUT", "Post"];
const EXTRA_USD: f64 = 1.5;

fn shipped() -> &'static CompiledPrices {
    static P: OnceLock<CompiledPrices> = OnceLock::new();
    P.get_or_init(|| PriceTable::default().compile().expect("shipped table compiles"))
}

/// The shipped table plus one operator rule per vendor for `* /x-unlisted/*`.
fn with_extra() -> &'static CompiledPrices {
    static P: OnceLock<CompiledPrices> = OnceLock::new();
    P.get_or_init(|| {
        let mut t = PriceTable::default();
        for v in VendorKind::ALL {
            t.extra.push(FixedPrice { vendor: v.name().into(), method: "*".into(), path: "/x-unlisted/*".into(), usd: EXTRA_USD });
        }
        t.compile().expect("table with extra rules compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let [v, m, rest @ ..] = data else { return };
    let vendor = VendorKind::ALL[usize::from(*v) % VendorKind::ALL.len()];
    let method = METHODS[usize::from(*m) % METHODS.len()];
    let mut fields = rest.splitn(4, |b| *b == 0);
    let path = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let content_type = fields.next().map(|ct| String::from_utf8_lossy(ct).into_owned());
    let body = fields.next().unwrap_or_default();

    let Ok(params) = Params::parse(&query, content_type.as_deref(), body) else { return };
    assert_eq!(Params::parse(&query, content_type.as_deref(), body).as_ref(), Ok(&params), "parse is not deterministic");
    let _ = constraints::check(&[("to".into(), vec!["*@example.com".into()]), ("currency".into(), vec!["usd".into()])], true, |n| params.str_values(n));

    let req = PriceRequest { vendor, method, path: &path, query: &query, content_type: content_type.as_deref(), body };
    let got = quote(&req, &params, shipped());
    assert_eq!(got, quote(&req, &params, shipped()), "quote is not deterministic");

    if !method.eq_ignore_ascii_case("POST") {
        assert_eq!(got, Ok(Quote::fixed(0)), "{method} priced");
    }

    // Unlisted paths are free, and extra rules price them whatever the body says.
    for unlisted in ["/x-unlisted/abc", "/x-unlisted/%41"] {
        let r = PriceRequest { path: unlisted, ..req };
        assert_eq!(quote(&r, &params, shipped()), Ok(Quote::fixed(0)), "{unlisted} priced");
        assert_eq!(quote(&r, &params, with_extra()), Ok(Quote::fixed(1_500_000)), "extra rule not applied");
    }

    match got {
        Ok(Quote { settle: Settle::Usage { prices, .. }, reserve_micros: reserve }) => {
            assert!(matches!(vendor, VendorKind::OpenAi | VendorKind::Anthropic), "{vendor:?} settles from usage");
            let floor = reserve_micros(&prices, body.len() as u64, 0);
            assert!(reserve >= floor, "reserve {reserve} below the body's input bound {floor}");
        }
        Ok(Quote { settle: Settle::Fixed, reserve_micros: reserve }) => {
            // LLM vendors settle every listed call from usage: a fixed quote
            // is an unlisted call, free under the shipped table.
            if matches!(vendor, VendorKind::OpenAi | VendorKind::Anthropic) {
                assert_eq!(reserve, 0, "unlisted {vendor:?} call priced");
            }
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
