//! The oxkube binary: `server` (control plane with the embedded store), `kubeconfig`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "oxkube", version, about = "Kubernetes in one Rust binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server on the embedded store) and, unless disabled, a node agent.
    Server(ServerArgs),
    /// Print the admin kubeconfig.
    Kubeconfig {
        #[arg(long, default_value = "/var/lib/oxkube")]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the server keeps its state, PKI and kubeconfig.
    #[arg(long, default_value = "/var/lib/oxkube")]
    data_dir: PathBuf,
    /// The address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// The HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Do not run a node agent inside the server.
    #[arg(long)]
    disable_agent: bool,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// How long Events are kept.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: Duration,
    /// The first IP of the service CIDR (covered by the serving certificate).
    #[arg(long, default_value = "10.43.0.1")]
    service_ip: IpAddr,
}

/// Parse `90s`, `5m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

fn host_ips() -> Vec<IpAddr> {
    // the addresses of this host's interfaces, read from the kernel's routing view
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last_ip: Option<IpAddr> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(ip) = t.strip_prefix("|-- ").and_then(|s| s.parse().ok()) {
                last_ip = Some(ip);
            } else if t.starts_with("/32 host LOCAL") {
                if let Some(ip) = last_ip {
                    if !ip.is_loopback() && !out.contains(&ip) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db_dir = args.data_dir.join("db");
    std::fs::create_dir_all(&db_dir).with_context(|| format!("creating {}", db_dir.display()))?;
    let store = store::sqlite::SqliteStore::open(db_dir.join("state.db"), Default::default())
        .context("opening the embedded store")?;
    let config = apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        token_auth_file: args.token_auth_file.clone(),
        event_ttl: args.event_ttl,
        serving_names: apiserver::pki::ServingNames {
            hostname: hostname(),
            ips: host_ips(),
            service_ip: Some(args.service_ip),
            extra_dns: vec![],
        },
    };
    if !args.disable_agent {
        tracing::info!("the node agent is not part of this build yet; running the control plane only");
    }
    let kubeconfig = args.data_dir.join("kubeconfig.yaml");
    apiserver::run(config, Arc::new(store), shutdown_signal(), |url| {
        tracing::info!(%url, elapsed_ms = started.elapsed().as_millis() as u64, "API server ready");
        println!("oxkube API server ready at {url}");
        println!("export KUBECONFIG={}", kubeconfig.display());
    })
    .await
    .context("API server")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OXKUBE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(server(args))
        }
        Command::Kubeconfig { data_dir } => {
            let path = data_dir.join("kubeconfig.yaml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (has `oxkube server` run with this --data-dir?)", path.display()))?;
            print!("{text}");
            Ok(())
        }
    }
}
