//! Key-space helpers shared by the backends: prefix ranges, pagination bounds and the
//! validation etcd applies to transaction ops.

use std::collections::HashSet;

use crate::{Op, Result, StoreError};

/// The smallest byte string greater than every key starting with `prefix`; None when no
/// such bound exists (empty prefix or all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The inclusive lower bound of a range: the prefix, or just after `start_after` if that is
/// further.
pub(crate) fn range_start(prefix: &[u8], start_after: &[u8]) -> Vec<u8> {
    if start_after.is_empty() {
        return prefix.to_vec();
    }
    let mut after = start_after.to_vec();
    after.push(0);
    if after.as_slice() > prefix {
        after
    } else {
        prefix.to_vec()
    }
}

/// Rejects what etcd rejects: empty keys and the same key twice in one branch.
pub(crate) fn check_ops(ops: &[Op]) -> Result<()> {
    let mut seen = HashSet::new();
    for op in ops {
        let key = match op {
            Op::Put { key, .. } | Op::Delete { key } => key,
        };
        if key.is_empty() {
            return Err(StoreError::Invalid("empty key".into()));
        }
        if !seen.insert(key.as_str()) {
            return Err(StoreError::Invalid(format!(
                "duplicate key {key} in transaction"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn prefix_end_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"", None),
            (b"/a/", Some(b"/a0")),
            (b"a", Some(b"b")),
            (b"a\xff", Some(b"b")),
            (b"\xff\xff", None),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), *want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn range_start_table() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b"/p/", b"", b"/p/"),
            (b"/p/", b"/p/b", b"/p/b\0"),
            // start_after before the prefix: the prefix bounds
            (b"/p/", b"/a", b"/p/"),
            (b"", b"k", b"k\0"),
        ];
        for (prefix, after, want) in cases {
            assert_eq!(
                range_start(prefix, after),
                *want,
                "prefix {prefix:?} after {after:?}"
            );
        }
    }

    #[test]
    fn check_ops_table() {
        let put = |k: &str| Op::Put {
            key: k.into(),
            value: Bytes::new(),
            lease: 0,
        };
        let del = |k: &str| Op::Delete { key: k.into() };
        assert!(check_ops(&[put("a"), del("b")]).is_ok());
        assert!(check_ops(&[]).is_ok());
        assert!(matches!(
            check_ops(&[put("a"), del("a")]),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(check_ops(&[put("")]), Err(StoreError::Invalid(_))));
    }
}
