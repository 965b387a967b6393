//! `$(VAR)` expansion, the one expander of the kubelet (env values, command and args, probe
//! commands, subPathExpr), with upstream's rules (`third_party/forked/golang/expansion`):
//! `$(NAME)` becomes the value when NAME is defined and stays `$(NAME)` otherwise; `$$` is an
//! escaped `$`; a `$` before anything else is kept as is.

use std::collections::{BTreeMap, BTreeSet};

/// Expands `input`, looking names up with `lookup` (undefined names stay `$(NAME)`).
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    expand_with(input, |name| {
        lookup(name).unwrap_or_else(|| format!("$({name})"))
    })
}

/// Expands a volume mount's `subPathExpr` with the container's environment as upstream's
/// `ExpandContainerVolumeMounts`: a reference to an unset or empty variable is an error naming
/// every such variable, sorted.
pub fn expand_sub_path_expr(expr: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut missing = BTreeSet::new();
    let expanded = expand_with(expr, |key| match env.get(key) {
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

/// Expands `input`, replacing each `$(NAME)` with `mapping(NAME)` (upstream `expansion.Expand`).
pub fn expand_with(input: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            // a trailing `$` is kept
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(end) => {
                    out.push_str(&mapping(&after[1..end]));
                    rest = &after[end + 1..];
                }
                None => {
                    // an unterminated reference is kept; scanning continues after the `(`
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            c => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_EMPTY" => Some(String::new()),
            "VAR_REF" => Some("$(VAR_A)".into()),
            _ => None,
        }
    }

    #[test]
    fn upstream_table() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(VAR_EMPTY)", ""),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$", "$"),
            ("$", "$"),
            ("foo$", "foo$"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_A", "$(VAR_A"),
            ("$()", "$()"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$(VAR_A)$", "A$"),
            ("ünïcødé $(VAR_A) $ü", "ünïcødé A $ü"),
            ("no vars", "no vars"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want, "{input:?}");
        }
    }

    #[test]
    fn mapping_sees_every_reference() {
        let mut seen = Vec::new();
        let out = expand_with("$(A)-$$(B)-$(C)$(A", |k| {
            seen.push(k.to_string());
            k.to_lowercase()
        });
        assert_eq!(out, "a-$(B)-c$(A");
        assert_eq!(seen, ["A", "C"]);
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
            expand_sub_path_expr("$$(POD_NAME)/$(POD_NAME)", &env).unwrap(),
            "$(POD_NAME)/web-0"
        );
        assert_eq!(
            expand_sub_path_expr("$(Z)/$(EMPTY)/$(A)", &env).unwrap_err(),
            "missing value for A, EMPTY, Z"
        );
    }
}
