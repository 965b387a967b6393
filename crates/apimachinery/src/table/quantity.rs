//! Canonical rendering of resource quantities (`resource.Quantity.String()`), as printed in the
//! CAPACITY, REQUEST/LIMIT and TARGETS columns: `1536Mi`, `500m`, `1k`, `12e6`.

/// The suffix family a quantity was written in, which its canonical form keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// A parsed quantity: `mantissa * 10^exp10`.
#[derive(Clone, Copy, Debug)]
struct Parsed {
    mantissa: i128,
    exp10: i32,
    format: Format,
}

fn parse(s: &str) -> Option<Parsed> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if bytes[0] == b'+' || bytes[0] == b'-' {
        negative = bytes[0] == b'-';
        i = 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_part = &s[int_start..i];
    let mut frac_part = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let fs = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_part = &s[fs..i];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let suffix = &s[i..];
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // Quantities beyond i128 are far outside anything the API accepts.
    if digits.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut exp10 = -(frac_part.len() as i32);
    let format = match suffix {
        "" => Format::DecimalSi,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            mantissa = mantissa.checked_mul(1024i128.checked_pow(power)?)?;
            Format::BinarySi
        }
        "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
            exp10 += match suffix {
                "n" => -9,
                "u" => -6,
                "m" => -3,
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                _ => 18,
            };
            Format::DecimalSi
        }
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            let e: i32 = rest.parse().ok()?;
            exp10 += e;
            Format::DecimalExponent
        }
    };
    if negative {
        mantissa = -mantissa;
    }
    Some(Parsed {
        mantissa,
        exp10,
        format,
    })
}

/// `mantissa * 10^exp10` as an integer, if it is one and fits.
fn as_integer(mantissa: i128, exp10: i32) -> Option<i128> {
    if exp10 >= 0 {
        mantissa.checked_mul(10i128.checked_pow(exp10 as u32)?)
    } else {
        let div = 10i128.checked_pow((-exp10) as u32)?;
        (mantissa % div == 0).then(|| mantissa / div)
    }
}

fn decimal_string(p: Parsed) -> String {
    let (mut m, mut e) = (p.mantissa, p.exp10);
    if m == 0 {
        return "0".to_string();
    }
    // Upstream keeps at most nanosecond-like precision (scale -9), rounding up.
    if e < -9 {
        let div = 10i128.pow((-9 - e) as u32);
        let rounded = m / div + if m % div > 0 { 1 } else { 0 };
        m = rounded;
        e = -9;
    }
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    // Lower the exponent to a multiple of three (scaling the mantissa up), capped at 10^18.
    let mut e3 = e - e.rem_euclid(3);
    if p.format == Format::DecimalSi && e3 > 18 {
        e3 = 18;
    }
    m *= 10i128.pow((e - e3) as u32);
    let suffix = if p.format == Format::DecimalExponent {
        if e3 == 0 {
            String::new()
        } else {
            format!("e{e3}")
        }
    } else {
        match e3 {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        }
        .to_string()
    };
    format!("{m}{suffix}")
}

/// Canonical form of a quantity string; unparseable input is returned unchanged.
pub fn canonical(s: &str) -> String {
    let Some(p) = parse(s) else {
        return s.to_string();
    };
    if p.format == Format::BinarySi {
        // Small values and non-integers are shown in decimal to avoid rounding.
        let small = as_integer(p.mantissa, p.exp10).is_some_and(|v| v > -1024 && v < 1024);
        if let Some(mut v) = as_integer(p.mantissa, p.exp10).filter(|_| !small) {
            let mut power = 0;
            while power < 6 && v != 0 && v % 1024 == 0 {
                v /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{v}{suffix}");
        }
        return decimal_string(Parsed {
            format: Format::DecimalSi,
            ..p
        });
    }
    decimal_string(p)
}

/// Canonical form of a JSON quantity value (a string, or a bare number as clients may send).
pub fn canonical_value(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => canonical(s),
        Some(serde_json::Value::Number(n)) => canonical(&n.to_string()),
        _ => "0".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_table() {
        let cases: &[(&str, &str)] = &[
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("10Gi", "10Gi"),
            ("512Ki", "512Ki"),
            ("1000Ki", "1000Ki"),
            ("1536", "1536"),
            ("100", "100"),
            ("0", "0"),
            ("0Gi", "0"),
            ("500m", "500m"),
            ("0.5", "500m"),
            ("1500m", "1500m"),
            ("2.5", "2500m"),
            ("1000", "1k"),
            ("1k", "1k"),
            ("1000M", "1G"),
            ("100M", "100M"),
            ("12e6", "12e6"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("100e-3", "100e-3"),
            ("0.1Ki", "102400m"),
            ("0.5Ki", "512"),
            ("-1Gi", "-1Gi"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1Ei", "1Ei"),
            ("2048Ei", "2048Ei"),
            ("20E", "20E"),
            ("nonsense", "nonsense"),
            ("1Xi", "1Xi"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input), *want, "quantity {input}");
        }
    }

    #[test]
    fn canonical_value_handles_numbers_and_absence() {
        assert_eq!(canonical_value(Some(&serde_json::json!(2000))), "2k");
        assert_eq!(canonical_value(Some(&serde_json::json!("3Gi"))), "3Gi");
        assert_eq!(canonical_value(None), "0");
    }
}
