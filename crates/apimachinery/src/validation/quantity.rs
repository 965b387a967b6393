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

/// How a quantity was written, which its canonical form keeps (upstream `resource.Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// Exact value in nano-units (10^-9), rounded up as upstream rounds to nano precision, and the
/// format the quantity was written in.
fn parse_exact(s: &str) -> Option<(i128, Format)> {
    let caps = QUANTITY_RE.captures(s)?;
    let num = caps.get(1)?.as_str();
    let (neg, digits) = match num.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all: String = format!("{int_part}{frac_part}");
    let mantissa: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    let frac_len = frac_part.len() as i32;
    let (format, mult_bin, exp10): (Format, i128, i32) = match caps.get(2).map(|m| m.as_str()) {
        None => (Format::DecimalSi, 1, 0),
        Some(suffix @ ("Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei")) => {
            let k = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|x| *x == suffix)? as u32
                + 1;
            (Format::BinarySi, 1024i128.checked_pow(k)?, 0)
        }
        Some("n") => (Format::DecimalSi, 1, -9),
        Some("u") => (Format::DecimalSi, 1, -6),
        Some("m") => (Format::DecimalSi, 1, -3),
        Some("k") => (Format::DecimalSi, 1, 3),
        Some("M") => (Format::DecimalSi, 1, 6),
        Some("G") => (Format::DecimalSi, 1, 9),
        Some("T") => (Format::DecimalSi, 1, 12),
        Some("P") => (Format::DecimalSi, 1, 15),
        Some("E") => (Format::DecimalSi, 1, 18),
        Some(e) => (Format::DecimalExponent, 1, e[1..].parse::<i32>().ok()?),
    };
    // value = mantissa * mult_bin * 10^(exp10 - frac_len); in nano units: * 10^9
    let scaled = mantissa.checked_mul(mult_bin)?;
    let shift = exp10 - frac_len + 9;
    let nano = if shift >= 0 {
        scaled.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        let div = 10i128.checked_pow((-shift) as u32)?;
        // round up (away from zero for the magnitude) to nano precision
        (scaled + div - 1) / div
    };
    Some((if neg { -nano } else { nano }, format))
}

/// The canonical serialization of a quantity (upstream `Quantity.String()`), optionally
/// rounded up to milli precision first as `SetDefaults_ResourceList` does: `0.5` -> `500m`,
/// `1024Mi` -> `1Gi`, `1000` -> `1k`, `1.5Gi` -> `1536Mi`, `512Ki`... `None` for invalid input.
pub fn canonicalize(s: &str, round_to_milli: bool) -> Option<String> {
    let (mut nano, mut format) = parse_exact(s)?;
    if round_to_milli {
        let m = 1_000_000i128;
        nano = if nano >= 0 {
            (nano + m - 1) / m * m
        } else {
            -((-nano) / m * m)
        };
    }
    if nano == 0 {
        return Some("0".to_string());
    }
    let sign = if nano < 0 { "-" } else { "" };
    let abs = nano.abs();
    const GIGA: i128 = 1_000_000_000;
    if format == Format::BinarySi {
        if abs < 1024 * GIGA || abs % GIGA != 0 {
            format = Format::DecimalSi;
        } else {
            let mut units = abs / GIGA;
            let mut k = 0;
            while k < 6 && units % 1024 == 0 {
                units /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return Some(format!("{sign}{units}{suffix}"));
        }
    }
    // strip factors of ten, then lower the exponent to a multiple of three
    let mut mantissa = abs;
    let mut exp: i32 = -9;
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    while exp.rem_euclid(3) != 0 {
        mantissa *= 10;
        exp -= 1;
    }
    let suffix = match (format, exp) {
        (Format::DecimalExponent, 0) => String::new(),
        (Format::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".into(),
        (_, -6) => "u".into(),
        (_, -3) => "m".into(),
        (_, 0) => String::new(),
        (_, 3) => "k".into(),
        (_, 6) => "M".into(),
        (_, 9) => "G".into(),
        (_, 12) => "T".into(),
        (_, 15) => "P".into(),
        (_, 18) => "E".into(),
        (_, e) => format!("e{e}"),
    };
    Some(format!("{sign}{mantissa}{suffix}"))
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
        // (input, round to milli, canonical)
        let canon: Vec<(&str, bool, &str)> = vec![
            ("0.5", false, "500m"),
            ("1024Mi", false, "1Gi"),
            ("1536Mi", false, "1536Mi"),
            ("1.5Gi", false, "1536Mi"),
            ("512", false, "512"),
            ("0.5Ki", false, "512"),
            ("1000", false, "1k"),
            ("1500m", false, "1500m"),
            ("2000m", false, "2"),
            ("1e3", false, "1e3"),
            ("1.5e3", false, "1500"),
            ("100M", false, "100M"),
            ("128974848", false, "128974848"),
            ("0", false, "0"),
            ("0Mi", false, "0"),
            ("-1", false, "-1"),
            ("0.0001", true, "1m"),
            ("0.0001", false, "100u"),
            ("1n", false, "1n"),
            ("1.5n", false, "2n"),
            ("+1", false, "1"),
            ("1Ki", false, "1Ki"),
            ("abc", false, ""),
        ];
        for (input, milli, want) in canon {
            assert_eq!(
                canonicalize(input, milli).unwrap_or_default(),
                want,
                "{input}"
            );
        }
        assert!(is_integer("2"));
        assert!(!is_integer("500m"));
    }
}
