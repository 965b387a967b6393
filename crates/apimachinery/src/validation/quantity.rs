//! Parsing of resource quantities (`resource.Quantity` serialized form: `500m`, `1Gi`, `1e3`)
//! for validation and comparison.

use once_cell::sync::Lazy;
use regex::Regex;

/// Message upstream gives for a malformed quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

static QUANTITY_RE: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"^([+-]?[0-9]*\.?[0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$")
        .expect("static regex")
});

/// The numeric value of a quantity string, or `None` when it is not a valid quantity.
pub fn parse(s: &str) -> Option<f64> {
    let caps = QUANTITY_RE.captures(s)?;
    let num = caps.get(1)?.as_str();
    let digits = num.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." {
        return None;
    }
    let base: f64 = num.parse().ok()?;
    let mult = match caps.get(2).map(|m| m.as_str()) {
        None => 1.0,
        Some("Ki") => 1024f64,
        Some("Mi") => 1024f64.powi(2),
        Some("Gi") => 1024f64.powi(3),
        Some("Ti") => 1024f64.powi(4),
        Some("Pi") => 1024f64.powi(5),
        Some("Ei") => 1024f64.powi(6),
        Some("n") => 1e-9,
        Some("u") => 1e-6,
        Some("m") => 1e-3,
        Some("k") => 1e3,
        Some("M") => 1e6,
        Some("G") => 1e9,
        Some("T") => 1e12,
        Some("P") => 1e15,
        Some("E") => 1e18,
        Some(exp) => 10f64.powi(exp[1..].parse::<i32>().ok()?),
    };
    Some(base * mult)
}

/// Whether the quantity is an integer value (extended resources must be whole numbers).
pub fn is_integer(s: &str) -> bool {
    parse(s).is_some_and(|v| (v - v.round()).abs() < 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_table() {
        let cases: Vec<(&str, Option<f64>)> = vec![
            ("1", Some(1.0)),
            ("500m", Some(0.5)),
            ("0.5", Some(0.5)),
            ("1Gi", Some(1073741824.0)),
            ("128Mi", Some(134217728.0)),
            ("1k", Some(1000.0)),
            ("1e3", Some(1000.0)),
            ("1E-3", Some(0.001)),
            ("-1", Some(-1.0)),
            ("abc", None),
            ("1GB", None),
            ("", None),
            (".", None),
            ("1 Gi", None),
        ];
        for (s, want) in cases {
            let got = parse(s);
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() < 1e-9 * w.abs().max(1.0), "{s}: {g} != {w}")
                }
                (g, w) => assert_eq!(g, w, "{s}"),
            }
        }
        assert!(is_integer("2"));
        assert!(!is_integer("500m"));
    }
}
