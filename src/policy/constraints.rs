//! Per-key parameter constraints: request parameter → allowed value globs.
//! A constrained parameter that is present must have every value allowed
//! (array parameters such as Resend's `to` are checked element by element);
//! on requests that carry a body it must also be present, so an agent cannot
//! dodge a constraint by leaving the parameter out.

use super::glob::any_match;

/// Checks every constraint. `values(name)` returns the parameter's values
/// (empty when absent). Returns the name of the first violated parameter.
///
/// # Errors
/// The offending parameter name.
pub fn check(constraints: &[(String, Vec<String>)], has_body: bool, values: impl Fn(&str) -> Vec<String>) -> Result<(), &str> {
    for (param, allowed) in constraints {
        let vals = values(param);
        if vals.is_empty() {
            if has_body {
                return Err(param);
            }
            continue;
        }
        if !vals.iter().all(|v| any_match(allowed, v)) {
            return Err(param);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs.iter().map(|(p, v)| (p.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn every_value_must_match_and_present_on_bodies() {
        let rules = c(&[("to", &["*@example.com"]), ("currency", &["usd"])]);
        let ok = |name: &str| match name {
            "to" => vec!["a@example.com".into(), "b@example.com".into()],
            "currency" => vec!["usd".into()],
            _ => vec![],
        };
        assert_eq!(check(&rules, true, ok), Ok(()));
        let one_bad = |name: &str| match name {
            "to" => vec!["a@example.com".into(), "x@evil.io".into()],
            "currency" => vec!["usd".into()],
            _ => vec![],
        };
        assert_eq!(check(&rules, true, one_bad), Err("to"));
        let missing = |name: &str| if name == "to" { vec!["a@example.com".into()] } else { vec![] };
        assert_eq!(check(&rules, true, missing), Err("currency"));
        assert_eq!(check(&rules, false, missing), Ok(()), "GETs without the parameter pass");
    }
}
