//! Discovery: the resource catalogue (built-in kinds plus served CustomResourceDefinitions) and
//! its legacy (/api, /apis, /apis/<g>/<v>) and aggregated (apidiscovery.k8s.io/v2) documents.

use std::collections::HashMap;

use apimachinery::registry::{self, ResourceInfo, Storage, Subresource};
use serde_json::{json, Value};

use crate::negotiate::media_ranges;

/// The built-in catalogue, indexed.
pub struct Catalogue {
    pub builtin: Vec<ResourceInfo>,
    by_gvr: HashMap<(String, String, String), usize>,
    groups: Vec<(String, Vec<String>)>,
}

impl Catalogue {
    pub fn new() -> Self {
        let builtin = registry::builtin_resources();
        let by_gvr = builtin
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.group.clone(), r.version.clone(), r.plural.clone()), i))
            .collect();
        Catalogue {
            builtin,
            by_gvr,
            groups: registry::builtin_groups(),
        }
    }

    pub fn builtin(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .map(|i| &self.builtin[*i])
    }

    pub fn group_versions(&self) -> &[(String, Vec<String>)] {
        &self.groups
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::new()
    }
}

/// The resources a CRD serves, one per served version.
pub fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    versions
        .iter()
        .filter(|v| v["served"].as_bool() != Some(false))
        .filter_map(|v| {
            let version = v["name"].as_str()?.to_string();
            let mut subresources = Vec::new();
            if v.pointer("/subresources/status").is_some() {
                subresources.push(Subresource {
                    name: "status",
                    kind: "",
                    group: "",
                    version: "",
                    verbs: &["get", "patch", "update"],
                });
            }
            if v.pointer("/subresources/scale").is_some() {
                subresources.push(Subresource {
                    name: "scale",
                    kind: "Scale",
                    group: "autoscaling",
                    version: "v1",
                    verbs: &["get", "patch", "update"],
                });
            }
            Some(ResourceInfo {
                group: group.clone(),
                version,
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                verbs: registry::ALL_VERBS.iter().map(|s| s.to_string()).collect(),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources,
                storage: Storage::Stored,
                storage_version: storage_version.clone(),
                storage_group: group.clone(),
            })
        })
        .collect()
}

fn scope(r: &ResourceInfo) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn sub_kind<'a>(r: &'a ResourceInfo, s: &'a Subresource) -> (&'a str, &'a str, &'a str) {
    if s.kind.is_empty() {
        (&r.group, &r.version, &r.kind)
    } else {
        (s.group, s.version, s.kind)
    }
}

/// The legacy APIResourceList of one group version.
pub fn resource_list(group_version: &str, resources: &[&ResourceInfo]) -> Value {
    let mut out = Vec::new();
    for r in resources {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        out.push(e);
        for s in &r.subresources {
            let (g, v, k) = sub_kind(r, s);
            let mut e = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": s.verbs,
            });
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            out.push(e);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out})
}

/// The aggregated discovery entry of one resource.
fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        e["subresources"] = Value::Array(
            r.subresources
                .iter()
                .map(|s| {
                    let (g, v, k) = sub_kind(r, s);
                    json!({"subresource": s.name, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": s.verbs})
                })
                .collect(),
        );
    }
    e
}

/// Groups in order with their versions (preferred first) and resources per version.
pub type GroupTable<'a> = Vec<(String, Vec<(String, Vec<&'a ResourceInfo>)>)>;

pub fn group_table<'a>(all: &'a [ResourceInfo], order: &[(String, Vec<String>)]) -> GroupTable<'a> {
    let mut out: GroupTable<'a> = Vec::new();
    for (g, vs) in order {
        let versions = vs
            .iter()
            .map(|v| {
                (
                    v.clone(),
                    all.iter()
                        .filter(|r| &r.group == g && &r.version == v)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, rs)| !rs.is_empty())
            .collect::<Vec<_>>();
        if !versions.is_empty() {
            out.push((g.clone(), versions));
        }
    }
    // CRD groups not in the built-in order, sorted by name
    let mut extra: Vec<&String> = all
        .iter()
        .map(|r| &r.group)
        .filter(|g| !order.iter().any(|(o, _)| o == *g))
        .collect();
    extra.sort();
    extra.dedup();
    for g in extra {
        let mut vs: Vec<&String> = all
            .iter()
            .filter(|r| &r.group == g)
            .map(|r| &r.version)
            .collect();
        vs.dedup();
        vs.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
        vs.dedup();
        let versions = vs
            .into_iter()
            .map(|v| {
                (
                    v.clone(),
                    all.iter()
                        .filter(|r| &r.group == g && &r.version == v)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        out.push((g.clone(), versions));
    }
    out
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (level, major, num.parse().unwrap_or(0))
}

pub fn group_entry(name: &str, versions: &[(String, Vec<&ResourceInfo>)]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// The aggregated APIGroupDiscoveryList of the given groups.
pub fn aggregated(table: &GroupTable<'_>, core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = table
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": versions.iter().map(|(v, rs)| json!({
                    "version": v,
                    "resources": rs.iter().map(|r| aggregated_resource(r)).collect::<Vec<_>>(),
                    "freshness": "Current",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

/// Which aggregated discovery version the Accept header asks for, if any.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let h = accept?;
    for r in media_ranges(h) {
        if r.param("as") == Some("APIGroupDiscoveryList")
            && r.param("g") == Some("apidiscovery.k8s.io")
        {
            match r.param("v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
        if r.param("as").is_none() && (r.mime == "application/json" || r.mime == "*/*") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut vs = vec!["v1beta1", "v1", "v2alpha1", "v2", "v1alpha1", "v10"];
        vs.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
        assert_eq!(
            vs,
            vec!["v10", "v2", "v1", "v1beta1", "v2alpha1", "v1alpha1"]
        );
    }

    #[test]
    fn aggregated_accept() {
        let h = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(h)), Some("v2"));
        assert_eq!(wants_aggregated(Some("application/json")), None);
        assert_eq!(wants_aggregated(None), None);
    }

    #[test]
    fn legacy_list_has_subresources_with_foreign_kinds() {
        let c = Catalogue::new();
        let d = c.builtin("apps", "v1", "deployments").unwrap();
        let l = resource_list("apps/v1", &[d]);
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["deployments", "deployments/status", "deployments/scale"]
        );
        let scale = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
    }

    #[test]
    fn crd_served_versions() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v1beta1", "served": false, "storage": false}]}});
        let rs = crd_resources(&crd);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].singular, "widget");
        assert_eq!(rs[0].short_names, vec!["wd"]);
        assert!(rs[0].subresource("status").is_some());
        assert_eq!(rs[0].key("ns", "w"), "/registry/example.com/widgets/ns/w");
    }
}
