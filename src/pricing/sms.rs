//! SMS segment counting: GSM-7 (basic + extension table) versus UCS-2, and
//! multipart splitting the way carriers do it.
//!
//! GSM-7: one message holds 160 septets; multipart messages hold 153 each.
//! Extension characters (`^{}\[~]|€` and form feed) take 2 septets and are
//! never split across parts. Any character outside GSM-7 switches the whole
//! message to UCS-2: 70 UTF-16 code units single, 67 per part, surrogate
//! pairs (emoji) never split.

/// GSM 03.38 basic character set (127 characters; ESC excluded).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38 extension table (each costs ESC + char = 2 septets).
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{0C}";

/// Message encoding chosen for a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 7-bit.
    Gsm7,
    /// UCS-2 / UTF-16.
    Ucs2,
}

/// Septets `c` takes in GSM-7, or `None` when not representable.
fn septets(c: char) -> Option<u32> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Encoding a carrier will use for `body`.
pub fn encoding(body: &str) -> Encoding {
    if body.chars().all(|c| septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Number of SMS segments `body` is billed as (0 for an empty body).
pub fn segments(body: &str) -> u64 {
    if body.is_empty() {
        return 0;
    }
    match encoding(body) {
        Encoding::Gsm7 => pack(body.chars().map(|c| septets(c).unwrap_or(2)), 160, 153),
        Encoding::Ucs2 => pack(body.chars().map(|c| c.len_utf16() as u32), 70, 67),
    }
}

/// Parts needed for characters of `units` size each; characters never straddle parts.
fn pack(units: impl Iterator<Item = u32> + Clone, single: u32, per_part: u32) -> u64 {
    let total: u64 = units.clone().map(u64::from).sum();
    if total <= u64::from(single) {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for size in units {
        if used + size > per_part {
            parts += 1;
            used = 0;
        }
        used += size;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_table_is_complete() {
        assert_eq!(GSM_BASIC.chars().count(), 127);
        assert_eq!(GSM_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm7_boundaries() {
        let seg = |n| segments(&"a".repeat(n));
        assert_eq!(seg(1), 1);
        assert_eq!(seg(160), 1);
        assert_eq!(seg(161), 2);
        assert_eq!(seg(306), 2);
        assert_eq!(seg(307), 3);
        assert_eq!(segments(""), 0);
    }

    #[test]
    fn extension_chars_count_double() {
        assert_eq!(encoding("€"), Encoding::Gsm7);
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        assert_eq!(segments(&"{".repeat(80)), 1);
        // 152 septets of 'a' + '[' (2) = 154 > 153: the escape pair moves to part 2.
        assert_eq!(
            segments(&format!("{}[{}", "a".repeat(152), "a".repeat(10))),
            2
        );
    }

    #[test]
    fn ucs2_counts_utf16_units() {
        assert_eq!(encoding("héllo"), Encoding::Gsm7);
        assert_eq!(encoding("привет"), Encoding::Ucs2);
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&"😀".repeat(36)), 2);
        assert_eq!(segments(&"ж".repeat(70)), 1);
        assert_eq!(segments(&"ж".repeat(71)), 2);
        assert_eq!(segments(&"ж".repeat(134)), 2);
        assert_eq!(segments(&"ж".repeat(135)), 3);
        // One non-GSM char turns 100 GSM chars into UCS-2: 101 units → 2 parts.
        assert_eq!(segments(&format!("{}ж", "a".repeat(100))), 2);
    }

    #[test]
    fn surrogate_pairs_not_split() {
        // 66 units of 'ж' + emoji (2) = 68 > 67 → emoji starts part 2.
        let body = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
        assert_eq!(segments(&body), 2);
        // 33 emoji fill 66 units per part: 67 emoji → 3 parts.
        assert_eq!(segments(&"😀".repeat(67)), 3);
    }
}
