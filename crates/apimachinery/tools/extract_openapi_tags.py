#!/usr/bin/env python3
"""Derive the OpenAPI extension table (src/openapi/tags.rs) from upstream Go API type markers.

k8s-openapi's JSON schemas carry descriptions, types, formats and required fields but none of the
Kubernetes vendor extensions. Those are public facts recorded as markers on the upstream Go types:
struct tags `patchStrategy:"..."` / `patchMergeKey:"..."`, comment markers `+listType=`,
`+listMapKey=`, `+mapType=`, `+structType=atomic` and `+enum` string types with their constants.
This script reads those markers (nothing else) and writes a Rust table.

usage: extract_openapi_tags.py <k8s.io/api checkout> <k8s.io/apimachinery checkout>
       <k8s.io/apiextensions-apiserver checkout>  > src/openapi/tags.rs
(checkouts at the tag matching the Kubernetes minor we serve, e.g. v0.33.x)
"""
import os
import re
import sys

API_DIRS = [
    "core/v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "discovery/v1",
    "coordination/v1", "events/v1", "rbac/v1", "storage/v1", "networking/v1", "policy/v1",
    "scheduling/v1", "authentication/v1", "authorization/v1",
]

FIELD_RE = re.compile(r'^\s*(?:(\w+)\s+)?([\w\.\*\[\]]+(?:\[[\w\.]+\][\w\.\*\[\]]+)?)\s+`([^`]*)`')
TYPE_STRUCT_RE = re.compile(r'^type\s+(\w+)\s+struct\s*{')
TYPE_STRING_RE = re.compile(r'^type\s+(\w+)\s+string\s*$')
CONST_RE = re.compile(r'^\s*\w+\s+(\w+)\s*=\s*"([^"]*)"')
IMPORT_RE = re.compile(r'^\s*(\w+)?\s*"([^"]+)"')


def schema_prefix(import_path):
    if import_path.startswith("k8s.io/api/"):
        return "io.k8s.api." + import_path[len("k8s.io/api/"):].replace("/", ".")
    if import_path.startswith("k8s.io/apimachinery/"):
        return "io.k8s.apimachinery." + import_path[len("k8s.io/apimachinery/"):].replace("/", ".")
    if import_path.startswith("k8s.io/apiextensions-apiserver/"):
        return "io.k8s.apiextensions-apiserver." + import_path[len("k8s.io/apiextensions-apiserver/"):].replace("/", ".")
    return None


def go_files(root, rel):
    d = os.path.join(root, rel)
    for name in sorted(os.listdir(d)):
        if not name.endswith(".go") or name.endswith("_test.go"):
            continue
        if name.startswith("zz_generated") or name.startswith("generated.") or "swagger_doc" in name:
            continue
        yield os.path.join(d, name)


class Package:
    def __init__(self, prefix):
        self.prefix = prefix
        self.structs = {}  # name -> {"atomic": bool, "fields": [(json, info)], "inline": [(alias, type)]}
        self.enums = {}  # name -> [values]
        self.string_types = set()
        self.imports = {}  # alias -> import path


def parse_tags(tag):
    out = {}
    for m in re.finditer(r'(\w+):"([^"]*)"', tag):
        out[m.group(1)] = m.group(2)
    return out


def parse_file(path, pkg):
    lines = open(path, encoding="utf-8").read().split("\n")
    comments = []
    i = 0
    in_import = False
    enum_pending = None
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("import ("):
            in_import = True
            i += 1
            continue
        if in_import:
            if s == ")":
                in_import = False
            else:
                m = IMPORT_RE.match(s)
                if m:
                    alias = m.group(1) or m.group(2).rsplit("/", 1)[-1]
                    pkg.imports[alias] = m.group(2)
            i += 1
            continue
        if s.startswith("//"):
            comments.append(s[2:].strip())
            i += 1
            continue
        m = TYPE_STRING_RE.match(s)
        if m:
            pkg.string_types.add(m.group(1))
            if "+enum" in comments:
                pkg.enums.setdefault(m.group(1), [])
            comments = []
            i += 1
            continue
        m = TYPE_STRUCT_RE.match(s)
        if m:
            name = m.group(1)
            atomic = any(c.replace(" ", "") == "+structType=atomic" for c in comments)
            granular = any(c.replace(" ", "") == "+structType=granular" for c in comments)
            st = {"atomic": atomic, "granular": granular, "fields": [], "inline": []}
            pkg.structs[name] = st
            comments = []
            depth = s.count("{") - s.count("}")
            i += 1
            while i < len(lines) and depth > 0:
                fl = lines[i]
                fs = fl.strip()
                if fs.startswith("//"):
                    comments.append(fs[2:].strip())
                    i += 1
                    continue
                depth += fs.count("{") - fs.count("}")
                if depth == 1 and "`" in fs:
                    fm = FIELD_RE.match(fl)
                    if fm:
                        fname, ftype, tag = fm.group(1), fm.group(2), fm.group(3)
                        tags = parse_tags(tag)
                        js = tags.get("json", "")
                        jname = js.split(",")[0]
                        if fname is None and jname == "":
                            # embedded type
                            st["inline"].append(ftype)
                        elif jname and jname != "-":
                            st["fields"].append((jname, ftype, tags, comments))
                comments = []
                i += 1
            continue
        if s.startswith("const ("):
            i += 1
            while i < len(lines) and lines[i].strip() != ")":
                cm = CONST_RE.match(lines[i])
                if cm:
                    pkg.enums.setdefault("__const__" + cm.group(1), []).append(cm.group(2))
                i += 1
            comments = []
            i += 1
            continue
        if s.startswith("const ") and "=" in s:
            cm = re.match(r'const\s+\w+\s+(\w+)\s*=\s*"([^"]*)"', s)
            if cm:
                pkg.enums.setdefault("__const__" + cm.group(1), []).append(cm.group(2))
        comments = [] if s == "" or not s.startswith("//") else comments
        i += 1


def marker(comments, key):
    vals = []
    for c in comments:
        c = c.replace(" ", "")
        if c.startswith("+" + key + "="):
            vals.append(c.split("=", 1)[1])
    return vals


def main():
    api, apimachinery, apiext = sys.argv[1:4]
    pkgs = {}
    sources = [(os.path.join(api), d, "k8s.io/api/" + d) for d in API_DIRS]
    sources.append((apimachinery, "pkg/apis/meta/v1", "k8s.io/apimachinery/pkg/apis/meta/v1"))
    sources.append((apiext, "pkg/apis/apiextensions/v1", "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"))
    for root, rel, ipath in sources:
        pkg = Package(schema_prefix(ipath))
        for f in go_files(root, rel):
            parse_file(f, pkg)
        # enum values: constants typed with an +enum type
        enums = {}
        for name in list(pkg.enums):
            if not name.startswith("__const__"):
                enums[name] = sorted(set(pkg.enums.get("__const__" + name, [])))
        pkg.enum_values = enums
        pkgs[ipath] = pkg

    def resolve_type(pkg, t):
        """(package, bare type name, is_slice) for a Go field type"""
        is_slice = False
        t = t.lstrip("*")
        if t.startswith("[]"):
            is_slice = True
            t = t[2:].lstrip("*")
        if t.startswith("map["):
            return None, None, False
        if "." in t:
            alias, name = t.split(".", 1)
            ip = pkg.imports.get(alias)
            return pkgs.get(ip), name, is_slice
        return pkg, t, is_slice

    rows = []
    struct_rows = []

    def fields_of(pkg, sname, seen):
        st = pkg.structs.get(sname)
        if st is None:
            return []
        out = list((pkg, f) for f in st["fields"])
        for it in st["inline"]:
            p2, n2, _ = resolve_type(pkg, it)
            if p2 is None or (id(p2), n2) in seen:
                continue
            if n2 in ("TypeMeta",):
                continue
            out.extend(fields_of(p2, n2, seen | {(id(p2), n2)}))
        return out

    for ipath, pkg in pkgs.items():
        for sname in sorted(pkg.structs):
            st = pkg.structs[sname]
            schema = pkg.prefix + "." + sname
            if st["atomic"]:
                struct_rows.append((schema, "atomic"))
            for fpkg, (jname, ftype, tags, comments) in fields_of(pkg, sname, {(id(pkg), sname)}):
                strategy = tags.get("patchStrategy") or (marker(comments, "patchStrategy") or [None])[0]
                merge_key = tags.get("patchMergeKey") or (marker(comments, "patchMergeKey") or [None])[0]
                list_type = (marker(comments, "listType") or [None])[0]
                map_keys = marker(comments, "listMapKey")
                map_type = (marker(comments, "mapType") or [None])[0]
                enum = []
                p2, n2, is_slice = resolve_type(fpkg, ftype)
                if p2 is not None and n2 in getattr(p2, "enum_values", {}):
                    enum = p2.enum_values[n2]
                if not (strategy or merge_key or list_type or map_keys or map_type or enum):
                    continue
                rows.append((schema, jname, merge_key, strategy, list_type, map_keys, map_type, enum, is_slice))

    def q(v):
        return "None" if v is None else 'Some("%s")' % v

    def arr(v):
        return "&[" + ", ".join('"%s"' % x.replace("\\", "\\\\").replace('"', '\\"') for x in v) + "]"

    print("//! Kubernetes OpenAPI vendor extensions of the built-in types (generated by tools/extract_openapi_tags.py")
    print("//! from the patchStrategy/patchMergeKey/listType/listMapKey/mapType/structType/enum markers of the")
    print("//! upstream Go API types of Kubernetes 1.33; do not edit by hand).")
    print()
    print("use super::schema::{FieldTag, StructTag};")
    print()
    print("/// Per-property extensions, keyed by (schema name, JSON property name).")
    print("pub(super) static FIELD_TAGS: &[FieldTag] = &[")
    for (schema, jname, mk, st, lt, keys, mt, enum, is_slice) in rows:
        print("    FieldTag {")
        print('        schema: "%s",' % schema)
        print('        field: "%s",' % jname)
        print("        merge_key: %s," % q(mk))
        print("        strategy: %s," % q(st))
        print("        list_type: %s," % q(lt))
        print("        map_keys: %s," % arr(keys))
        print("        map_type: %s," % q(mt))
        print("        enum_values: %s," % arr(enum))
        print("        enum_on_items: %s," % ("true" if is_slice else "false"))
        print("    },")
    print("];")
    print()
    print("/// Per-type extensions (`+structType=atomic` becomes `x-kubernetes-map-type: atomic`).")
    print("pub(super) static STRUCT_TAGS: &[StructTag] = &[")
    for (schema, mt) in struct_rows:
        print('    StructTag { schema: "%s", map_type: "%s" },' % (schema, mt))
    print("];")


if __name__ == "__main__":
    main()
