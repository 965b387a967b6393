//! The string formats upstream validates in custom resources (kube-openapi's `strfmt` registry
//! as apiextensions-apiserver configures it). Unknown formats are accepted.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use once_cell::sync::Lazy;
use regex::Regex;

fn re(p: &str) -> Regex {
    Regex::new(p).expect("static regex")
}

static UUID: Lazy<Regex> =
    Lazy::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: Lazy<Regex> =
    Lazy::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4: Lazy<Regex> = Lazy::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: Lazy<Regex> = Lazy::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static DATE_TIME: Lazy<Regex> =
    Lazy::new(|| re(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"));
static DATE: Lazy<Regex> = Lazy::new(|| re(r"^\d{4}-\d{2}-\d{2}$"));
static HEX_COLOR: Lazy<Regex> = Lazy::new(|| re(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: Lazy<Regex> = Lazy::new(|| {
    re(
        r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
    )
});
static SSN: Lazy<Regex> = Lazy::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static BSON: Lazy<Regex> = Lazy::new(|| re(r"^[0-9a-fA-F]{24}$"));
static HOSTNAME: Lazy<Regex> = Lazy::new(|| {
    re(
        r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?))*\.?$",
    )
});
static EMAIL: Lazy<Regex> = Lazy::new(|| re(r"^[^@\s<>]+@[^@\s<>]+$"));
static DURATION: Lazy<Regex> = Lazy::new(|| {
    re(
        r"^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h|d|w))+$|^\d+\s*(?:ns|us|µs|ms|s|m|h|d|w|seconds?|minutes?|hours?|days?|weeks?|sec|min|hr)s?$",
    )
});
static MAC: Lazy<Regex> = Lazy::new(|| {
    re(
        r"^([0-9a-fA-F]{2}([:-]))(([0-9a-fA-F]{2}[:-]){4}|([0-9a-fA-F]{2}[:-]){6}|([0-9a-fA-F]{2}[:-]){18})[0-9a-fA-F]{2}$|^([0-9a-fA-F]{4}\.){2,9}[0-9a-fA-F]{4}$",
    )
});

fn valid_date(y: &str, m: &str, d: &str) -> bool {
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn date_time(s: &str) -> bool {
    if !DATE_TIME.is_match(s) {
        return false;
    }
    let (h, mi, se) = (&s[11..13], &s[14..16], &s[17..19]);
    valid_date(&s[0..4], &s[5..7], &s[8..10])
        && h.parse::<u32>().is_ok_and(|h| h < 24)
        && mi.parse::<u32>().is_ok_and(|m| m < 60)
        && se.parse::<u32>().is_ok_and(|s| s < 61)
}

fn isbn10(s: &str) -> bool {
    let d: Vec<char> = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if d.len() != 10 {
        return false;
    }
    let mut sum = 0;
    for (i, c) in d.iter().enumerate() {
        let v = match c {
            '0'..='9' => *c as u32 - '0' as u32,
            'X' | 'x' if i == 9 => 10,
            _ => return false,
        };
        sum += v * (10 - i as u32);
    }
    sum % 11 == 0
}

fn isbn13(s: &str) -> bool {
    let d: Vec<u32> = s
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_digit(10).unwrap_or(99))
        .collect();
    if d.len() != 13 || d.contains(&99) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 2 == 0 { *v } else { v * 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn credit_card(s: &str) -> bool {
    let d: Vec<u32> = s
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_digit(10).unwrap_or(99))
        .collect();
    if !(12..=19).contains(&d.len()) || d.contains(&99) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, v)| {
            if i % 2 == 1 {
                let x = v * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else if ip.parse::<Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

fn uri(s: &str) -> bool {
    // net/url.ParseRequestURI: an absolute URI or an absolute path
    if s.starts_with('/') {
        return !s.contains(char::is_whitespace);
    }
    match s.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether `s` is valid for `format`; `None` when the format is not one upstream validates.
pub fn check(format: &str, s: &str) -> Option<bool> {
    Some(match format {
        "bsonobjectid" => BSON.is_match(s),
        "uri" => uri(s),
        "email" => EMAIL.is_match(s),
        "hostname" => s.len() <= 255 && HOSTNAME.is_match(s),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "mac" => MAC.is_match(s),
        "uuid" => UUID.is_match(s),
        "uuid3" => UUID3.is_match(s),
        "uuid4" => UUID4.is_match(s),
        "uuid5" => UUID5.is_match(s),
        "isbn" => isbn10(s) || isbn13(s),
        "isbn10" => isbn10(s),
        "isbn13" => isbn13(s),
        "creditcard" => credit_card(s),
        "ssn" => SSN.is_match(s),
        "hexcolor" => HEX_COLOR.is_match(s),
        "rgbcolor" => RGB_COLOR.is_match(s),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "password" => true,
        "date" => DATE.is_match(s) && valid_date(&s[0..4], &s[5..7], &s[8..10]),
        "duration" => DURATION.is_match(s),
        "date-time" | "datetime" => date_time(s),
        _ => return None,
    })
}
