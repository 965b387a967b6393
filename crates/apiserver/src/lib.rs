//! The Kubernetes API server: HTTPS with client-certificate and token authentication, a
//! pluggable authorizer, admission (defaulting + validation), REST handlers for every built-in
//! resource and CRD-defined custom resources, a watch cache, discovery and OpenAPI. It depends
//! only on apimachinery and the store; it knows nothing of pods running.

pub mod admission;
pub mod auth;
pub mod cache;
pub mod connect;
pub mod discovery;
pub mod fields;
pub mod handlers;
pub mod join;
pub mod negotiate;
pub mod objects;
pub mod openapi_routes;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod render;
pub mod request;
pub mod reviews;
pub mod server;
pub mod serviceaccounts;
pub mod services;
pub mod subresources;
pub mod tables;
pub mod watch;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::registry::ResourceInfo;
use serde_json::{json, Value};
use store::{LeaseId, Store};
use tokio::net::TcpListener;

use crate::auth::{AllowAuthenticated, Authenticators, Authorizer, TokenFile};
use crate::cache::WatchCache;
use crate::discovery::Catalogue;

/// Configuration of the API server.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub secure_port: u16,
    /// Static bearer tokens (`token,user,uid,"groups"`).
    pub token_auth_file: Option<PathBuf>,
    /// How long Events are kept.
    pub event_ttl: Duration,
    /// The names the serving certificate covers.
    pub serving_names: pki::ServingNames,
    /// The issuer of service account tokens (`--service-account-issuer`); also the API
    /// server's audience.
    pub service_account_issuer: String,
    /// The tolerationSeconds of the default not-ready/unreachable NoExecute tolerations added
    /// to pods (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`).
    pub default_tolerations: admission::DefaultTolerations,
    /// The node of the embedded agent: a client certificate for `system:node:<name>` (group
    /// `system:nodes`) is written with its kubeconfig (`components/kubelet.kubeconfig`).
    pub node_name: Option<String>,
    /// The ranges Services get cluster IPs (`--service-cidr`) and node ports
    /// (`--service-node-port-range`) from.
    pub service_ranges: services::ServiceRanges,
    /// The address the `kubernetes` Service's endpoints point at (default: the bind address,
    /// or the first non-loopback IPv4 address of the host when bound to all or loopback).
    pub advertise_address: Option<IpAddr>,
}

impl Config {
    /// A configuration with upstream's defaults for everything but where to keep state and
    /// where to listen.
    pub fn new(data_dir: PathBuf, bind_address: IpAddr, secure_port: u16) -> Config {
        Config {
            data_dir,
            bind_address,
            secure_port,
            token_auth_file: None,
            event_ttl: Duration::from_secs(3600),
            serving_names: Default::default(),
            service_account_issuer: apimachinery::satoken::DEFAULT_ISSUER.to_string(),
            default_tolerations: Default::default(),
            node_name: None,
            service_ranges: Default::default(),
            advertise_address: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("pki: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("auth: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("watch cache: {0}")]
    Cache(#[from] cache::CacheError),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error("service account key: {0}")]
    ServiceAccountKey(#[from] apimachinery::satoken::TokenError),
    #[error("join token: {0}")]
    Join(#[from] join::JoinError),
}

/// Optional parts of the API server beyond storage and authentication.
#[derive(Default)]
pub struct ApiOptions {
    /// Service account token issuance (TokenRequest) and issuer discovery.
    pub tokens: Option<Arc<serviceaccounts::Tokens>>,
    /// Node join: `/cacerts` and the node identity endpoint.
    pub join: Option<Arc<join::NodeIdentityIssuer>>,
    pub default_tolerations: admission::DefaultTolerations,
    pub service_ranges: services::ServiceRanges,
}

/// The shared state of the API server.
pub struct Api {
    pub catalogue: Catalogue,
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub authn: Authenticators,
    pub authz: Arc<dyn Authorizer>,
    /// host:port clients reach this server at (discovery's serverAddressByClientCIDRs).
    pub server_address: String,
    pub event_ttl: Duration,
    /// How kubelets are reached for logs, exec, attach, port-forward and node proxy; set once
    /// the PKI is loaded.
    pub kubelet_client: std::sync::OnceLock<connect::KubeletClient>,
    event_lease: tokio::sync::Mutex<Option<(LeaseId, Instant)>>,
    /// The OpenAPI v2 document (built on first request, rebuilt when the CRDs change).
    pub openapi_v2: openapi_routes::V2Cache,
    pub tokens: Option<Arc<serviceaccounts::Tokens>>,
    pub join: Option<Arc<join::NodeIdentityIssuer>>,
    pub default_tolerations: admission::DefaultTolerations,
    /// Where Services get cluster IPs and node ports from.
    pub service_ranges: services::ServiceRanges,
    /// A store revision at or after this server's latest PriorityClass write: pod admission
    /// waits for the cache to reach it (read-your-writes for the classes pods resolve).
    priority_classes_written: std::sync::atomic::AtomicI64,
}

/// How long one event lease is reused before a new one is granted: 5% of the TTL, at most a
/// minute (upstream's lease manager), so Events live between TTL and TTL + reuse window.
fn event_lease_reuse(ttl: Duration) -> Duration {
    (ttl / 20).min(Duration::from_secs(60))
}

impl Api {
    pub async fn new(
        store: Arc<dyn Store>,
        authn: Authenticators,
        authz: Arc<dyn Authorizer>,
        server_address: String,
        event_ttl: Duration,
    ) -> Result<Arc<Api>, ServerError> {
        let cache = WatchCache::start(store.clone()).await?;
        Ok(Self::assemble(
            store,
            cache,
            authn,
            authz,
            server_address,
            event_ttl,
            ApiOptions::default(),
        ))
    }

    /// The API state over an already started watch cache.
    pub fn assemble(
        store: Arc<dyn Store>,
        cache: Arc<WatchCache>,
        authn: Authenticators,
        authz: Arc<dyn Authorizer>,
        server_address: String,
        event_ttl: Duration,
        options: ApiOptions,
    ) -> Arc<Api> {
        Arc::new(Api {
            catalogue: Catalogue::new(),
            store,
            cache,
            authn,
            authz,
            server_address,
            event_ttl,
            kubelet_client: std::sync::OnceLock::new(),
            event_lease: tokio::sync::Mutex::new(None),
            openapi_v2: openapi_routes::V2Cache::default(),
            tokens: options.tokens,
            join: options.join,
            default_tolerations: options.default_tolerations,
            service_ranges: options.service_ranges,
            priority_classes_written: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// The lease Events are attached to; reused for a minute so leases stay few.
    pub async fn event_lease(&self) -> Result<LeaseId, store::StoreError> {
        let mut g = self.event_lease.lock().await;
        let reuse = event_lease_reuse(self.event_ttl);
        if let Some((id, at)) = *g {
            if at.elapsed() < reuse {
                return Ok(id);
            }
        }
        let ttl = (self.event_ttl + reuse).as_secs().max(1) as i64;
        let id = self.store.lease_grant(ttl).await?;
        *g = Some((id, Instant::now()));
        Ok(id)
    }

    fn crds(&self) -> Vec<Arc<cache::CachedObject>> {
        let prefix = "/registry/apiextensions.k8s.io/customresourcedefinitions/";
        self.cache
            .resource(prefix)
            .snapshot(prefix, &self.cache.revision_rx())
            .0
    }

    /// The CRDs currently stored (not being deleted).
    pub fn crd_objects(&self) -> Vec<Arc<Value>> {
        self.crds()
            .into_iter()
            .map(|c| c.obj())
            .filter(|c| !crate::objects::is_deleting(c))
            .collect()
    }

    /// Every served resource: built-in kinds and established CRDs.
    pub fn all_resources(&self) -> Vec<ResourceInfo> {
        let mut all = self.catalogue.builtin.clone();
        for crd in self.crds() {
            let crd = crd.obj();
            if !crate::objects::is_deleting(&crd) {
                all.extend(discovery::crd_resources(&crd));
            }
        }
        all
    }

    /// Find a served resource; for custom resources also returns the CRD.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(ResourceInfo, Option<Arc<Value>>)> {
        if let Some(r) = self.catalogue.builtin(group, version, plural) {
            return Some((r.clone(), None));
        }
        for crd in self.crds() {
            let crd = crd.obj();
            if crd.pointer("/spec/group").and_then(Value::as_str) != Some(group)
                || crd.pointer("/spec/names/plural").and_then(Value::as_str) != Some(plural)
            {
                continue;
            }
            if let Some(r) = discovery::crd_resources(&crd)
                .into_iter()
                .find(|r| r.version == version)
            {
                return Some((r, Some(crd.clone())));
            }
        }
        None
    }

    /// The storage form of a resource served through conversion.
    pub fn storage_info(&self, ri: &ResourceInfo) -> ResourceInfo {
        let g = if ri.storage_group != ri.group {
            ri.storage_group.as_str()
        } else {
            ri.group.as_str()
        };
        self.catalogue
            .builtin(g, &ri.storage_version, &ri.plural)
            .cloned()
            .unwrap_or_else(|| ri.clone())
    }

    /// Create the objects every cluster has: the default, kube-system, kube-public and
    /// kube-node-lease namespaces.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), ServerError> {
        let (ns, _) = self
            .lookup("", "v1", "namespaces")
            .expect("namespaces are built in");
        let (pc, _) = self
            .lookup("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("priorityclasses are built in");
        let mut objects: Vec<(&ResourceInfo, &str, Value)> =
            ["default", "kube-system", "kube-public", "kube-node-lease"]
                .iter()
                .map(|n| {
                    (
                        &ns,
                        *n,
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}),
                    )
                })
                .collect();
        // the two system priority classes every cluster has (upstream's values)
        for (name, value, desc) in [
            ("system-node-critical", 2_000_001_000i64, "Used for system critical pods that must not be moved from their current node."),
            ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
        ] {
            objects.push((&pc, name, json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value, "description": desc})));
        }
        for (ri, name, obj) in objects {
            let q = Default::default();
            let r = handlers::Req {
                ri,
                namespace: "",
                name,
                subresource: "",
                query: &q,
                username: "system:apiserver",
                manager: "kube-apiserver",
                apply: false,
                view: None,
            };
            match self.create(&r, obj).await {
                Ok(_) => {}
                Err(e) if e.reason == apimachinery::Reason::AlreadyExists => {}
                Err(e) => return Err(ServerError::Bootstrap(e.to_string())),
            }
        }
        // the cache must see them before requests arrive
        self.cache.sync().await?;
        Ok(())
    }
}

/// The URL clients use to reach the server.
pub fn server_url(config: &Config) -> String {
    let host = if config.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        config.bind_address.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("https://{host}:{}", config.secure_port)
}

/// Load or create the PKI and write the admin kubeconfig; returns the PKI.
pub fn prepare_pki(config: &Config) -> Result<pki::Pki, ServerError> {
    let p = pki::Pki::load_or_create(&config.data_dir, &config.serving_names)?;
    let url = server_url(config);
    let kc = p.admin_kubeconfig(&url);
    pki::write_file(
        &config.data_dir.join("kubeconfig.yaml"),
        kc.as_bytes(),
        0o600,
    )?;
    // the built-in components reach the API with identities of their own, as upstream's do
    for (file, cn) in [
        ("scheduler", "system:kube-scheduler"),
        ("controller-manager", "system:kube-controller-manager"),
    ] {
        let creds = p.component_cert(file, cn, &[])?;
        let kc = pki::kubeconfig(&url, &p.ca.cert_pem, cn, &creds);
        pki::write_file(
            &component_kubeconfig(&config.data_dir, file),
            kc.as_bytes(),
            0o600,
        )?;
    }
    if let Some(node) = &config.node_name {
        let cn = format!("system:node:{node}");
        let creds = p.component_cert("kubelet", &cn, &["system:nodes".to_string()])?;
        let kc = pki::kubeconfig(&url, &p.ca.cert_pem, &cn, &creds);
        pki::write_file(
            &component_kubeconfig(&config.data_dir, "kubelet"),
            kc.as_bytes(),
            0o600,
        )?;
        // the embedded kubelet's serving certificate (`tls/kubelet/<node>.crt|key`)
        p.kubelet_serving_cert(node, &config.serving_names.ips)?;
    }
    Ok(p)
}

/// Where the kubeconfig of a built-in component (`scheduler`, `controller-manager`, `kubelet`)
/// lives.
pub fn component_kubeconfig(data_dir: &std::path::Path, component: &str) -> PathBuf {
    data_dir
        .join("components")
        .join(format!("{component}.kubeconfig"))
}

fn tls_config(p: &pki::Pki) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut p.ca.cert_pem.as_bytes()) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls(&e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut p.serving.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&e))?;
    let key = rustls_pemfile::private_key(&mut p.serving.key_pem.as_bytes())
        .map_err(|e| tls(&e))?
        .ok_or_else(|| ServerError::Tls("serving key missing".into()))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Run the API server until `shutdown` resolves. `ready` is called once it accepts requests.
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&str),
) -> Result<(), ServerError> {
    let p = prepare_pki(&config)?;
    let tls = Arc::new(tls_config(&p)?);
    let join_token = join::load_or_create_token(&config.data_dir, &p.ca.cert_pem)?;
    let mut authn = Authenticators {
        api_audiences: vec![config.service_account_issuer.clone()],
        ..Default::default()
    };
    if let Some(f) = &config.token_auth_file {
        authn.tokens.push(Arc::new(TokenFile::load(f)?));
    }
    let addr = SocketAddr::new(config.bind_address, config.secure_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Listen { addr, source: e })?;
    let url = server_url(&config);
    let server_address = url.trim_start_matches("https://").to_string();
    let cache = WatchCache::start(store.clone()).await?;
    let tokens = Arc::new(serviceaccounts::Tokens::new(
        &p.service_account_key_pem,
        &config.service_account_issuer,
        authn.api_audiences.clone(),
        cache.clone(),
    )?);
    authn
        .tokens
        .push(Arc::new(serviceaccounts::ServiceAccountAuthenticator(
            tokens.clone(),
        )));
    let api = Api::assemble(
        store,
        cache,
        authn,
        Arc::new(AllowAuthenticated),
        server_address,
        config.event_ttl,
        ApiOptions {
            tokens: Some(tokens),
            join: Some(Arc::new(join::NodeIdentityIssuer::new(
                p.ca.clone(),
                &join_token,
            )?)),
            default_tolerations: config.default_tolerations,
            service_ranges: config.service_ranges,
        },
    );
    let kubelet_client = connect::KubeletClient::new(&p.ca.cert_pem, &p.kubelet_client_cert()?)?;
    let _ = api.kubelet_client.set(kubelet_client);
    api.bootstrap().await?;
    api.bootstrap_services(config.secure_port)
        .await
        .map_err(|e| ServerError::Bootstrap(format!("services: {e}")))?;
    let advertise = config.advertise_address.unwrap_or(config.bind_address);
    let (reconciler_stop, reconciler_rx) = tokio::sync::watch::channel(false);
    let reconciler = (!advertise.is_unspecified()).then(|| {
        tokio::spawn(api.clone().run_master_reconciler(
            advertise,
            config.secure_port,
            reconciler_rx,
        ))
    });
    ready(&url);
    serve(api, listener, tls, shutdown).await;
    let _ = reconciler_stop.send(true);
    if let Some(r) = reconciler {
        let _ = r.await;
    }
    Ok(())
}

/// Accept TLS connections and serve HTTP/1.1 and HTTP/2 on them.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            // the client certificate's identity, parsed once per connection
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| auth::user_from_cert_der(c))
                .map(Arc::new);
            let svc = hyper::service::service_fn(move |req| {
                server::handle(api.clone(), cert.clone(), req)
            });
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            // clients multiplex many watches over one connection (upstream allows 1000 streams)
            builder.http2().max_concurrent_streams(1000);
            // a client that never finishes its request headers is dropped
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            if let Err(e) = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
}
