//! Audit export as NDJSON or CSV, produced lazily from a query's row
//! iterator (used by the admin API's streamed export and `capgate audit
//! export`), so any range can be exported in constant memory.

use super::event::EventKind;
use super::query::AuditQuery;
use super::AuditEvent;
use crate::clock;
use crate::store::Store;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// CSV columns, in order.
pub const CSV_HEADER: &str = "time,ts_ms,seq,request_id,kind,key_id,label,vendor,method,path,status,decision,code,reserved_micros,settled_micros,spend_delta_micros,calls_delta,upstream_latency_us,object_id\n";

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// One event as a CSV row.
pub fn csv_row(e: &AuditEvent) -> String {
    let mut out = String::with_capacity(256);
    let decision = if e.decision == super::Decision::Allowed as u8 { "allowed" } else { "refused" };
    let texts = [clock::rfc3339(e.ts_ms), e.ts_ms.to_string(), e.seq.to_string(), e.request_id.to_string(), EventKind::name(e.kind).to_string()];
    for t in &texts {
        csv_field(&mut out, t);
        out.push(',');
    }
    for t in [&*e.key_id, &*e.label, &*e.vendor, &*e.method, &*e.path] {
        csv_field(&mut out, t);
        out.push(',');
    }
    out.push_str(&format!("{},{},", e.status, decision));
    csv_field(&mut out, &e.code);
    out.push_str(&format!(",{},{},{},{},{},", e.reserved_micros, e.settled_micros, e.spend_delta, e.calls_delta, e.latency_us));
    csv_field(&mut out, &e.object_id);
    out.push('\n');
    out
}

/// Lazily encoded export of every event the query selects.
pub fn export_stream(store: &Store, q: AuditQuery, format: ExportFormat) -> Box<dyn Iterator<Item = Result<Vec<u8>, String>>> {
    let header = (format == ExportFormat::Csv).then(|| Ok(CSV_HEADER.as_bytes().to_vec()));
    let rows = q.into_rows(store).map(move |r| {
        r.map(|(_, e)| match format {
            ExportFormat::Ndjson => {
                let mut line = serde_json::to_vec(&e.view()).unwrap_or_default();
                line.push(b'\n');
                line
            }
            ExportFormat::Csv => csv_row(&e).into_bytes(),
        })
    });
    Box::new(header.into_iter().chain(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_awkward_fields() {
        let e = AuditEvent { label: "a,\"b\"".into(), code: String::new(), ..AuditEvent::default() };
        let row = csv_row(&e);
        assert!(row.contains("\"a,\"\"b\"\"\""), "{row}");
        assert_eq!(row.matches(',').count() - 1, CSV_HEADER.matches(',').count(), "one comma inside the quoted label");
    }
}
