//! `$(VAR)` expansion as upstream's `third_party/forked/golang/expansion` (used for subPathExpr).
//!
//! `$$` is an escaped `$`, `$(NAME)` is replaced by `mapping(NAME)`, an unterminated `$(` and a `$`
//! followed by anything else are kept literally.

/// Expands every `$(NAME)` reference in `input` with `mapping`.
pub fn expand(input: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let (advance, text) = match rest.as_bytes()[0] {
                b'$' => (1, "$".to_string()),
                b'(' => match rest[1..].find(')') {
                    Some(end) => (end + 2, mapping(&rest[1..end + 1])),
                    None => (1, "$(".to_string()),
                },
                _ => {
                    // `$` plus the next character, kept as they are.
                    let ch = rest.chars().next().unwrap_or_default();
                    (ch.len_utf8(), format!("${ch}"))
                }
            };
            out.push_str(&text);
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// Expands a volume mount's `subPathExpr` with the container's environment as upstream's
/// `ExpandContainerVolumeMounts`: a reference to an unset or empty variable is an error.
pub fn expand_sub_path_expr(
    expr: &str,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut missing = std::collections::BTreeSet::new();
    let expanded = expand(expr, |key| match env.get(key) {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            missing.insert(key.to_string());
            String::new()
        }
    });
    if missing.is_empty() {
        Ok(expanded)
    } else {
        Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(key: &str) -> String {
        match key {
            "VAR_A" => "A".into(),
            "VAR_B" => "B".into(),
            "EMPTY" => String::new(),
            other => format!("$({other})"),
        }
    }

    #[test]
    fn expansion_table() {
        let cases = [
            ("", ""),
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$(EMPTY)x", "x"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("foo$", "foo$"),
            ("$", "$"),
            ("$()", "$()"),
            ("f$ü", "f$ü"),
            ("$(VAR_A)$", "A$"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, map), want, "input {input:?}");
        }
    }

    #[test]
    fn sub_path_expr_reports_missing_variables_sorted() {
        let env: BTreeMap<String, String> = [("POD_NAME", "web-0"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            expand_sub_path_expr("logs/$(POD_NAME)", &env).unwrap(),
            "logs/web-0"
        );
        assert_eq!(
            expand_sub_path_expr("$(Z)/$(EMPTY)/$(A)", &env).unwrap_err(),
            "missing value for A, EMPTY, Z"
        );
    }
}
