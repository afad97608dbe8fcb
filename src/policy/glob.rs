//! Parameter value globs for per-key parameter constraints: `*` matches any
//! run of characters (including none), everything else is a literal.
//!
//! Matching is greedy-leftmost over the literal pieces between stars, which is
//! exact for star-only globs and runs in linear time (std's substring search is
//! Two-Way), so hostile patterns or values cannot cause backtracking blowups.

/// Whether `value` matches `pattern`, case-sensitively, as a whole.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == value;
    };
    let Some(mut rest) = value.strip_prefix(head) else {
        return false;
    };
    let (middle, last) = tail.rsplit_once('*').unwrap_or(("", tail));
    for piece in middle.split('*').filter(|piece| !piece.is_empty()) {
        match rest.split_once(piece) {
            Some((_, after)) => rest = after,
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether `value` matches at least one of `patterns`.
pub fn any_match(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|pattern| glob_match(pattern, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Obviously-correct (exponential) recursive reference matcher.
    fn reference(pattern: &[char], value: &[char]) -> bool {
        match (pattern.split_first(), value.split_first()) {
            (None, _) => value.is_empty(),
            (Some(('*', p_rest)), Some((_, v_rest))) => {
                reference(p_rest, value) || reference(pattern, v_rest)
            }
            (Some(('*', p_rest)), None) => reference(p_rest, value),
            (Some((p, p_rest)), Some((v, v_rest))) => p == v && reference(p_rest, v_rest),
            (Some(_), None) => false,
        }
    }

    #[test]
    fn literal_patterns_are_equality() {
        assert!(glob_match("", ""));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("abc", "ABC"));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn prefix_and_suffix_globs() {
        assert!(glob_match("+1555*", "+15551234567"));
        assert!(glob_match("+1555*", "+1555"));
        assert!(!glob_match("+1555*", "+1666555"));
        assert!(glob_match("*@example.com", "bob@example.com"));
        assert!(!glob_match("*@example.com", "bob@example.com.evil.io"));
        assert!(!glob_match("*@example.com", "bob@EXAMPLE.com"));
    }

    #[test]
    fn stars_in_the_middle() {
        assert!(glob_match("a*b*c", "abc"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(glob_match("a**b", "ab"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("ab*ba", "abba"));
        assert!(glob_match("*a*", "banana"));
        assert!(!glob_match("*x*", "banana"));
    }

    #[test]
    fn star_matches_everything() {
        for v in ["", "x", "*", "caf\u{e9}", "a*b"] {
            assert!(glob_match("*", v));
            assert!(glob_match("**", v));
        }
    }

    #[test]
    fn unicode_values() {
        assert!(glob_match("caf*", "caf\u{e9}"));
        assert!(glob_match("*\u{e9}", "caf\u{e9}"));
        assert!(!glob_match("*\u{e9}", "cafe"));
    }

    #[test]
    fn pathological_input_is_fast() {
        let value = "a".repeat(100_000);
        let pattern = format!("{}b", "a*".repeat(1_000));
        assert!(!glob_match(&pattern, &value));
    }

    #[test]
    fn any_match_cases() {
        let patterns = vec![String::from("+1555*"), String::from("*@example.com")];
        assert!(any_match(&patterns, "+15550000"));
        assert!(any_match(&patterns, "a@example.com"));
        assert!(!any_match(&patterns, "+1666"));
        assert!(!any_match(&[], "anything"));
    }

    proptest! {
        #[test]
        fn no_star_means_equality(p in "[^*]{0,8}", v in "[^*]{0,8}") {
            prop_assert_eq!(glob_match(&p, &v), p == v);
            prop_assert!(glob_match(&v, &v));
        }

        #[test]
        fn lone_star_matches_anything(v in any::<String>()) {
            prop_assert!(glob_match("*", &v));
        }

        #[test]
        fn agrees_with_reference(p in "[ab\u{e9}*]{0,8}", v in "[ab\u{e9}]{0,10}") {
            let (pc, vc): (Vec<char>, Vec<char>) = (p.chars().collect(), v.chars().collect());
            prop_assert_eq!(glob_match(&p, &v), reference(&pc, &vc));
        }

        #[test]
        fn never_panics(p in any::<String>(), v in any::<String>()) {
            let _ = glob_match(&p, &v);
        }
    }
}
