//! A standalone CRI server over `runtime::run`, for this crate's tests (an agent that can be
//! killed with SIGKILL and restarted) and for poking at the runtime with crictl. Usage:
//! `oxkube-cri --data-dir DIR [--bridge NAME] [--pod-cidr CIDR] [--shim PATH] [--stream-addr IP:PORT]`.
use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = runtime::Config::new("/var/lib/oxkube");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let val = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--data-dir" => cfg.data_dir = PathBuf::from(val),
            "--bridge" => {
                cfg.cni_bridge = val.clone();
                cfg.cni_network = val;
            }
            "--pod-cidr" => cfg.pod_cidr = Some(val),
            "--stream-addr" => match val.parse() {
                Ok(a) => cfg.stream_addr = Some(a),
                Err(e) => {
                    eprintln!("oxkube-cri: bad --stream-addr {val:?}: {e}");
                    std::process::exit(2);
                }
            },
            "--shim" => {
                cfg.shim = Some(runtime::container::manager::ShimCommand {
                    exe: PathBuf::from(val),
                    prefix: vec![],
                })
            }
            other => {
                eprintln!("oxkube-cri: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    if let Err(e) = runtime::run(cfg, shutdown).await {
        eprintln!("oxkube-cri: {e}");
        std::process::exit(1);
    }
}
