//! Service, Endpoints and EndpointSlice validation (upstream `ValidateService`,
//! `ValidateServiceUpdate`, `ValidateEndpoints`, discovery `ValidateEndpointSlice`).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{
    arr, child, dns_label_field, dns_subdomain_field, index, int, is_cidr, is_ip, present, s,
};
use super::{
    is_valid_port_num, validate_port_num_or_name, validate_protocol, CIDR_ERROR, IP_ERROR,
    PROTOCOLS,
};
use crate::meta;
use crate::status::{CauseType, FieldError};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const IP_FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];

fn cluster_ips(spec: &Value) -> Vec<String> {
    let list: Vec<String> = arr(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    if list.is_empty() && !s(spec, "clusterIP").is_empty() {
        vec![s(spec, "clusterIP").to_string()]
    } else {
        list
    }
}

fn go_port_key(protocol: &str, port: i64) -> String {
    format!("core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}")
}

pub(crate) fn validate_service(svc: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = svc.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let ty = s(spec, "type");
    let headless = s(spec, "clusterIP") == "None";
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "ExternalName" => {
            let ips = cluster_ips(spec);
            if !ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            let en = s(spec, "externalName");
            if en.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(dns_subdomain_field(
                    en.strip_suffix('.').unwrap_or(en),
                    "spec.externalName",
                ));
            }
            if present(spec, "ipFamilyPolicy") {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
        }
        "ClusterIP" | "NodePort" | "LoadBalancer" => {}
        other => errs.push(FieldError::not_supported(
            "spec.type",
            &json!(other),
            SERVICE_TYPES,
        )),
    }
    // ports
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let name = s(p, "name");
        if require_name && name.is_empty() {
            errs.push(FieldError::required(child(&pp, "name"), ""));
        } else if !name.is_empty() {
            errs.extend(dns_label_field(name, &child(&pp, "name")));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&pp, "name"), &json!(name)));
            }
        }
        let port = int(p, "port").unwrap_or(0);
        for m in is_valid_port_num(port) {
            errs.push(FieldError::invalid(child(&pp, "port"), &json!(port), m));
        }
        errs.extend(validate_protocol(p, &pp));
        errs.extend(validate_port_num_or_name(
            p.get("targetPort"),
            &child(&pp, "targetPort"),
        ));
        let app = s(p, "appProtocol");
        if !app.is_empty() {
            for m in meta::is_qualified_name(app) {
                errs.push(FieldError::invalid(
                    child(&pp, "appProtocol"),
                    &json!(app),
                    m,
                ));
            }
        }
        let proto = s(p, "protocol");
        if !keys.insert((proto.to_string(), port)) {
            errs.push(FieldError {
                kind: CauseType::Duplicate,
                field: pp.clone(),
                value: Some(go_port_key(proto, port)),
                detail: String::new(),
            });
        }
        if let Some(np) = int(p, "nodePort").filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    child(&pp, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                for m in is_valid_port_num(np) {
                    errs.push(FieldError::invalid(child(&pp, "nodePort"), &json!(np), m));
                }
                if !node_ports.insert((proto.to_string(), np)) {
                    errs.push(FieldError::duplicate(child(&pp, "nodePort"), &json!(np)));
                }
            }
        }
    }
    // session affinity
    match s(spec, "sessionAffinity") {
        "None" => {
            if let Some(c) = spec.get("sessionAffinityConfig").filter(|c| !c.is_null()) {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig",
                    c,
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let t = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !(1..=86400).contains(&t) {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    &json!(t),
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }
    errs.extend(meta::validate_labels(spec.get("selector"), "spec.selector"));
    // cluster IPs
    let ips = cluster_ips(spec);
    if ty != "ExternalName" {
        if s(spec, "clusterIP").is_empty() {
            if !ips.is_empty() {
                errs.push(meta::invalid_go(
                    "spec.clusterIPs",
                    &json!(ips),
                    "must be empty when `clusterIP` is not specified",
                ));
            }
        } else if ips.first().map(String::as_str) != Some(s(spec, "clusterIP")) {
            errs.push(meta::invalid_go(
                "spec.clusterIPs",
                &json!(ips),
                "first value must match `clusterIP`",
            ));
        }
        if ips.len() > 2 {
            errs.push(meta::invalid_go(
                "spec.clusterIPs",
                &json!(ips),
                "may only hold up to 2 values",
            ));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            if ips.len() > 1 {
                errs.push(FieldError::invalid(
                    index("spec.clusterIPs", i),
                    &json!(ip),
                    "'None' must be the first and only value",
                ));
            }
            if matches!(ty, "NodePort" | "LoadBalancer") {
                errs.push(FieldError::invalid(
                    index("spec.clusterIPs", i),
                    &json!(ip),
                    format!("may not be set to 'None' for {ty} services"),
                ));
            }
        } else if !ip.is_empty() && !is_ip(ip) {
            errs.push(FieldError::invalid(
                index("spec.clusterIPs", i),
                &json!(ip),
                IP_ERROR,
            ));
        }
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let v = ip.as_str().unwrap_or("");
        if !is_ip(v) {
            errs.push(FieldError::invalid(
                index("spec.externalIPs", i),
                &json!(v),
                IP_ERROR,
            ));
        }
    }
    // traffic policies
    let externally_accessible = matches!(ty, "NodePort" | "LoadBalancer")
        || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    let etp = s(spec, "externalTrafficPolicy");
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &json!(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            &json!(etp),
            &["Cluster", "Local"],
        ));
    }
    if ty != "ExternalName" {
        match s(spec, "internalTrafficPolicy") {
            "" => errs.push(FieldError::required("spec.internalTrafficPolicy", "")),
            "Cluster" | "Local" => {}
            other => errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                &json!(other),
                &["Cluster", "Local"],
            )),
        }
        let ifp = s(spec, "ipFamilyPolicy");
        if !ifp.is_empty() && !IP_FAMILY_POLICIES.contains(&ifp) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                &json!(ifp),
                IP_FAMILY_POLICIES,
            ));
        }
    }
    let mut families = HashSet::new();
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let v = f.as_str().unwrap_or("");
        if !matches!(v, "IPv4" | "IPv6") {
            errs.push(FieldError::not_supported(
                index("spec.ipFamilies", i),
                &json!(v),
                &["IPv4", "IPv6"],
            ));
        } else if !families.insert(v) {
            errs.push(FieldError::duplicate(
                index("spec.ipFamilies", i),
                &json!(v),
            ));
        }
    }
    // load balancer fields
    if ty == "LoadBalancer" {
        if !present(spec, "allocateLoadBalancerNodePorts") {
            errs.push(FieldError::required(
                "spec.allocateLoadBalancerNodePorts",
                "",
            ));
        }
        for (i, r) in arr(spec, "loadBalancerSourceRanges").iter().enumerate() {
            let v = r.as_str().unwrap_or("").trim();
            if !is_cidr(v) {
                errs.push(FieldError::invalid(
                    index("spec.loadBalancerSourceRanges", i),
                    &json!(v),
                    CIDR_ERROR,
                ));
            }
        }
    } else {
        if present(spec, "allocateLoadBalancerNodePorts") {
            errs.push(FieldError::forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        if !arr(spec, "loadBalancerSourceRanges").is_empty() {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        if int(spec, "healthCheckNodePort").is_some_and(|p| p != 0) {
            errs.push(FieldError::forbidden("spec.healthCheckNodePort", "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
    }
    errs
}

/// `ValidateServiceUpdate`: the primary cluster IP may not change once set (unless the type
/// changes to or from ExternalName).
pub(crate) fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let ns = new.get("spec").unwrap_or(&null);
    let os = old.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    if s(ns, "type") == "ExternalName" || s(os, "type") == "ExternalName" {
        return errs;
    }
    let (new_ips, old_ips) = (cluster_ips(ns), cluster_ips(os));
    if s(ns, "clusterIP") == "None" && s(os, "clusterIP") == "None" {
        return errs;
    }
    let ips_value = json!(new_ips);
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(meta::invalid_go(
                    index("spec.clusterIPs", i),
                    &ips_value,
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(meta::invalid_go(
                "spec.clusterIPs[0]",
                &ips_value,
                "primary clusterIP can not be unset",
            ));
        } else if new_ips[0] != old_ips[0] {
            errs.push(meta::invalid_go(
                "spec.clusterIPs[0]",
                &ips_value,
                "may not change once set",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(meta::invalid_go(
            "spec.clusterIPs[0]",
            &ips_value,
            "may not change once set",
        ));
    }
    let (nf, of) = (arr(ns, "ipFamilies"), arr(os, "ipFamilies"));
    for (i, f) in of.iter().enumerate().take(nf.len()) {
        if nf[i] != *f {
            errs.push(FieldError::invalid(
                index("spec.ipFamilies", i),
                &nf[i],
                "may not change once set",
            ));
        }
    }
    errs
}

pub(crate) fn validate_endpoints(ep: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ss) in arr(ep, "subsets").iter().enumerate() {
        let sp = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(ss, list).iter().enumerate() {
                let ip = s(a, "ip");
                if !is_ip(ip) {
                    errs.push(FieldError::invalid(
                        child(&index(&child(&sp, list), j), "ip"),
                        &json!(ip),
                        IP_ERROR,
                    ));
                }
            }
        }
        let ports = arr(ss, "ports");
        for (j, p) in ports.iter().enumerate() {
            let pp = index(&child(&sp, "ports"), j);
            let name = s(p, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                errs.extend(dns_label_field(name, &child(&pp, "name")));
            }
            let port = int(p, "port").unwrap_or(0);
            for m in is_valid_port_num(port) {
                errs.push(FieldError::invalid(child(&pp, "port"), &json!(port), m));
            }
            errs.extend(validate_protocol(p, &pp));
        }
    }
    errs
}

pub(crate) fn validate_endpoint_slice(es: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = s(es, "addressType");
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    if at.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !TYPES.contains(&at) {
        errs.push(FieldError::not_supported("addressType", &json!(at), TYPES));
    }
    let endpoints = arr(es, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(FieldError {
            kind: CauseType::TooMany,
            field: "endpoints".into(),
            value: Some(endpoints.len().to_string()),
            detail: "must have at most 1000 items".into(),
        });
    }
    for (i, e) in endpoints.iter().enumerate() {
        let ep = index("endpoints", i);
        let addrs = arr(e, "addresses");
        if addrs.is_empty() {
            errs.push(FieldError::required(
                child(&ep, "addresses"),
                "must contain at least 1 address",
            ));
        } else if addrs.len() > 100 {
            errs.push(FieldError {
                kind: CauseType::TooMany,
                field: child(&ep, "addresses"),
                value: Some(addrs.len().to_string()),
                detail: "must have at most 100 items".into(),
            });
        }
        for (j, a) in addrs.iter().enumerate() {
            let ap = index(&child(&ep, "addresses"), j);
            let v = a.as_str().unwrap_or("");
            match at {
                "IPv4" if v.parse::<std::net::Ipv4Addr>().is_err() => errs.push(
                    FieldError::invalid(ap, &json!(v), "must be a valid IPv4 address"),
                ),
                "IPv6" if v.parse::<std::net::Ipv6Addr>().is_err() => errs.push(
                    FieldError::invalid(ap, &json!(v), "must be a valid IPv6 address"),
                ),
                "FQDN" => errs.extend(dns_subdomain_field(v, &ap)),
                _ => {}
            }
        }
        if let Some(h) = e.get("hostname").and_then(Value::as_str) {
            errs.extend(dns_label_field(h, &child(&ep, "hostname")));
        }
        if let Some(n) = e.get("nodeName").and_then(Value::as_str) {
            errs.extend(dns_subdomain_field(n, &child(&ep, "nodeName")));
        }
    }
    let mut names = HashSet::new();
    for (i, p) in arr(es, "ports").iter().enumerate() {
        let pp = index("ports", i);
        let name = s(p, "name");
        if !name.is_empty() {
            errs.extend(dns_label_field(name, &child(&pp, "name")));
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(&pp, "name"), &json!(name)));
        }
        if let Some(port) = int(p, "port") {
            for m in is_valid_port_num(port) {
                errs.push(FieldError::invalid(child(&pp, "port"), &json!(port), m));
            }
        }
        let proto = s(p, "protocol");
        if !PROTOCOLS.contains(&proto) {
            errs.push(FieldError::not_supported(
                child(&pp, "protocol"),
                &json!(proto),
                PROTOCOLS,
            ));
        }
    }
    errs
}
