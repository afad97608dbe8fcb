//! Request parameters: one parsed view of the query string plus a form or
//! JSON body, built once per request and read by pricing and constraints.
//!
//! Body kind: `application/json` (or `+json`) → JSON; `application/x-www-form-urlencoded`
//! → form; otherwise a body starting with `{`/`[` is JSON, and with no content
//! type at all a body containing `=` is form. Anything else (multipart, …)
//! contributes no parameters, so pricing that needs them refuses.
//!
//! Form arrays (`to[]=a&to[]=b`, `to[0]=a`, or a repeated plain key) surface
//! as one [`ParamValue::Array`] under the bare name. Duplicate scalar keys
//! therefore become arrays, and pricing refuses arrays where it needs one
//! value: capgate never guesses which duplicate the vendor will honour.
//! Body parameters win over query parameters with the same name.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde_json::{Number, Value};

use super::PriceError;

/// One parameter value, borrowed from the request where it needed no
/// decoding.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue<'a> {
    /// A string (every form value is a string).
    Str(Cow<'a, str>),
    /// A JSON number.
    Num(Number),
    /// A JSON boolean.
    Bool(bool),
    /// An array; scalar elements as text, non-scalar elements omitted.
    Array(Vec<String>),
}

/// Parsed parameters of one request, borrowing from its query and body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params<'a> {
    /// Query parameters, overwritten by form-body parameters.
    fields: BTreeMap<Cow<'a, str>, ParamValue<'a>>,
    /// The JSON body, when the body is JSON.
    json: Option<Value>,
    /// A non-empty body that gave no parameters (multipart, plain text, …).
    opaque: Option<&'a [u8]>,
    /// The query and the form body (empty if the body is not a form) as
    /// sent, for [`Self::write_canonical`].
    sent: (&'a [u8], &'a [u8]),
    /// Folding them into `fields` lost how they were spelled: an array key,
    /// a repeated key, or a name in both.
    folded: bool,
}

/// How the body is to be read.
enum BodyKind {
    Json,
    Form,
    Opaque,
}

impl<'a> Params<'a> {
    /// Parses the query and body. Invalid JSON → [`PriceError::BadBody`].
    pub fn parse(query: &'a str, content_type: Option<&str>, body: &'a [u8]) -> Result<Self, PriceError> {
        let mut folded = false;
        let mut fields = form_fields(query.as_bytes(), &mut folded);
        let (mut json, mut opaque, mut form) = (None, None, &[][..]);
        match body_kind(content_type, body) {
            BodyKind::Json => {
                json = Some(serde_json::from_slice(body).map_err(|_| PriceError::BadBody)?)
            }
            BodyKind::Form => {
                form = body;
                for (name, value) in form_fields(body, &mut folded) {
                    folded |= fields.insert(name, value).is_some();
                }
            }
            BodyKind::Opaque => opaque = Some(body).filter(|b| !b.is_empty()),
        }
        Ok(Params { fields, json, opaque, sent: (query.as_bytes(), form), folded })
    }

    /// Writes a canonical form of the parameters to `out`, for telling
    /// requests apart: equal for the same parameters in another order (form
    /// fields by name, JSON object keys sorted) or JSON spacing; different
    /// for any other change. Query and form fields by name, each name and
    /// value length-prefixed, then the query as sent (so a field in the
    /// query and the same field in the body differ); then the JSON body
    /// re-serialised; then an opaque body's bytes. When parsing folded
    /// spellings together (`to[]`, `to[0]`, a repeated key, a name in both
    /// query and body), the query and the form body are written instead as
    /// their decoded pairs, each stably sorted by name: the order of a
    /// name's values is kept, and no two spellings a vendor may read
    /// differently write the same.
    ///
    /// # Errors
    /// Only those of `out`.
    pub fn write_canonical(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let (query, form) = self.sent;
        if self.folded {
            for (section, raw) in [(&b"query"[..], query), (b"form", form)] {
                let mut pairs: Vec<_> = form_urlencoded::parse(raw).collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0)); // stable: a name's values keep their order
                out.write_all(section)?;
                out.write_all(&(pairs.len() as u64).to_be_bytes())?;
                for (name, value) in &pairs {
                    part(out, name.as_bytes())?;
                    part(out, value.as_bytes())?;
                }
            }
        } else {
            self.write_fields(out)?;
            out.write_all(b"query")?;
            part(out, query)?;
        }
        if let Some(v) = &self.json {
            out.write_all(b"json")?;
            serde_json::to_writer(&mut *out, v)?;
        }
        if let Some(raw) = self.opaque {
            out.write_all(b"raw")?;
            part(out, raw)?;
        }
        Ok(())
    }

    /// The fields part of [`Self::write_canonical`] when nothing was
    /// folded: each field is then one pair's text.
    fn write_fields(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(b"fields")?;
        for (name, value) in &self.fields {
            part(out, name.as_bytes())?;
            match value {
                ParamValue::Str(s) => part(out, s.as_bytes())?,
                // Only folding makes arrays; JSON values live in `json`.
                ParamValue::Array(_) | ParamValue::Num(_) | ParamValue::Bool(_) => out.write_all(b"?")?,
            }
        }
        Ok(())
    }

    /// The value of a top-level parameter (JSON `null`/objects → `None`).
    pub fn get(&self, name: &str) -> Option<ParamValue<'_>> {
        if let Some(Value::Object(map)) = &self.json {
            if let Some(v) = map.get(name) {
                return from_json(v);
            }
        }
        self.fields.get(name).cloned()
    }

    /// Every value of `name` as text, arrays flattened (for constraints).
    pub fn str_values(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            None => Vec::new(),
            Some(ParamValue::Str(s)) => vec![s.into_owned()],
            Some(ParamValue::Num(n)) => vec![n.to_string()],
            Some(ParamValue::Bool(b)) => vec![b.to_string()],
            Some(ParamValue::Array(items)) => items,
        }
    }

    /// A single non-negative integer (`"123"` or `123`); else `None`.
    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            ParamValue::Str(s) => parse_u64(&s),
            ParamValue::Num(n) => n.as_u64(),
            ParamValue::Bool(_) | ParamValue::Array(_) => None,
        }
    }

    /// A single boolean (`true`/`"true"`, `false`/`"false"`); else `None`.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            ParamValue::Bool(b) => Some(b),
            ParamValue::Str(s) if s == "true" => Some(true),
            ParamValue::Str(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// The parsed JSON body, if the body was JSON.
    pub fn raw_json(&self) -> Option<&Value> {
        self.json.as_ref()
    }
}

/// Writes `bytes` with its length in front, so parts cannot run together.
fn part(out: &mut impl std::io::Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_be_bytes())?;
    out.write_all(bytes)
}

/// Strict decimal `u64`: ASCII digits only, no sign or spaces.
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Scalar elements of a JSON string-or-array value, as text.
pub(crate) fn json_strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn from_json(value: &Value) -> Option<ParamValue<'_>> {
    match value {
        Value::String(s) => Some(ParamValue::Str(Cow::Borrowed(s))),
        Value::Number(n) => Some(ParamValue::Num(n.clone())),
        Value::Bool(b) => Some(ParamValue::Bool(*b)),
        Value::Array(_) => Some(ParamValue::Array(json_strings(value))),
        Value::Null | Value::Object(_) => None,
    }
}

fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return BodyKind::Opaque;
    }
    let media = content_type.map(media_type);
    if let Some(m) = media {
        // Compared as bytes: the client's media type may hold multi-byte characters.
        let m = m.as_bytes();
        if m.eq_ignore_ascii_case(b"application/json") || m.len() >= 5 && m[m.len() - 5..].eq_ignore_ascii_case(b"+json") {
            return BodyKind::Json;
        }
        if m.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            return BodyKind::Form;
        }
    }
    if matches!(trimmed.first(), Some(b'{' | b'[')) {
        BodyKind::Json
    } else if media.is_none() && body.contains(&b'=') {
        BodyKind::Form
    } else {
        BodyKind::Opaque
    }
}

/// Media type without parameters (`; charset=…`), in the case sent:
/// compare it ignoring ASCII case.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Form pairs by name, array spellings folded into one array. Sets
/// `folded` when a name was spelled as an array or came more than once.
fn form_fields<'a>(bytes: &'a [u8], folded: &mut bool) -> BTreeMap<Cow<'a, str>, ParamValue<'a>> {
    let mut fields = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        let base = match &key {
            Cow::Borrowed(k) => array_base(k).map(Cow::Borrowed),
            Cow::Owned(k) => array_base(k).map(|b| Cow::Owned(b.to_owned())),
        };
        *folded |= base.is_some();
        *folded |= match base {
            Some(base) => push(&mut fields, base, value, true),
            None => push(&mut fields, key, value, false),
        };
    }
    fields
}

/// `to[]` / `to[3]` → `to`; anything else (e.g. `metadata[k]`) → `None`.
fn array_base(key: &str) -> Option<&str> {
    let inner = key.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let index = inner.get(open + 1..)?;
    if index.bytes().all(|b| b.is_ascii_digit()) {
        inner.get(..open)
    } else {
        None
    }
}

/// Adds a pair; `true` when its name was already there.
fn push<'a>(fields: &mut BTreeMap<Cow<'a, str>, ParamValue<'a>>, key: Cow<'a, str>, value: Cow<'a, str>, array: bool) -> bool {
    match fields.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(if array {
                ParamValue::Array(vec![value.into_owned()])
            } else {
                ParamValue::Str(value)
            });
            false
        }
        Entry::Occupied(mut slot) => {
            let existing = slot.get_mut();
            match existing {
                ParamValue::Array(items) => items.push(value.into_owned()),
                ParamValue::Str(first) => {
                    *existing = ParamValue::Array(vec![std::mem::take(first).into_owned(), value.into_owned()])
                }
                ParamValue::Num(_) | ParamValue::Bool(_) => *existing = ParamValue::Str(value),
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(query: &'a str, body: &'a str) -> Params<'a> {
        Params::parse(
            query,
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        )
        .unwrap()
    }

    fn arr(items: &[&str]) -> ParamValue<'static> {
        ParamValue::Array(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn form_scalars_and_numbers() {
        let p = form("", "amount=1999&currency=usd&metadata%5Border%5D=42");
        assert_eq!(p.get("amount"), Some(ParamValue::Str("1999".into())));
        assert_eq!(p.u64("amount"), Some(1999));
        assert_eq!(p.get("metadata[order]"), Some(ParamValue::Str("42".into())));
        assert_eq!(p.u64("currency"), None);
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn form_arrays_all_spellings() {
        let p = form("", "to[]=a&to[]=b");
        assert_eq!(p.get("to"), Some(arr(&["a", "b"])));
        let p = form("", "to%5B0%5D=a&to%5B1%5D=b");
        assert_eq!(p.get("to"), Some(arr(&["a", "b"])));
        let p = form("", "MediaUrl=x&MediaUrl=y");
        assert_eq!(p.str_values("MediaUrl"), vec!["x", "y"]);
        let p = form("", "to[]=only");
        assert_eq!(p.get("to"), Some(arr(&["only"])));
    }

    #[test]
    fn duplicate_scalar_is_not_a_number() {
        let p = form("", "amount=1&amount=100000");
        assert_eq!(p.u64("amount"), None);
        assert!(matches!(p.get("amount"), Some(ParamValue::Array(_))));
    }

    #[test]
    fn json_values_and_arrays() {
        let body =
            br#"{"to":["a@x.io","b@x.io"],"n":2,"stream":true,"max":-1,"o":{"k":1},"z":null}"#;
        let p = Params::parse("", Some("application/json; charset=utf-8"), body).unwrap();
        assert_eq!(p.get("to"), Some(arr(&["a@x.io", "b@x.io"])));
        assert_eq!(p.u64("n"), Some(2));
        assert_eq!(p.str_values("n"), vec!["2"]);
        assert_eq!(p.bool("stream"), Some(true));
        assert_eq!(p.u64("max"), None);
        assert_eq!(p.get("o"), None);
        assert_eq!(p.get("z"), None);
        assert!(p.raw_json().is_some());
    }

    #[test]
    fn json_array_of_numbers_is_text() {
        let p = Params::parse("", None, br#"{"ids":[1,2.5,"x",{"a":1}]}"#).unwrap();
        assert_eq!(p.str_values("ids"), vec!["1", "2.5", "x"]);
    }

    #[test]
    fn query_merges_and_body_wins() {
        let p = form("currency=eur&expand[]=a", "currency=usd");
        assert_eq!(p.get("currency"), Some(ParamValue::Str("usd".into())));
        assert_eq!(p.get("expand"), Some(arr(&["a"])));
        let p =
            Params::parse("model=q&x=1", Some("application/json"), br#"{"model":"m"}"#).unwrap();
        assert_eq!(p.get("model"), Some(ParamValue::Str("m".into())));
        assert_eq!(p.u64("x"), Some(1));
    }

    #[test]
    fn sniffing_without_content_type() {
        let p = Params::parse("", None, b"To=%2B15551234567&Body=hi").unwrap();
        assert_eq!(p.get("To"), Some(ParamValue::Str("+15551234567".into())));
        let p = Params::parse("", None, b"  {\"model\":\"m\"}").unwrap();
        assert_eq!(p.get("model"), Some(ParamValue::Str("m".into())));
        let p = Params::parse("", Some("multipart/form-data; boundary=x"), b"a=b").unwrap();
        assert_eq!(p.get("a"), None);
    }

    #[test]
    fn invalid_json_is_bad_body() {
        assert_eq!(
            Params::parse("", Some("application/json"), b"{\"a\":"),
            Err(PriceError::BadBody)
        );
        assert_eq!(Params::parse("", None, b"{oops"), Err(PriceError::BadBody));
    }

    #[test]
    fn empty_body_is_fine() {
        let p = Params::parse("limit=3", Some("application/json"), b"").unwrap();
        assert_eq!(p.u64("limit"), Some(3));
        assert!(p.raw_json().is_none());
    }

    #[test]
    fn media_types_match_ignoring_case_and_parameters() {
        let form = Params::parse("", Some("Application/X-WWW-Form-URLEncoded; charset=UTF-8"), b"amount=5").unwrap();
        assert_eq!(form.u64("amount"), Some(5));
        let json = Params::parse("", Some(" application/vnd.api+JSON "), br#"{"amount": 6}"#).unwrap();
        assert_eq!(json.u64("amount"), Some(6));
        // A declared media type that is neither is opaque, even with `=` in it.
        let opaque = Params::parse("", Some("text/plain"), b"amount=7").unwrap();
        assert_eq!(opaque.u64("amount"), None);
        // Multi-byte characters where "+json" would start: opaque, no panic.
        for odd in ["aéxxxx", "é+jsoné", "ü", "applicationé/json"] {
            let p = Params::parse("", Some(odd), b"amount=8").unwrap();
            assert_eq!(p.u64("amount"), None, "{odd}");
        }
        assert_eq!(Params::parse("", Some("x/é+json"), br#"{"amount": 9}"#).unwrap().u64("amount"), Some(9));
    }

    #[test]
    fn strict_u64() {
        assert_eq!(parse_u64("0100"), Some(100));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "1e3",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
    }
}
