//! Canonical request paths: the single form of a path that is both matched
//! against allowlists and forwarded upstream.
//!
//! Canonicalization never resolves anything. Ambiguous input (dot segments,
//! empty segments, encoded separators, double encoding) is refused so that the
//! proxy and the upstream can never disagree about which resource is meant.

use std::fmt;

/// Why a raw request path was refused. The proxy answers 400 and never forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with '/'.
    NotAbsolute,
    /// A byte outside visible ASCII, or one of '#', '\\', '?', or an encoded control char.
    BadByte,
    /// An empty segment: a doubled slash or a trailing slash.
    EmptySegment,
    /// A segment that is "." or ".." (after decoding).
    DotSegment,
    /// An encoded '/' (%2F) or '\\' (%5C).
    EncodedSeparator,
    /// A '%' not followed by two hex digits, or an encoded '%' (%25).
    BadPercentEncoding,
}

impl PathError {
    /// Stable machine-readable error code for API responses.
    pub fn code(&self) -> &'static str {
        "invalid_path"
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Self::NotAbsolute => "path must start with '/'",
            Self::BadByte => "path contains a disallowed character",
            Self::EmptySegment => "path contains an empty segment ('//' or a trailing '/')",
            Self::DotSegment => "path contains a '.' or '..' segment",
            Self::EncodedSeparator => "path contains an encoded '/' or '\\'",
            Self::BadPercentEncoding => "path contains invalid or double percent-encoding",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for PathError {}

/// Canonicalizes a raw request path (the part before '?', exactly as received).
///
/// Percent-encoded unreserved characters are decoded, every other escape is
/// kept with uppercase hex, and anything ambiguous is an error. The result is
/// a fixed point: canonicalizing it again returns it unchanged.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if rest.is_empty() {
        return Ok(String::from("/"));
    }
    let mut out = String::with_capacity(raw.len());
    for segment in rest.split('/') {
        out.push('/');
        push_segment(&mut out, segment)?;
    }
    Ok(out)
}

/// Splits a canonical path into its vendor prefix and the upstream path:
/// "/stripe/v1/charges" gives ("stripe", "/v1/charges").
pub fn split_vendor(canonical: &str) -> Option<(&str, &str)> {
    let rest = canonical.strip_prefix('/')?;
    let slash = rest.find('/')?;
    let (vendor, path) = rest.split_at(slash);
    (!vendor.is_empty() && path.len() > 1).then_some((vendor, path))
}

/// Canonicalizes a single path segment (no '/' inside); shared with allowlist patterns.
pub(crate) fn canonical_segment(segment: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(segment.len());
    push_segment(&mut out, segment)?;
    Ok(out)
}

/// Appends the canonical form of `segment` to `out`.
fn push_segment(out: &mut String, segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment);
    }
    let start = out.len();
    let mut rest = segment.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = if byte == b'%' {
            let (decoded, tail) = decode_escape(tail)?;
            push_decoded(out, decoded)?;
            tail
        } else {
            out.push(literal(byte)?);
            tail
        };
    }
    match out.get(start..) {
        Some(written) if is_dot_segment(written) => Err(PathError::DotSegment),
        _ => Ok(()),
    }
}

/// Accepts a literal (unencoded) path byte.
fn literal(byte: u8) -> Result<char, PathError> {
    match byte {
        b'#' | b'\\' | b'?' => Err(PathError::BadByte),
        0x21..=0x7E => Ok(char::from(byte)),
        _ => Err(PathError::BadByte),
    }
}

/// Reads the two hex digits after a '%'.
fn decode_escape(tail: &[u8]) -> Result<(u8, &[u8]), PathError> {
    match tail {
        [hi, lo, rest @ ..] => Ok((hex(*hi)? << 4 | hex(*lo)?, rest)),
        _ => Err(PathError::BadPercentEncoding),
    }
}

fn hex(digit: u8) -> Result<u8, PathError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(PathError::BadPercentEncoding),
    }
}

/// Appends a decoded escape: unreserved bytes literally, others re-encoded in uppercase.
fn push_decoded(out: &mut String, byte: u8) -> Result<(), PathError> {
    match byte {
        b'/' | b'\\' => Err(PathError::EncodedSeparator),
        b'%' => Err(PathError::BadPercentEncoding),
        0x00..=0x1F | 0x7F => Err(PathError::BadByte),
        b if is_unreserved(b) => {
            out.push(char::from(b));
            Ok(())
        }
        b => {
            out.extend(['%', hex_digit(b >> 4), hex_digit(b & 0x0F)]);
            Ok(())
        }
    }
}

/// Uppercase hex digit for a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// "." or "..", also with a ";params" suffix (`..;x`), which servlet-style
/// upstreams strip before resolving dot segments.
fn is_dot_segment(segment: &str) -> bool {
    let name = segment.split_once(';').map_or(segment, |(name, _)| name);
    name == "." || name == ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        match canonicalize(raw) {
            Ok(path) => path,
            Err(e) => panic!("{raw:?} rejected: {e}"),
        }
    }

    fn err(raw: &str) -> PathError {
        match canonicalize(raw) {
            Ok(path) => panic!("{raw:?} accepted as {path:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in [
            "/",
            "/v1",
            "/v1/payment_intents",
            "/v1/customers/cus_123",
            "/a:b/c@d/e;f=g/*",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn must_be_absolute() {
        assert_eq!(err(""), PathError::NotAbsolute);
        assert_eq!(err("v1/x"), PathError::NotAbsolute);
        assert_eq!(err("%2Fv1"), PathError::NotAbsolute);
        assert_eq!(err("*"), PathError::NotAbsolute);
    }

    #[test]
    fn rejects_bad_bytes() {
        for p in [
            "/a b",
            "/a#b",
            "/a\\b",
            "/a?b",
            "/a\tb",
            "/a\u{7f}",
            "/caf\u{e9}",
            "/a\0",
            "/\u{202e}x",
        ] {
            assert_eq!(err(p), PathError::BadByte, "{p:?}");
        }
    }

    #[test]
    fn rejects_empty_segments() {
        for p in ["//", "//v1/x", "/v1//x", "/v1/x/", "/v1/x//"] {
            assert_eq!(err(p), PathError::EmptySegment, "{p:?}");
        }
    }

    #[test]
    fn rejects_dot_segments_in_any_spelling() {
        for p in [
            "/.",
            "/..",
            "/v1/./x",
            "/v1/../x",
            "/v1/%2e",
            "/v1/%2E%2e/x",
            "/v1/.%2E/x",
            "/v1/%2e./x",
            "/v1/..;/x",
            "/v1/.;jsessionid=1",
        ] {
            assert_eq!(err(p), PathError::DotSegment, "{p:?}");
        }
    }

    #[test]
    fn dots_inside_segments_are_fine() {
        for p in [
            "/...",
            "/a.b",
            "/.well-known/x",
            "/..a",
            "/a..",
            "/x;..",
            "/%2e%2e%2e",
        ] {
            assert!(canonicalize(p).is_ok(), "{p:?}");
        }
        assert_eq!(ok("/%2e%2e%2e"), "/...");
    }

    #[test]
    fn rejects_encoded_separators() {
        for p in [
            "/v1%2Frefunds",
            "/v1%2frefunds",
            "/v1%5Cx",
            "/v1%5cx",
            "/a/%2F",
        ] {
            assert_eq!(err(p), PathError::EncodedSeparator, "{p:?}");
        }
    }

    #[test]
    fn rejects_bad_or_double_encoding() {
        for p in [
            "/%",
            "/%2",
            "/a%",
            "/a%g0",
            "/a%0g",
            "/%%20",
            "/%252e%252e",
            "/%25",
            "/%-1",
            "/%+1",
        ] {
            assert_eq!(err(p), PathError::BadPercentEncoding, "{p:?}");
        }
    }

    #[test]
    fn rejects_encoded_control_chars() {
        for p in ["/%00", "/a%0A", "/a%0d%0aHost:x", "/%1F", "/%7F", "/%7f"] {
            assert_eq!(err(p), PathError::BadByte, "{p:?}");
        }
    }

    #[test]
    fn decodes_unreserved() {
        assert_eq!(ok("/v1/payment%5Fintents"), "/v1/payment_intents");
        assert_eq!(ok("/%7Euser/%41%7a%30%2D%2E%5f"), "/~user/Az0-._");
    }

    #[test]
    fn keeps_other_escapes_uppercased() {
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%3ab/%c3%a9/%3F%23"), "/a%3Ab/%C3%A9/%3F%23");
        assert_eq!(ok("/%ff%80"), "/%FF%80");
    }

    #[test]
    fn errors_share_one_code_and_have_messages() {
        let all = [
            PathError::NotAbsolute,
            PathError::BadByte,
            PathError::EmptySegment,
            PathError::DotSegment,
            PathError::EncodedSeparator,
            PathError::BadPercentEncoding,
        ];
        for e in all {
            assert_eq!(e.code(), "invalid_path");
            assert!(e.to_string().starts_with("path "), "{e}");
        }
    }

    #[test]
    fn split_vendor_cases() {
        assert_eq!(
            split_vendor("/stripe/v1/charges"),
            Some(("stripe", "/v1/charges"))
        );
        assert_eq!(split_vendor("/stripe/x"), Some(("stripe", "/x")));
        assert_eq!(split_vendor("/stripe"), None);
        assert_eq!(split_vendor("/"), None);
        assert_eq!(split_vendor(""), None);
        assert_eq!(split_vendor("stripe/v1"), None);
        assert_eq!(split_vendor("//v1"), None);
        assert_eq!(split_vendor("/stripe/"), None);
    }

    #[test]
    fn canonical_segment_matches_path_rules() {
        assert_eq!(canonical_segment("%7Euser"), Ok(String::from("~user")));
        assert_eq!(canonical_segment(""), Err(PathError::EmptySegment));
        assert_eq!(canonical_segment("%2e."), Err(PathError::DotSegment));
        assert_eq!(canonical_segment("a%2Fb"), Err(PathError::EncodedSeparator));
    }

    /// Paths built from the interesting pieces: escapes, dots, slashes, ';'.
    fn pathish() -> impl Strategy<Value = String> {
        "/(/|[a-zA-Z0-9._~;:*-]|%[0-9a-fA-F]{2}|%2[eEfF5]|%5[cC]|%|#| |\\?|\u{e9}){0,24}"
    }

    proptest! {
        #[test]
        fn canonicalize_is_idempotent(raw in pathish()) {
            if let Ok(once) = canonicalize(&raw) {
                prop_assert_eq!(canonicalize(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn canonical_output_is_safe(raw in pathish()) {
            if let Ok(path) = canonicalize(&raw) {
                prop_assert!(path.starts_with('/'));
                prop_assert!(path.bytes().all(|b| (0x21..=0x7E).contains(&b) && !b"#?\\".contains(&b)));
                prop_assert!(path == "/" || path.split('/').skip(1).all(|s| !s.is_empty() && !is_dot_segment(s)));
                let upper = path.to_ascii_uppercase();
                prop_assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%25"));
            }
        }

        #[test]
        fn canonicalize_never_panics_on_strings(raw in any::<String>()) {
            let _ = canonicalize(&raw);
            let _ = split_vendor(&raw);
        }

        #[test]
        fn canonicalize_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let raw = String::from_utf8_lossy(&bytes);
            let _ = canonicalize(&raw);
            let _ = canonicalize(&format!("/{raw}"));
        }

        #[test]
        fn split_vendor_reassembles(raw in pathish()) {
            let path = canonicalize(&raw).unwrap_or_default();
            if let Some((vendor, rest)) = split_vendor(&path) {
                prop_assert_eq!(format!("/{vendor}{rest}"), path.clone());
                prop_assert!(!vendor.contains('/') && rest.len() > 1);
            }
        }
    }
}
