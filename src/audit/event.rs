//! The audit event schema. Stored as one version byte followed by the rkyv
//! archive (little-endian, aligned, 32-bit offsets pinned in Cargo.toml), so
//! a reader can tell old layouts from new. Never holds a secret or a body.

use std::sync::Arc;

use rkyv::rancor::{self, Fallible};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Place, SerializeUnsized};
use serde::Serialize;

use crate::clock;
use crate::error::usd;

/// Version byte written before every archived event.
pub const VERSION: u8 = 1;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A call: forwarded or refused.
    Call = 0,
    /// A later settlement of a forwarded call (LLM usage from the stream).
    Settle = 1,
    /// The durable reservation written before a priced call is forwarded,
    /// so a crash can never give a key back room it had spent.
    Reserve = 2,
}

impl EventKind {
    /// Name used in JSON and CSV.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            1 => "settle",
            2 => "reserve",
            _ => "call",
        }
    }
}

/// The verdict on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded to the vendor.
    Allowed = 0,
    /// Refused by capgate.
    Refused = 1,
}

/// rkyv wrapper: a shared string (`Arc<str>`) archived exactly as a
/// `String` is, so sharing the key's id, label and vendor with every event,
/// and a request's id, method and path with each of its events (a
/// reference count, not a copy per event), leaves the stored format alone.
pub struct SharedStr;

impl ArchiveWith<Arc<str>> for SharedStr {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve_with(field: &Arc<str>, resolver: StringResolver, out: Place<ArchivedString>) {
        ArchivedString::resolve_from_str(field, resolver, out);
    }
}

impl<S: Fallible + ?Sized> SerializeWith<Arc<str>, S> for SharedStr
where
    S::Error: rancor::Source,
    str: SerializeUnsized<S>,
{
    fn serialize_with(field: &Arc<str>, serializer: &mut S) -> Result<StringResolver, S::Error> {
        ArchivedString::serialize_from_str(field, serializer)
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedString, Arc<str>, D> for SharedStr {
    fn deserialize_with(field: &ArchivedString, _: &mut D) -> Result<Arc<str>, D::Error> {
        Ok(Arc::from(field.as_str()))
    }
}

/// One audit record.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Default)]
pub struct AuditEvent {
    /// Time, Unix ms.
    pub ts_ms: u64,
    /// Tie-breaking sequence, assigned by the writer.
    pub seq: u64,
    /// Request id (also sent as `x-capgate-request-id`).
    #[rkyv(with = SharedStr)]
    pub request_id: Arc<str>,
    /// [`EventKind`] as u8.
    pub kind: u8,
    /// Vault key id, empty if the caller was not authenticated.
    #[rkyv(with = SharedStr)]
    pub key_id: Arc<str>,
    /// Key label.
    #[rkyv(with = SharedStr)]
    pub label: Arc<str>,
    /// Vendor name from the route.
    #[rkyv(with = SharedStr)]
    pub vendor: Arc<str>,
    /// Request method.
    #[rkyv(with = SharedStr)]
    pub method: Arc<str>,
    /// Canonical vendor path (or the raw target when it could not be canonicalised, truncated).
    #[rkyv(with = SharedStr)]
    pub path: Arc<str>,
    /// Status sent to the client.
    pub status: u16,
    /// [`Decision`] as u8.
    pub decision: u8,
    /// Refusal code, empty when allowed.
    pub code: String,
    /// Micro-dollars reserved before forwarding.
    pub reserved_micros: u64,
    /// Micro-dollars this call finally costs (after release or settlement).
    pub settled_micros: u64,
    /// Change this event makes to the key's spend on `spend_day`.
    pub spend_delta: i64,
    /// UTC day the spend counts against.
    pub spend_day: u32,
    /// Change this event makes to the key's daily call count.
    pub calls_delta: i32,
    /// Upstream latency to the response head, microseconds.
    pub latency_us: u64,
    /// Vendor object id from the answer, when known.
    pub object_id: String,
}

/// Encodes an event with its version byte.
pub fn encode(ev: &AuditEvent) -> Vec<u8> {
    Encoder::default().encode(ev).to_vec()
}

/// Encodes events one after another into buffers it keeps, so the writer
/// allocates nothing per event (the bytes are the same as [`encode`]'s).
#[derive(Default)]
pub struct Encoder {
    archive: rkyv::util::AlignedVec<16>,
    out: Vec<u8>,
}

impl Encoder {
    /// The event's stored bytes: version byte, then the archive. Valid
    /// until the next call.
    pub fn encode(&mut self, ev: &AuditEvent) -> &[u8] {
        let mut archive = std::mem::take(&mut self.archive);
        archive.clear();
        // Serialising into memory only fails on allocation failure, which aborts.
        self.archive = rkyv::api::high::to_bytes_in::<_, rancor::Error>(ev, archive).unwrap_or_default();
        self.out.clear();
        self.out.push(VERSION);
        self.out.extend_from_slice(&self.archive);
        &self.out
    }
}

/// Decodes (and validates) a stored event; `None` for unknown versions or
/// corrupt bytes.
pub fn decode(bytes: &[u8]) -> Option<AuditEvent> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    rkyv::from_bytes::<AuditEvent, rancor::Error>(aligned_archive(bytes, &mut aligned)?).ok()
}

/// Checks a stored event's version byte and copies its archive into
/// `scratch`, where rkyv needs it: aligned.
fn aligned_archive<'s>(bytes: &[u8], scratch: &'s mut rkyv::util::AlignedVec<16>) -> Option<&'s [u8]> {
    let (&version, body) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    scratch.clear();
    scratch.extend_from_slice(body);
    Some(scratch)
}

/// The fields the spend views fold, borrowed: the view compactor reads
/// every event, and building an owned [`AuditEvent`] for each cost it more
/// than the fold.
#[derive(Debug, Clone, Copy)]
pub struct SpendFields<'a> {
    /// UTC day the spend counts against.
    pub spend_day: u32,
    /// Vault key id.
    pub key_id: &'a str,
    /// Key label.
    pub label: &'a str,
    /// Vendor name.
    pub vendor: &'a str,
    /// [`EventKind`] as u8.
    pub kind: u8,
    /// [`Decision`] as u8.
    pub decision: u8,
    /// Change to the key's spend.
    pub spend_delta: i64,
    /// Change to the key's call count.
    pub calls_delta: i32,
}

impl AuditEvent {
    /// This event's [`SpendFields`].
    pub fn spend_fields(&self) -> SpendFields<'_> {
        SpendFields { spend_day: self.spend_day, key_id: &self.key_id, label: &self.label, vendor: &self.vendor, kind: self.kind, decision: self.decision, spend_delta: self.spend_delta, calls_delta: self.calls_delta }
    }
}

/// Validates a stored event like [`decode`] and hands its [`SpendFields`]
/// to `f` without deserialising it. `scratch` is reused for alignment.
pub fn with_spend_fields<R>(bytes: &[u8], scratch: &mut rkyv::util::AlignedVec<16>, f: impl FnOnce(SpendFields<'_>) -> R) -> Option<R> {
    let a = rkyv::access::<ArchivedAuditEvent, rancor::Error>(aligned_archive(bytes, scratch)?).ok()?;
    Some(f(SpendFields {
        spend_day: a.spend_day.to_native(),
        key_id: a.key_id.as_str(),
        label: a.label.as_str(),
        vendor: a.vendor.as_str(),
        kind: a.kind,
        decision: a.decision,
        spend_delta: a.spend_delta.to_native(),
        calls_delta: a.calls_delta.to_native(),
    }))
}

/// Splits a storage key into its log timestamp and sequence.
pub fn parse_storage_key(k: &[u8]) -> Option<(u64, u64)> {
    let ts = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    Some((ts, seq))
}

/// Storage key: log time then sequence, big-endian, so keys sort in write
/// order. The log time is the event's time, raised to the previous key's
/// time when an event arrives late, so it never goes backwards.
pub fn storage_key(ts_ms: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&ts_ms.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The JSON shape served by the admin API.
#[derive(Serialize)]
pub struct EventView<'a> {
    time: String,
    ts_ms: u64,
    seq: u64,
    request_id: &'a str,
    kind: &'static str,
    key_id: &'a str,
    label: &'a str,
    vendor: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    decision: &'static str,
    code: &'a str,
    reserved_usd: f64,
    settled_usd: f64,
    reserved_micros: u64,
    settled_micros: u64,
    spend_delta_micros: i64,
    upstream_latency_us: u64,
    object_id: &'a str,
}

impl AuditEvent {
    /// An event with every field empty or zero, each shared string a clone
    /// of `empty`. The proxy passes its core's own empty string: the one
    /// [`Default`] shares is process-wide, and every clone and drop of it is
    /// an atomic update that the cores would contend for, per request.
    pub fn blank(empty: &Arc<str>) -> AuditEvent {
        AuditEvent {
            ts_ms: 0,
            seq: 0,
            request_id: Arc::clone(empty),
            kind: 0,
            key_id: Arc::clone(empty),
            label: Arc::clone(empty),
            vendor: Arc::clone(empty),
            method: Arc::clone(empty),
            path: Arc::clone(empty),
            status: 0,
            decision: 0,
            code: String::new(),
            reserved_micros: 0,
            settled_micros: 0,
            spend_delta: 0,
            spend_day: 0,
            calls_delta: 0,
            latency_us: 0,
            object_id: String::new(),
        }
    }

    /// The admin API's JSON view.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            time: clock::rfc3339(self.ts_ms),
            ts_ms: self.ts_ms,
            seq: self.seq,
            request_id: &self.request_id,
            kind: EventKind::name(self.kind),
            key_id: &self.key_id,
            label: &self.label,
            vendor: &self.vendor,
            method: &self.method,
            path: &self.path,
            status: self.status,
            decision: if self.decision == Decision::Allowed as u8 { "allowed" } else { "refused" },
            code: &self.code,
            reserved_usd: usd(self.reserved_micros),
            settled_usd: usd(self.settled_micros),
            reserved_micros: self.reserved_micros,
            settled_micros: self.settled_micros,
            spend_delta_micros: self.spend_delta,
            upstream_latency_us: self.latency_us,
            object_id: &self.object_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_guard() {
        let ev = AuditEvent { ts_ms: 5, seq: 7, key_id: "key_1".into(), label: "flowise/a".into(), spend_delta: -3, ..Default::default() };
        let bytes = encode(&ev);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes), Some(ev));
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&bytes[..bytes.len() / 2]), None);
    }

    #[test]
    fn a_blank_event_is_the_default_one() {
        let empty: Arc<str> = Arc::from("");
        let blank = AuditEvent::blank(&empty);
        assert_eq!(blank, AuditEvent::default());
        assert!(Arc::ptr_eq(&blank.key_id, &empty) && Arc::ptr_eq(&blank.path, &empty), "shares the given string");
        assert_eq!(encode(&blank), encode(&AuditEvent::default()));
    }

    #[test]
    fn a_reused_encoder_writes_what_a_fresh_one_does() {
        let long = AuditEvent { label: "flowise/".repeat(40).into(), path: "/v1/x".repeat(30).into(), object_id: "pi_1".into(), ..Default::default() };
        let short = AuditEvent { key_id: "k".into(), seq: 3, ..Default::default() };
        let mut enc = Encoder::default();
        for ev in [&long, &short, &long, &AuditEvent::default(), &short] {
            let bytes = enc.encode(ev).to_vec();
            assert_eq!(bytes, encode(ev));
            // The archive is rkyv's own, straight from a fresh buffer.
            assert_eq!(bytes[1..], rkyv::to_bytes::<rancor::Error>(ev).unwrap()[..]);
            assert_eq!(decode(&bytes).as_ref(), Some(ev));
        }
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    /// A version-1 event as stored on disk (`golden_v1.hex` holds
    /// `encode(&fixture())` as written by version 1). Readers must keep
    /// decoding it: change the layout only by adding a new version whose
    /// decoder converts v1 records.
    fn fixture() -> AuditEvent {
        AuditEvent {
            ts_ms: 1_795_459_781_460,
            seq: 42,
            request_id: "req_9526f1f5010000000000".into(),
            kind: EventKind::Call as u8,
            key_id: "key_52dcc216b6902fc5".into(),
            label: "flowise/session-42".into(),
            vendor: "demo".into(),
            method: "POST".into(),
            path: "/v1/payment_intents".into(),
            status: 200,
            decision: Decision::Allowed as u8,
            code: String::new(),
            reserved_micros: 30_000_000,
            settled_micros: 30_000_000,
            spend_delta: 0,
            spend_day: 20_780,
            calls_delta: 0,
            latency_us: 465,
            object_id: "pi_mock1".into(),
        }
    }

    #[test]
    fn version_1_bytes_still_decode() {
        let hex = include_str!("golden_v1.hex").trim();
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        assert_eq!(decode(&bytes), Some(fixture()));
        // Shared strings are archived as plain strings: the bytes written
        // today are version 1's, byte for byte.
        assert_eq!(encode(&fixture()), bytes);
    }
}
