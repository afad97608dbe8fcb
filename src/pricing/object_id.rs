//! Object ids from vendor answers: the top-level `"id"` (Stripe `pi_…`,
//! OpenAI `chatcmpl-…`, Anthropic `msg_…`) or `"sid"` (Twilio `SM…`) read
//! best-effort from the first bytes of a JSON body, for audit logs.
//!
//! A tiny scanner, not a parser: it tolerates a truncated prefix, looks only
//! at keys of the outermost object, and accepts ids of at most 64 characters
//! from `[A-Za-z0-9_-]`.

/// Longest id returned.
const MAX_ID_LEN: usize = 64;

/// The first top-level `"id"` or `"sid"` string value of a JSON object prefix.
pub fn object_id(body_prefix: &[u8]) -> Option<String> {
    let mut cur = Cursor {
        bytes: body_prefix,
        pos: 0,
    };
    cur.skip_ws();
    if cur.next()? != b'{' {
        return None;
    }
    let mut depth = 1usize;
    let mut expect_key = true;
    while depth > 0 {
        cur.skip_ws();
        match cur.next()? {
            b'"' if depth == 1 && expect_key => {
                let key = cur.string()?;
                cur.skip_ws();
                if cur.next()? != b':' {
                    return None;
                }
                expect_key = false;
                if key == b"id" || key == b"sid" {
                    cur.skip_ws();
                    if cur.peek()? == b'"' {
                        cur.next();
                        return valid_id(cur.string()?);
                    }
                }
            }
            b'"' => {
                cur.string()?;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
    }
    None
}

fn valid_id(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_ID_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if ok {
        String::from_utf8(raw.to_vec()).ok()
    } else {
        None
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Raw bytes of a string whose opening quote was consumed (escapes kept).
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        loop {
            match self.next()? {
                b'\\' => {
                    self.next()?;
                }
                b'"' => return self.bytes.get(start..self.pos - 1),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_shapes() {
        let stripe = br#"{
  "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
  "object": "payment_intent",
  "amount": 2000,"#;
        assert_eq!(
            object_id(stripe).as_deref(),
            Some("pi_3MtwBwLkdIwHu7ix28a3tqPa")
        );
        let twilio = br#"{"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "api_version": "2010-04-01", "body": "hi", "subresource_uris": {"media": "/x"}, "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "queued"}"#;
        assert_eq!(
            object_id(twilio).as_deref(),
            Some("SM1f0e8ae6ade43cb3c0ce4525424e404f")
        );
        let openai =
            br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion"}"#;
        assert_eq!(
            object_id(openai).as_deref(),
            Some("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG")
        );
        let anthropic =
            br#"{"model":"claude-sonnet-4","id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message"}"#;
        assert_eq!(
            object_id(anthropic).as_deref(),
            Some("msg_013Zva2CMHLNnXjNJJKqJ2EF")
        );
    }

    #[test]
    fn nested_ids_ignored() {
        let body = br#"{"data":[{"id":"nested_1"}],"meta":{"id":"nested_2","x":"a\"id\":\"no"},"id":"top_1"}"#;
        assert_eq!(object_id(body).as_deref(), Some("top_1"));
        assert_eq!(object_id(br#"{"error":{"id":"e_1","message":"x"}}"#), None);
    }

    #[test]
    fn rejects_bad_ids_and_truncation() {
        assert_eq!(object_id(br#"{"id":"has space"}"#), None);
        assert_eq!(object_id(br#"{"id":"a\u0041"}"#), None);
        assert_eq!(
            object_id(format!(r#"{{"id":"{}"}}"#, "a".repeat(65)).as_bytes()),
            None
        );
        assert_eq!(object_id(br#"{"id":"trunc"#), None);
        assert_eq!(object_id(br#"{"id":42}"#), None);
        assert_eq!(object_id(br#"[{"id":"x"}]"#), None);
        assert_eq!(object_id(b""), None);
        assert_eq!(object_id(b"{\"obj"), None);
    }
}
