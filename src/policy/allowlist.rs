//! Endpoint allowlists: parsing entries like `"GET /v1/customers/*"` and
//! matching them against canonical request paths, segment by segment.
//!
//! Globs are whole segments only: `*` matches exactly one segment and `**`
//! (last segment only) matches one or more. Literal segments are canonicalized
//! exactly like request paths, so both sides compare in the same form.

use std::fmt;

use super::path::{canonical_segment, PathError};

/// Methods an entry may name.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Why an allowlist entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The entry is empty or only whitespace.
    Empty,
    /// The method is not one of GET POST PUT PATCH DELETE HEAD OPTIONS.
    UnknownMethod(String),
    /// The path pattern does not start with '/'.
    NotAbsolute(String),
    /// The path pattern contains '?', '#' or whitespace.
    ForbiddenChar {
        /// The whole pattern.
        pattern: String,
        /// The offending character.
        ch: char,
    },
    /// The path pattern has a doubled or trailing '/'.
    EmptySegment(String),
    /// A '*' inside a segment, such as `cus_*`.
    PartialGlob(String),
    /// `**` somewhere other than the last segment.
    MisplacedDoubleStar(String),
    /// A literal segment that canonicalization refuses.
    InvalidSegment {
        /// The offending segment.
        segment: String,
        /// Why it cannot be canonicalised.
        reason: PathError,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty allowlist entry"),
            Self::UnknownMethod(m) => write!(
                f,
                "unknown method '{m}' (expected one of {})",
                METHODS.join(", ")
            ),
            Self::NotAbsolute(p) => write!(f, "path pattern '{p}' must start with '/'"),
            Self::ForbiddenChar { pattern, ch } => {
                write!(
                    f,
                    "path pattern '{pattern}' contains {ch:?}, which is not allowed"
                )
            }
            Self::EmptySegment(p) => {
                write!(
                    f,
                    "path pattern '{p}' has an empty segment ('//' or a trailing '/')"
                )
            }
            Self::PartialGlob(s) => write!(
                f,
                "segment '{s}' mixes '*' with text; globs match whole segments ('*' or '**')"
            ),
            Self::MisplacedDoubleStar(p) => {
                write!(f, "path pattern '{p}' uses '**' before the last segment")
            }
            Self::InvalidSegment { segment, reason } => {
                write!(
                    f,
                    "segment '{segment}' is not a valid path segment: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for PatternError {}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this canonical segment.
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: one or more trailing segments.
    Rest,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(s) => f.write_str(s),
            Self::One => f.write_str("*"),
            Self::Rest => f.write_str("**"),
        }
    }
}

/// A single allowlist entry: an optional method plus a segment pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRule {
    method: Option<&'static str>,
    segments: Vec<Segment>,
}

impl EndpointRule {
    /// Parses an entry such as `"POST /v1/payment_intents"` or `"/v1/files/**"`.
    pub fn parse(entry: &str) -> Result<EndpointRule, PatternError> {
        let entry = entry.trim_matches(' ');
        if entry.is_empty() {
            return Err(PatternError::Empty);
        }
        let (method, pattern) = match entry.split_once(' ') {
            Some((method, pattern)) if !entry.starts_with('/') => {
                (Some(parse_method(method)?), pattern.trim_start_matches(' '))
            }
            _ => (None, entry),
        };
        let segments = parse_pattern(pattern)?;
        Ok(EndpointRule { method, segments })
    }

    /// Whether this rule admits `method` (exact, uppercase) on `canonical_path`.
    ///
    /// `canonical_path` must come from [`super::canonicalize`]; anything else
    /// is compared as-is and empty segments never match.
    pub fn matches(&self, method: &str, canonical_path: &str) -> bool {
        self.method.is_none_or(|m| m == method) && self.matches_path(canonical_path)
    }

    fn matches_path(&self, canonical_path: &str) -> bool {
        let Some(rest) = canonical_path.strip_prefix('/') else {
            return false;
        };
        if rest.is_empty() {
            return self.segments.is_empty();
        }
        let mut actual = rest.split('/');
        for expected in &self.segments {
            match expected {
                Segment::Rest => return matches_rest(actual),
                Segment::One => match actual.next() {
                    Some(seg) if !seg.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(lit) => {
                    if actual.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
            }
        }
        actual.next().is_none()
    }
}

/// `**`: at least one segment remains and none is empty.
fn matches_rest<'a>(mut remaining: impl Iterator<Item = &'a str>) -> bool {
    match remaining.next() {
        Some(first) if !first.is_empty() => remaining.all(|seg| !seg.is_empty()),
        _ => false,
    }
}

impl fmt::Display for EndpointRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(method) = self.method {
            write!(f, "{method} ")?;
        }
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        self.segments.iter().try_for_each(|seg| write!(f, "/{seg}"))
    }
}

fn parse_method(method: &str) -> Result<&'static str, PatternError> {
    METHODS
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(method))
        .ok_or_else(|| PatternError::UnknownMethod(method.to_owned()))
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, PatternError> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(PatternError::NotAbsolute(pattern.to_owned()));
    };
    if let Some(ch) = pattern
        .chars()
        .find(|&c| c == '?' || c == '#' || c.is_whitespace())
    {
        let pattern = pattern.to_owned();
        return Err(PatternError::ForbiddenChar { pattern, ch });
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let count = rest.split('/').count();
    rest.split('/')
        .enumerate()
        .map(|(i, seg)| parse_segment(pattern, seg, i + 1 == count))
        .collect()
}

fn parse_segment(pattern: &str, segment: &str, is_last: bool) -> Result<Segment, PatternError> {
    match segment {
        "" => Err(PatternError::EmptySegment(pattern.to_owned())),
        "*" => Ok(Segment::One),
        "**" if is_last => Ok(Segment::Rest),
        "**" => Err(PatternError::MisplacedDoubleStar(pattern.to_owned())),
        s if s.contains('*') => Err(PatternError::PartialGlob(s.to_owned())),
        s => canonical_segment(s)
            .map(Segment::Literal)
            .map_err(|reason| PatternError::InvalidSegment {
                segment: s.to_owned(),
                reason,
            }),
    }
}

/// An ordered set of endpoint rules; a request is allowed if any rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<EndpointRule>,
}

impl Allowlist {
    /// Parses all entries, or reports the index of the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allowlist, (usize, PatternError)> {
        let rules = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| EndpointRule::parse(entry.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist { rules })
    }

    /// Whether any rule admits `method` on `canonical_path`. Empty allows nothing.
    pub fn allows(&self, method: &str, canonical_path: &str) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.matches(method, canonical_path))
    }

    /// The normalized entries, e.g. for echoing a key's scope back to users.
    pub fn entries(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::canonicalize;
    use super::*;
    use proptest::prelude::*;

    fn rule(entry: &str) -> EndpointRule {
        match EndpointRule::parse(entry) {
            Ok(rule) => rule,
            Err(e) => panic!("{entry:?} rejected: {e}"),
        }
    }

    fn rule_err(entry: &str) -> PatternError {
        match EndpointRule::parse(entry) {
            Ok(rule) => panic!("{entry:?} accepted as {rule}"),
            Err(e) => e,
        }
    }

    fn stripe() -> Allowlist {
        match Allowlist::parse(&["POST /v1/payment_intents", "GET /v1/customers/*"]) {
            Ok(list) => list,
            Err((i, e)) => panic!("entry {i}: {e}"),
        }
    }

    /// What the proxy does: canonicalize, then check the allowlist.
    fn admitted(list: &Allowlist, method: &str, raw: &str) -> bool {
        canonicalize(raw).is_ok_and(|path| list.allows(method, &path))
    }

    #[test]
    fn bypass_attempts_are_refused() {
        let list = stripe();
        let attempts = [
            "/v1/payment_intents/../refunds",
            "/v1/payment_intents/%2e%2e/refunds",
            "/v1/payment_intents/.%2E/refunds",
            "//v1/refunds",
            "/v1%2Frefunds",
            "/v1/payment_intents%2F..%2Frefunds",
            "/v1/customers/cus_1/../../refunds",
            "/v1/customers/%252e%252e",
            "/v1/customers/cus_1/sources",
            "/V1/payment_intents",
            "/v1/customers/..",
            "/v1/customers/..;",
            "/v1/customers/",
            "/v1/customers",
            "/v1/payment_intents/",
            "/v1/payment_intents#x",
            "/v1/payment_intents?x",
            "/v1/customers/cus_1%2F..",
            "v1/payment_intents",
        ];
        for raw in attempts {
            for method in METHODS {
                assert!(!admitted(&list, method, raw), "{method} {raw} was admitted");
            }
        }
    }

    #[test]
    fn intended_requests_are_allowed() {
        let list = stripe();
        assert!(admitted(&list, "POST", "/v1/payment_intents"));
        assert!(admitted(&list, "POST", "/v1/payment%5Fintents"));
        assert!(!admitted(&list, "GET", "/v1/payment_intents"));
        assert!(!admitted(&list, "post", "/v1/payment_intents"));
        assert!(admitted(&list, "GET", "/v1/customers/cus_123"));
        assert!(admitted(&list, "GET", "/v1/customers/cus%20x"));
        assert!(!admitted(&list, "POST", "/v1/customers/cus_123"));
        assert_eq!(
            canonicalize("/v1/payment%5Fintents").as_deref(),
            Ok("/v1/payment_intents")
        );
    }

    #[test]
    fn methodless_entries_match_any_method() {
        let r = rule("/v1/payment_intents/*");
        for m in METHODS {
            assert!(r.matches(m, "/v1/payment_intents/pi_1"));
        }
        assert!(r.matches("PROPFIND", "/v1/payment_intents/pi_1"));
        assert!(!r.matches("GET", "/v1/payment_intents"));
    }

    #[test]
    fn double_star_matches_one_or_more() {
        let r = rule("GET /v1/files/**");
        assert!(r.matches("GET", "/v1/files/a"));
        assert!(r.matches("GET", "/v1/files/a/b/c"));
        assert!(!r.matches("GET", "/v1/files"));
        assert!(!r.matches("GET", "/v1/filesx/a"));
        assert!(!r.matches("GET", "/v1/files/a//b"));
        assert!(!r.matches("GET", "/v1/files/"));
        assert!(rule("/**").matches("GET", "/x"));
        assert!(!rule("/**").matches("GET", "/"));
    }

    #[test]
    fn single_star_needs_a_nonempty_segment() {
        let r = rule("/a/*/c");
        assert!(r.matches("GET", "/a/b/c"));
        assert!(!r.matches("GET", "/a//c"));
        assert!(!r.matches("GET", "/a/c"));
        assert!(!r.matches("GET", "/a/b/c/d"));
        assert!(!r.matches("GET", "a/b/c"));
    }

    #[test]
    fn root_pattern() {
        let r = rule("GET /");
        assert!(r.matches("GET", "/"));
        assert!(!r.matches("GET", "/a"));
        assert!(!r.matches("GET", ""));
        assert_eq!(r.to_string(), "GET /");
    }

    #[test]
    fn literals_are_canonicalized() {
        let r = rule("get /%7Euser/payment%5fintents/%c3%a9");
        assert_eq!(r.to_string(), "GET /~user/payment_intents/%C3%A9");
        assert!(r.matches("GET", "/~user/payment_intents/%C3%A9"));
        assert!(!r.matches("GET", "/~USER/payment_intents/%C3%A9"));
    }

    #[test]
    fn method_parsing() {
        assert_eq!(rule("delete   /v1/x").to_string(), "DELETE /v1/x");
        assert_eq!(rule("  Options /v1/x  ").to_string(), "OPTIONS /v1/x");
        assert_eq!(
            rule_err("FETCH /v1/x"),
            PatternError::UnknownMethod("FETCH".into())
        );
        assert_eq!(
            rule_err("GET/v1/x"),
            PatternError::NotAbsolute("GET/v1/x".into())
        );
        assert!(rule_err("CONNECT /x").to_string().contains("'CONNECT'"));
        assert!(matches!(
            rule_err("GET\t/v1/x"),
            PatternError::NotAbsolute(_)
        ));
    }

    #[test]
    fn pattern_errors() {
        assert_eq!(rule_err(""), PatternError::Empty);
        assert_eq!(rule_err("   "), PatternError::Empty);
        assert_eq!(
            rule_err("GET v1/x"),
            PatternError::NotAbsolute("v1/x".into())
        );
        assert_eq!(rule_err("GET"), PatternError::NotAbsolute("GET".into()));
        assert!(matches!(
            rule_err("/v1/x?y=1"),
            PatternError::ForbiddenChar { ch: '?', .. }
        ));
        assert!(matches!(
            rule_err("/v1/x#y"),
            PatternError::ForbiddenChar { ch: '#', .. }
        ));
        assert!(matches!(
            rule_err("/v1/a b"),
            PatternError::ForbiddenChar { ch: ' ', .. }
        ));
        assert!(matches!(
            rule_err("GET /v1 /x"),
            PatternError::ForbiddenChar { ch: ' ', .. }
        ));
        assert_eq!(
            rule_err("/v1//x"),
            PatternError::EmptySegment("/v1//x".into())
        );
        assert_eq!(
            rule_err("/v1/x/"),
            PatternError::EmptySegment("/v1/x/".into())
        );
        assert_eq!(
            rule_err("/v1/cus_*"),
            PatternError::PartialGlob("cus_*".into())
        );
        assert_eq!(rule_err("/v1/***"), PatternError::PartialGlob("***".into()));
        assert_eq!(
            rule_err("/v1/**/x"),
            PatternError::MisplacedDoubleStar("/v1/**/x".into())
        );
        for (entry, reason) in [
            ("/v1/..", PathError::DotSegment),
            ("/v1/%2e", PathError::DotSegment),
            ("/v1%2Fx", PathError::EncodedSeparator),
            ("/v1/%25", PathError::BadPercentEncoding),
            ("/v1/caf\u{e9}", PathError::BadByte),
            ("/v1/a\\b", PathError::BadByte),
        ] {
            assert!(
                matches!(rule_err(entry), PatternError::InvalidSegment { reason: r, .. } if r == reason),
                "{entry}"
            );
        }
    }

    #[test]
    fn error_messages_quote_the_offending_part() {
        assert!(rule_err("/v1/cus_*").to_string().contains("'cus_*'"));
        assert!(rule_err("/v1/cus_*").to_string().contains("whole segments"));
        assert!(rule_err("/a/**/b").to_string().contains("'/a/**/b'"));
        assert!(rule_err("/a/%2e").to_string().contains("'%2e'"));
        assert!(rule_err("/a?b").to_string().contains("'?'"));
    }

    #[test]
    fn allowlist_parse_reports_index() {
        let err = Allowlist::parse(&["GET /ok", "/also/ok", "GET /bad/x*"]);
        assert_eq!(err, Err((2, PatternError::PartialGlob("x*".into()))));
        let owned = vec![String::from("/a")];
        assert!(Allowlist::parse(&owned).is_ok());
    }

    #[test]
    fn allowlist_entries_and_emptiness() {
        let list = stripe();
        assert_eq!(
            list.entries(),
            ["POST /v1/payment_intents", "GET /v1/customers/*"]
        );
        assert!(!list.is_empty());
        let empty = Allowlist::parse::<&str>(&[]).unwrap_or_else(|(i, e)| panic!("{i}: {e}"));
        assert!(empty.is_empty());
        assert!(!empty.allows("GET", "/"));
        assert!(!Allowlist::default().allows("GET", "/v1/x"));
    }

    fn pathish() -> impl Strategy<Value = String> {
        "/(/|a|b|%61|%41|\\.|%2e|%2E|%2f|%25|%20|;|\\*|A){0,16}"
    }

    proptest! {
        #[test]
        fn fuzzed_paths_match_only_what_they_are(raw in pathish()) {
            let list = Allowlist::parse(&["GET /a/*"]).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
            if let Ok(path) = canonicalize(&raw) {
                if list.allows("GET", &path) {
                    let segments: Vec<&str> = path.split('/').skip(1).collect();
                    prop_assert_eq!(segments.len(), 2);
                    prop_assert_eq!(segments.first().copied(), Some("a"));
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic_or_falsely_match(raw in any::<String>()) {
            let list = Allowlist::parse(&["GET /a/*", "/b/**"]).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
            let _ = list.allows("GET", &raw);
            if let Ok(path) = canonicalize(&raw) {
                if list.allows("GET", &path) {
                    prop_assert!(path.starts_with("/a/") || path.starts_with("/b/"));
                }
            }
        }

        #[test]
        fn display_round_trips(entry in "((GET|post|Put) +)?(/(\\*|[a-z_~.]{1,4}|%[0-9a-fA-F]{2})){0,4}(/\\*\\*)?") {
            if let Ok(parsed) = EndpointRule::parse(&entry) {
                prop_assert_eq!(EndpointRule::parse(&parsed.to_string()), Ok(parsed));
            }
        }

        #[test]
        fn parse_never_panics(entry in any::<String>()) {
            let _ = EndpointRule::parse(&entry);
        }
    }
}
