//! Generator of `src/protobuf/table.rs`, the schema table of the generic protobuf decoder; run by
//! hand: `cargo run -p apimachinery --example gen_protobuf_table -- <out.rs> [prefix=go-dir]...`.
//!
//! Sources:
//! - the prost-generated structs of the `k8s-pb` crate (located with `cargo metadata`): messages,
//!   field numbers, protobuf types, cardinality, nested message types, and the
//!   `impl crate::Resource` blocks that map apiVersion/kind to a message;
//! - optionally the Go API types (`k8s.io.api=/src/kubernetes/api`,
//!   `k8s.io.apimachinery=/src/kubernetes/apimachinery`, ...): for each struct field with a
//!   `protobuf:"..,N,.."` tag, its JSON name, `omitempty`, pointer-ness, inlining and position;
//! - the OpenAPI schemas of `apimachinery::openapi` for messages without Go source: JSON names are
//!   recovered by matching prost's snake_case names case-insensitively without underscores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[derive(Debug, Clone)]
struct RsField {
    tag: u32,
    rust_name: String,
    /// string, bytes, bool, int32, int64, double, message
    ty: String,
    /// one, rep, map
    card: &'static str,
    /// full proto name of the message type (field or map value)
    msg: Option<String>,
}

#[derive(Debug, Clone)]
struct RsMessage {
    package: String,
    rust_name: String,
    fields: Vec<RsField>,
}

#[derive(Debug, Clone)]
struct GoField {
    json: String,
    omitempty: bool,
    pointer: bool,
    /// pointer, slice or map: nil is JSON null
    nilable: bool,
    inline: bool,
    index: usize,
}

/// Go struct name -> fields by protobuf tag.
type GoPackage = HashMap<String, (String, HashMap<u32, GoField>)>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .expect("usage: gen_protobuf_table <out.rs> [prefix=go-dir]...");
    let src = k8s_pb_src();
    let version = src
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (messages, kinds) = parse_k8s_pb(&src);

    // go sources: package -> lowercase struct name -> (Go name, fields)
    let mut go: HashMap<String, GoPackage> = HashMap::new();
    let mut go_roots = Vec::new();
    for a in &args[1..] {
        let (prefix, dir) = a.split_once('=').expect("prefix=dir");
        go_roots.push(format!("{prefix}@{}", git_head(Path::new(dir))));
        parse_go_root(prefix, Path::new(dir), &mut go);
    }

    let schemas = apimachinery::openapi::builtin().schemas();
    let mut global: HashMap<String, BTreeSet<String>> = HashMap::new();
    for s in schemas.values() {
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for k in props.keys() {
                global.entry(norm(k)).or_default().insert(k.clone());
            }
        }
    }

    // final names
    let mut names: Vec<(String, usize)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let go_name = go
            .get(&m.package)
            .and_then(|p| p.get(&m.rust_name.to_lowercase()))
            .map(|(n, _)| n.clone());
        let name = go_name.unwrap_or_else(|| {
            openapi_name(schemas, &m.package, &m.rust_name).unwrap_or_else(|| m.rust_name.clone())
        });
        names.push((format!("{}.{}", m.package, name), i));
    }
    names.sort();
    let mut index_of_rust: HashMap<String, usize> = HashMap::new();
    for (pos, (_, i)) in names.iter().enumerate() {
        let m = &messages[*i];
        index_of_rust.insert(format!("{}.{}", m.package, m.rust_name), pos);
    }

    let mut stats: BTreeMap<&str, usize> = BTreeMap::new();
    let mut body = String::new();
    for (full, i) in &names {
        let m = &messages[*i];
        let short = full.rsplit('.').next().unwrap_or_default();
        let special = special_of(full);
        let go_fields = go
            .get(&m.package)
            .and_then(|p| p.get(&short.to_lowercase()))
            .map(|(_, f)| f);
        let schema = schemas.get(&openapi_key(full));
        let props = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let mut rows: Vec<(usize, String)> = Vec::new();
        for f in &m.fields {
            let gf = go_fields.and_then(|g| g.get(&f.tag));
            let (json, flags, order) = if let Some(gf) = gf {
                *stats.entry("go").or_default() += 1;
                let scalar = f.msg.is_none() && f.card == "one";
                let mut flags = 0;
                if scalar && gf.omitempty && !gf.pointer {
                    flags |= 1;
                }
                if gf.inline {
                    flags |= 2;
                }
                if !gf.omitempty {
                    flags |= 4;
                }
                if gf.nilable {
                    flags |= 8;
                }
                (gf.json.clone(), flags, gf.index)
            } else {
                let n = norm(&f.rust_name);
                let from_props = props.and_then(|p| p.keys().find(|k| norm(k) == n).cloned());
                let json = if let Some(j) = from_props {
                    *stats.entry("openapi-type").or_default() += 1;
                    j
                } else if let Some(j) = global.get(&n).filter(|s| s.len() == 1) {
                    *stats.entry("openapi-global").or_default() += 1;
                    if std::env::var_os("GEN_VERBOSE").is_some() {
                        eprintln!("global: {full} {} -> {:?}", f.rust_name, j);
                    }
                    j.iter().next().cloned().unwrap_or_default()
                } else {
                    *stats.entry("camel-case").or_default() += 1;
                    if special == "None"
                        && (go_fields.is_some() || std::env::var_os("GEN_VERBOSE").is_some())
                    {
                        eprintln!(
                            "note: {full} field {} ({}) not in go source",
                            f.tag, f.rust_name
                        );
                    }
                    lower_camel(&f.rust_name)
                };
                // an embedded message whose fields the OpenAPI schema shows inline
                let mut flags = 0;
                if let (Some(p), Some(msg)) = (props, &f.msg) {
                    if !p.contains_key(&json) {
                        if let Some(cp) = schemas
                            .get(&openapi_key(&proto_name(&names, &index_of_rust, msg)))
                            .and_then(|s| s.get("properties"))
                            .and_then(Value::as_object)
                        {
                            if !cp.is_empty() && cp.keys().all(|k| p.contains_key(k)) {
                                flags |= 2;
                            }
                        }
                    }
                }
                (json, flags, 10_000 + f.tag as usize)
            };
            let ty = match f.ty.as_str() {
                "string" => "Str".to_string(),
                "bytes" => "Bytes".to_string(),
                "bool" => "Bool".to_string(),
                "int32" => "I32".to_string(),
                "int64" => "I64".to_string(),
                "double" => "F64".to_string(),
                "message" => {
                    let msg = f.msg.as_ref().expect("message type");
                    let idx = index_of_rust
                        .get(msg)
                        .unwrap_or_else(|| panic!("unknown message {msg} in {full}"));
                    format!("Msg({idx})")
                }
                other => panic!("unsupported type {other} in {full}"),
            };
            let card = match f.card {
                "one" => "One",
                "rep" => "Rep",
                _ => "Map",
            };
            rows.push((
                order,
                format!("f({}, {:?}, {ty}, {card}, {flags})", f.tag, json),
            ));
        }
        rows.sort_by_key(|r| r.0);
        let fields: Vec<String> = rows.into_iter().map(|r| r.1).collect();
        writeln!(
            body,
            "    Message {{ name: {full:?}, special: {special}, fields: &[{}] }},",
            fields.join(", ")
        )
        .expect("write");
    }

    let mut kind_rows: Vec<(String, String, usize)> = Vec::new();
    let mut packages: BTreeMap<String, String> = BTreeMap::new();
    for (api_version, kind, rust_full) in &kinds {
        let idx = index_of_rust[rust_full];
        kind_rows.push((api_version.clone(), kind.clone(), idx));
        let pkg = rust_full.rsplit_once('.').map(|p| p.0).unwrap_or_default();
        packages.insert(api_version.clone(), pkg.to_string());
    }
    packages.insert(
        "meta.k8s.io/v1".into(),
        "k8s.io.apimachinery.pkg.apis.meta.v1".into(),
    );
    kind_rows.sort();

    let mut out_s = String::new();
    writeln!(
        out_s,
        "//! Protobuf schema table generated by `cargo run -p apimachinery --example gen_protobuf_table` from {version}{}; do not edit.",
        if go_roots.is_empty() { String::new() } else { format!(" and Go types {}", go_roots.join(" ")) }
    )
    .expect("write");
    out_s.push_str("\n#![cfg_attr(rustfmt, rustfmt_skip)]\n\n");
    out_s.push_str("use super::schema::{f, Card::*, Message, Special::*, Ty::*};\n\n");
    writeln!(
        out_s,
        "/// Every message, sorted by full name.\npub static MESSAGES: &[Message] = &["
    )
    .expect("write");
    out_s.push_str(&body);
    out_s.push_str("];\n\n");
    out_s.push_str("/// (apiVersion, kind, message index) of every resource, sorted.\npub static KINDS: &[(&str, &str, u16)] = &[\n");
    for (v, k, i) in &kind_rows {
        writeln!(out_s, "    ({v:?}, {k:?}, {i}),").expect("write");
    }
    out_s.push_str("];\n\n");
    out_s.push_str("/// (apiVersion, protobuf package), sorted: kinds that are not resources (`TokenRequest`, `Scale`,\n/// `DeleteOptions`) are looked up by name in their group-version's package.\npub static PACKAGES: &[(&str, &str)] = &[\n");
    for (v, p) in &packages {
        writeln!(out_s, "    ({v:?}, {p:?}),").expect("write");
    }
    out_s.push_str("];\n");
    std::fs::write(out, out_s).expect("write table");
    eprintln!(
        "{} messages, {} kinds, {} packages; json names: {stats:?}",
        names.len(),
        kind_rows.len(),
        packages.len()
    );
}

fn proto_name(
    names: &[(String, usize)],
    index_of_rust: &HashMap<String, usize>,
    rust: &str,
) -> String {
    index_of_rust
        .get(rust)
        .map(|i| names[*i].0.clone())
        .unwrap_or_default()
}

fn special_of(full: &str) -> &'static str {
    let short = full.rsplit('.').next().unwrap_or_default();
    match full {
        "k8s.io.apimachinery.pkg.api.resource.Quantity"
        | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => "Quantity",
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => "IntOrString",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => "Time",
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => "MicroTime",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => "Duration",
        "k8s.io.apimachinery.pkg.runtime.RawExtension"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => "RawJson",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs" => "StringItems",
        _ if full.starts_with("k8s.io.apiextensions_apiserver.") => match short {
            "JSON" => "RawJson",
            "JSONSchemaPropsOrArray" => "PropsOrArray",
            "JSONSchemaPropsOrBool" => "PropsOrBool",
            "JSONSchemaPropsOrStringArray" => "PropsOrStringArray",
            _ => "None",
        },
        _ if short == "ExtraValue" => "StringItems",
        _ => "None",
    }
}

fn openapi_key(full: &str) -> String {
    let rest = full.strip_prefix("k8s.io.").unwrap_or(full);
    let rest = rest
        .replacen("apiextensions_apiserver.", "apiextensions-apiserver.", 1)
        .replacen("kube_aggregator.", "kube-aggregator.", 1);
    format!("io.k8s.{rest}")
}

fn openapi_name(
    schemas: &BTreeMap<String, Value>,
    package: &str,
    rust_name: &str,
) -> Option<String> {
    let prefix = openapi_key(&format!("{package}."));
    let lower = rust_name.to_lowercase();
    schemas.keys().find_map(|k| {
        let short = k.strip_prefix(&prefix)?;
        (!short.contains('.') && short.to_lowercase() == lower).then(|| short.to_string())
    })
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn lower_camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn k8s_pb_src() -> PathBuf {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .output()
        .expect("run cargo metadata");
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata json");
    let pkg = v["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "k8s-pb")
        .expect("k8s-pb in the dependency graph");
    let manifest = PathBuf::from(pkg["manifest_path"].as_str().expect("manifest_path"));
    manifest.parent().expect("crate dir").join("src")
}

fn git_head(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("GIT_COMMIT"))
        .map(|s| s.trim().chars().take(12).collect())
        .unwrap_or_else(|_| "unknown".into())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Parses every `mod.rs` of k8s-pb: messages and (apiVersion, kind, rust full name).
fn parse_k8s_pb(src: &Path) -> (Vec<RsMessage>, Vec<(String, String, String)>) {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    for file in files.iter().filter(|f| f.ends_with("mod.rs")) {
        let rel = file
            .parent()
            .expect("dir")
            .strip_prefix(src)
            .expect("under src");
        let segs: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if segs.is_empty() {
            continue;
        }
        let package = format!("k8s.io.{}", segs.join("."));
        let text = std::fs::read_to_string(file).expect("read mod.rs");
        let lines: Vec<&str> = text.lines().collect();
        let mut cur: Option<RsMessage> = None;
        let mut is_msg = false;
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim();
            if l.starts_with("#[derive(") {
                is_msg = l.contains("::prost::Message");
            } else if let Some(rest) = l.strip_prefix("pub struct ") {
                if is_msg {
                    let empty = rest.ends_with("{}");
                    let name = rest
                        .trim_end_matches("{}")
                        .trim_end_matches(" {")
                        .trim()
                        .to_string();
                    let m = RsMessage {
                        package: package.clone(),
                        rust_name: name,
                        fields: Vec::new(),
                    };
                    if empty {
                        messages.push(m);
                        is_msg = false;
                    } else {
                        cur = Some(m);
                    }
                }
            } else if l == "}" {
                if let Some(m) = cur.take() {
                    messages.push(m);
                }
                is_msg = false;
            } else if let (Some(m), Some(attr)) = (cur.as_mut(), l.strip_prefix("#[prost(")) {
                // the field declaration follows, possibly over several lines
                let mut decl = String::new();
                let mut j = i + 1;
                while j < lines.len() {
                    decl.push_str(lines[j].trim());
                    let depth = decl.matches('<').count() as i64 - decl.matches('>').count() as i64;
                    if decl.ends_with(',') && depth == 0 {
                        break;
                    }
                    j += 1;
                }
                i = j;
                m.fields.push(parse_field(attr, &decl, &segs));
            } else if let Some(rest) = l.strip_prefix("impl crate::Resource for ") {
                let name = rest.trim_end_matches(" {").trim();
                let mut av = String::new();
                let mut kind = String::new();
                for l2 in &lines[i + 1..(i + 8).min(lines.len())] {
                    if let Some(v) = const_str(l2, "API_VERSION") {
                        av = v;
                    }
                    if let Some(v) = const_str(l2, "KIND") {
                        kind = v;
                    }
                }
                kinds.push((av, kind, format!("{package}.{name}")));
            }
            i += 1;
        }
    }
    (messages, kinds)
}

fn const_str(line: &str, name: &str) -> Option<String> {
    let l = line.trim();
    let rest = l.strip_prefix(&format!("const {name}: &'static str = \""))?;
    Some(rest.trim_end_matches("\";").to_string())
}

fn parse_field(attr: &str, decl: &str, segs: &[String]) -> RsField {
    let tag: u32 = attr
        .split("tag = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no tag in {attr}"));
    let (name, ty_text) = decl
        .strip_prefix("pub ")
        .and_then(|d| d.split_once(':'))
        .unwrap_or_else(|| panic!("bad field decl {decl}"));
    let rust_name = name.trim().trim_start_matches("r#").to_string();
    let ty_text = ty_text.trim().trim_end_matches(',');
    let (ty, card) = if let Some(m) = attr.strip_prefix("btree_map = \"string, ") {
        (m.split('"').next().unwrap_or_default().to_string(), "map")
    } else {
        let first = attr
            .split([',', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        let card = if attr.contains("repeated") {
            "rep"
        } else {
            "one"
        };
        (first, card)
    };
    let msg = (ty == "message").then(|| {
        let mut t = ty_text.replace(' ', "").replace(",>", ">");
        for w in [
            "::core::option::Option<",
            "::prost::alloc::vec::Vec<",
            "::prost::alloc::boxed::Box<",
        ] {
            if let Some(r) = t.strip_prefix(w) {
                t = r.to_string();
            }
        }
        if let Some(r) =
            t.strip_prefix("::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,")
        {
            t = r.to_string();
        }
        let t = t.trim_end_matches('>');
        resolve(t, segs)
    });
    RsField {
        tag,
        rust_name,
        ty,
        card,
        msg,
    }
}

/// `super::super::x::Y` relative to the module `segs` -> `k8s.io.<...>.Y`.
fn resolve(path: &str, segs: &[String]) -> String {
    let mut base: Vec<String> = segs.to_vec();
    let mut parts: Vec<&str> = path.split("::").collect();
    if parts.first() == Some(&"crate") {
        base.clear();
        parts.remove(0);
    }
    while parts.first() == Some(&"super") {
        base.pop();
        parts.remove(0);
    }
    base.extend(parts.iter().map(|s| s.to_string()));
    format!("k8s.io.{}", base.join("."))
}

/// Parses every non-test `.go` file under `dir` for structs with protobuf-tagged fields.
fn parse_go_root(prefix: &str, dir: &Path, go: &mut HashMap<String, GoPackage>) {
    let mut files = Vec::new();
    walk(dir, &mut files);
    for file in files {
        let fname = file.to_string_lossy();
        if !fname.ends_with(".go") || fname.ends_with("_test.go") {
            continue;
        }
        let rel = file
            .parent()
            .expect("dir")
            .strip_prefix(dir)
            .expect("under root");
        let pkg_suffix: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().replace('-', "_"))
            .collect();
        let package = if pkg_suffix.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", pkg_suffix.join("."))
        };
        let text = std::fs::read_to_string(&file).expect("read go");
        let mut cur: Option<(String, HashMap<u32, GoField>, usize)> = None;
        let mut depth = 0;
        for line in text.lines() {
            let l = line.trim();
            if cur.is_none() {
                if let Some(rest) = line.strip_prefix("type ") {
                    if let Some(name) = rest.strip_suffix(" struct {") {
                        cur = Some((name.trim().to_string(), HashMap::new(), 0));
                        depth = 1;
                    }
                }
                continue;
            }
            if l.starts_with("//") || l.is_empty() {
                continue;
            }
            if line == "}" {
                let (name, fields, _) = cur.take().expect("struct");
                if !fields.is_empty() {
                    go.entry(package.clone())
                        .or_default()
                        .insert(name.to_lowercase(), (name, fields));
                }
                continue;
            }
            if l.ends_with('{') {
                depth += 1;
            }
            if l.starts_with('}') {
                depth -= 1;
            }
            let Some((name, fields, index)) = cur.as_mut() else {
                continue;
            };
            let _ = name;
            if depth != 1 {
                continue;
            }
            let Some((decl, tags)) = l.split_once('`') else {
                continue;
            };
            let tags = tags.trim_end_matches('`');
            let toks: Vec<&str> = decl.split_whitespace().collect();
            let (embedded, gotype) = match toks.as_slice() {
                [t] => (true, *t),
                [_, t] => (false, *t),
                _ => continue,
            };
            let Some(pb) = tag_value(tags, "protobuf") else {
                continue;
            };
            let Some(num) = pb.split(',').nth(1).and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let json = tag_value(tags, "json").unwrap_or_default();
            let mut jparts = json.split(',');
            let jname = jparts.next().unwrap_or_default().to_string();
            let opts: Vec<&str> = jparts.collect();
            if jname == "-" {
                continue;
            }
            let inline = opts.contains(&"inline") || (embedded && jname.is_empty());
            *index += 1;
            fields.insert(
                num,
                GoField {
                    json: jname,
                    omitempty: opts.contains(&"omitempty") || opts.contains(&"omitzero"),
                    pointer: gotype.starts_with('*'),
                    nilable: gotype.starts_with('*')
                        || gotype.starts_with("[]")
                        || gotype.starts_with("map["),
                    inline,
                    index: *index,
                },
            );
        }
    }
}

fn tag_value<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}:\"");
    let start = tags.find(&pat)? + pat.len();
    let end = tags[start..].find('"')?;
    Some(&tags[start..start + end])
}
