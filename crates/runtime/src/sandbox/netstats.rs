//! Network usage of a pod: the interface counters of its network namespace, read from
//! `/proc/thread-self/net/dev` by a short-lived thread that joins the pinned namespace.

use std::fs;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

/// Counters of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: rx_bytes rx_packets rx_errs rx_drop
/// rx_fifo rx_frame rx_compressed rx_multicast tx_bytes tx_packets tx_errs ...` per interface.
pub fn parse_net_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            (n.len() >= 11).then(|| Interface {
                name: name.trim().to_string(),
                rx_bytes: n[0],
                rx_errors: n[2],
                tx_bytes: n[8],
                tx_errors: n[10],
            })
        })
        .collect()
}

/// The interfaces of the network namespace pinned at `netns` (loopback left out).
pub fn read(netns: &Path) -> std::io::Result<Vec<Interface>> {
    let ns = fs::File::open(netns)?;
    let text = std::thread::spawn(move || -> std::io::Result<String> {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        fs::read_to_string("/proc/thread-self/net/dev")
    })
    .join()
    .map_err(|_| std::io::Error::other("netns thread panicked"))??;
    Ok(parse_net_dev(&text)
        .into_iter()
        .filter(|i| i.name != "lo")
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
eth0:    5000      40    3    0    0     0          0         0     7000      50    4    0    0     0       0          0\n";
        assert_eq!(
            parse_net_dev(text),
            vec![
                Interface {
                    name: "lo".into(),
                    rx_bytes: 100,
                    rx_errors: 0,
                    tx_bytes: 100,
                    tx_errors: 0
                },
                Interface {
                    name: "eth0".into(),
                    rx_bytes: 5000,
                    rx_errors: 3,
                    tx_bytes: 7000,
                    tx_errors: 4
                },
            ]
        );
        assert!(parse_net_dev("garbage\nx: 1 2\n").is_empty());
    }

    #[test]
    fn reads_this_process_namespace() {
        // the host's own namespace, pinned by /proc/self/ns/net: lo is left out, the rest parse
        let got = read(Path::new("/proc/self/ns/net")).unwrap();
        let want: Vec<Interface> = parse_net_dev(&fs::read_to_string("/proc/net/dev").unwrap())
            .into_iter()
            .filter(|i| i.name != "lo")
            .collect();
        assert_eq!(
            got.iter().map(|i| &i.name).collect::<Vec<_>>(),
            want.iter().map(|i| &i.name).collect::<Vec<_>>()
        );
    }
}
