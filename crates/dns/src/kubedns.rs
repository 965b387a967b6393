//! The `kube-system/kube-dns` Service (selector-less, fixed cluster IP) with an EndpointSlice
//! and an Endpoints object pointing at this DNS server's real address and port, so the
//! service proxy sends `<cluster-dns>:53` here. Desired objects are built sans-IO; `reconcile`
//! creates them or puts them back when they drift.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kube-dns";
/// The EndpointSlice's name (one slice: one server).
pub const SLICE_NAME: &str = "kube-dns-oxkube";
/// `endpointslice.kubernetes.io/managed-by` of the slice: not the EndpointSlice controller's.
pub const MANAGED_BY: &str = "dns.oxkube.io";

#[derive(Debug, thiserror::Error)]
pub enum KubeDnsError {
    #[error("{what}: {source}")]
    Api {
        what: &'static str,
        source: kube::Error,
    },
}

fn labels() -> BTreeMap<String, String> {
    [
        ("k8s-app", "kube-dns"),
        ("kubernetes.io/cluster-service", "true"),
        ("kubernetes.io/name", "CoreDNS"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The Service: ports dns 53/UDP and dns-tcp 53/TCP to the server's real port.
pub fn desired_service(cluster_ip: IpAddr, server: SocketAddr) -> Service {
    let port = |name: &str, proto: &str| ServicePort {
        name: Some(name.into()),
        protocol: Some(proto.into()),
        port: 53,
        target_port: Some(IntOrString::Int(i32::from(server.port()))),
        ..Default::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(labels()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(cluster_ip.to_string()),
            cluster_ips: Some(vec![cluster_ip.to_string()]),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The EndpointSlice: the server's address, ready, with its real port.
pub fn desired_slice(server: SocketAddr) -> EndpointSlice {
    let mut l = labels();
    l.insert("kubernetes.io/service-name".into(), NAME.into());
    l.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        MANAGED_BY.into(),
    );
    let port = |name: &str, proto: &str| SlicePort {
        name: Some(name.into()),
        protocol: Some(proto.into()),
        port: Some(i32::from(server.port())),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(SLICE_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(l),
            ..Default::default()
        },
        address_type: if server.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![Endpoint {
            addresses: vec![server.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
    }
}

/// The legacy Endpoints object (marked so the mirroring controller leaves it alone).
pub fn desired_endpoints(server: SocketAddr) -> Endpoints {
    let mut l = labels();
    l.insert(
        "endpointslice.kubernetes.io/skip-mirror".into(),
        "true".into(),
    );
    let port = |name: &str, proto: &str| EndpointPort {
        name: Some(name.into()),
        protocol: Some(proto.into()),
        port: i32::from(server.port()),
        ..Default::default()
    };
    Endpoints {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(l),
            ..Default::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: server.ip().to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }]),
    }
}

/// Whether the live Service carries what we want (defaults the API server adds aside).
pub fn service_matches(live: &Service, want: &Service) -> bool {
    let (Some(l), Some(w)) = (&live.spec, &want.spec) else {
        return false;
    };
    let ports = |s: &ServiceSpec| {
        s.ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone(),
                    p.protocol.clone(),
                    p.port,
                    p.target_port.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    l.cluster_ip == w.cluster_ip
        && l.selector.as_ref().is_none_or(|s| s.is_empty())
        && ports(l) == ports(w)
        && labels_include(&live.metadata, &want.metadata)
}

fn labels_include(live: &ObjectMeta, want: &ObjectMeta) -> bool {
    let live = live.labels.clone().unwrap_or_default();
    want.labels
        .iter()
        .flatten()
        .all(|(k, v)| live.get(k) == Some(v))
}

pub fn slice_matches(live: &EndpointSlice, want: &EndpointSlice) -> bool {
    live.address_type == want.address_type
        && live
            .endpoints
            .iter()
            .map(|e| (&e.addresses, e.conditions.as_ref().and_then(|c| c.ready)))
            .eq(want
                .endpoints
                .iter()
                .map(|e| (&e.addresses, e.conditions.as_ref().and_then(|c| c.ready))))
        && live.ports == want.ports
        && labels_include(&live.metadata, &want.metadata)
}

pub fn endpoints_match(live: &Endpoints, want: &Endpoints) -> bool {
    live.subsets == want.subsets && labels_include(&live.metadata, &want.metadata)
}

fn api_err(what: &'static str) -> impl Fn(kube::Error) -> KubeDnsError {
    move |source| KubeDnsError::Api { what, source }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Create or repair the Service, EndpointSlice and Endpoints once.
pub async fn reconcile(
    client: &kube::Client,
    cluster_ip: IpAddr,
    server: SocketAddr,
) -> Result<(), KubeDnsError> {
    let pp = PostParams {
        field_manager: Some("oxkube-dns".into()),
        ..Default::default()
    };
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let want = desired_service(cluster_ip, server);
    match services
        .get_opt(NAME)
        .await
        .map_err(api_err("reading the kube-dns service"))?
    {
        None => {
            services
                .create(&pp, &want)
                .await
                .map_err(api_err("creating the kube-dns service"))?;
            tracing::info!(%cluster_ip, %server, "created service kube-system/kube-dns");
        }
        Some(live) if !service_matches(&live, &want) => {
            // the cluster IP cannot change in place: replace the service
            let same_ip = live.spec.as_ref().and_then(|s| s.cluster_ip.as_ref())
                == want.spec.as_ref().and_then(|s| s.cluster_ip.as_ref());
            if same_ip {
                let mut next = want.clone();
                next.metadata.resource_version = live.metadata.resource_version.clone();
                services
                    .replace(NAME, &pp, &next)
                    .await
                    .map_err(api_err("updating the kube-dns service"))?;
            } else {
                match services.delete(NAME, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(api_err("replacing the kube-dns service")(e)),
                }
                services
                    .create(&pp, &want)
                    .await
                    .map_err(api_err("creating the kube-dns service"))?;
            }
            tracing::info!(%cluster_ip, %server, "repaired service kube-system/kube-dns");
        }
        Some(_) => {}
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let want = desired_slice(server);
    match slices
        .get_opt(SLICE_NAME)
        .await
        .map_err(api_err("reading the kube-dns endpointslice"))?
    {
        None => {
            slices
                .create(&pp, &want)
                .await
                .map_err(api_err("creating the kube-dns endpointslice"))?;
        }
        Some(live) if !slice_matches(&live, &want) => {
            let mut next = want.clone();
            next.metadata.resource_version = live.metadata.resource_version.clone();
            slices
                .replace(SLICE_NAME, &pp, &next)
                .await
                .map_err(api_err("updating the kube-dns endpointslice"))?;
        }
        Some(_) => {}
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
    let want = desired_endpoints(server);
    match endpoints
        .get_opt(NAME)
        .await
        .map_err(api_err("reading the kube-dns endpoints"))?
    {
        None => {
            endpoints
                .create(&pp, &want)
                .await
                .map_err(api_err("creating the kube-dns endpoints"))?;
        }
        Some(live) if !endpoints_match(&live, &want) => {
            let mut next = want.clone();
            next.metadata.resource_version = live.metadata.resource_version.clone();
            endpoints
                .replace(NAME, &pp, &next)
                .await
                .map_err(api_err("updating the kube-dns endpoints"))?;
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        "192.0.2.7:5353".parse().unwrap()
    }

    #[test]
    fn desired_objects() {
        let s = desired_service("10.43.0.10".parse().unwrap(), server());
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.10"));
        assert!(spec.selector.is_none());
        let ports: Vec<_> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap(),
                    p.protocol.clone().unwrap(),
                    p.port,
                    p.target_port.clone(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            vec![
                ("dns".into(), "UDP".into(), 53, Some(IntOrString::Int(5353))),
                (
                    "dns-tcp".into(),
                    "TCP".into(),
                    53,
                    Some(IntOrString::Int(5353))
                ),
            ]
        );
        assert_eq!(s.metadata.labels.as_ref().unwrap()["k8s-app"], "kube-dns");
        let sl = desired_slice(server());
        assert_eq!(sl.endpoints[0].addresses, vec!["192.0.2.7"]);
        assert_eq!(sl.address_type, "IPv4");
        assert_eq!(sl.ports.as_ref().unwrap()[0].port, Some(5353));
        assert_eq!(
            sl.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
            "kube-dns"
        );
        let ep = desired_endpoints(server());
        let sub = &ep.subsets.as_ref().unwrap()[0];
        assert_eq!(sub.addresses.as_ref().unwrap()[0].ip, "192.0.2.7");
        assert_eq!(sub.ports.as_ref().unwrap()[1].port, 5353);
    }

    #[test]
    fn drift_is_detected() {
        let want = desired_service("10.43.0.10".parse().unwrap(), server());
        let mut live = want.clone();
        // defaults the API server adds do not count as drift
        live.spec.as_mut().unwrap().session_affinity = Some("None".into());
        live.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        assert!(service_matches(&live, &want));
        let moved = desired_service(
            "10.43.0.10".parse().unwrap(),
            "192.0.2.7:5454".parse().unwrap(),
        );
        assert!(!service_matches(&moved, &want));
        let other_ip = desired_service("10.43.0.11".parse().unwrap(), server());
        assert!(!service_matches(&other_ip, &want));
        let mut selected = want.clone();
        selected.spec.as_mut().unwrap().selector =
            Some([("a".to_string(), "b".to_string())].into());
        assert!(!service_matches(&selected, &want));

        let ws = desired_slice(server());
        assert!(slice_matches(&ws.clone(), &ws));
        assert!(!slice_matches(
            &desired_slice("192.0.2.8:5353".parse().unwrap()),
            &ws
        ));
        let we = desired_endpoints(server());
        assert!(endpoints_match(&we.clone(), &we));
        assert!(!endpoints_match(
            &desired_endpoints("192.0.2.7:1".parse().unwrap()),
            &we
        ));
    }
}
