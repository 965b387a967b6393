//! Throughput of the protobuf body decoder on captured kubectl bodies:
//! `cargo run --release -p apimachinery --example bench_protobuf`.

use std::time::Instant;

fn main() {
    let bodies: [(&str, &[u8]); 3] = [
        (
            "configmap",
            include_bytes!("../src/protobuf/testdata/configmaps.pb"),
        ),
        (
            "deployment",
            include_bytes!("../src/protobuf/testdata/apps_v1_deployments.pb"),
        ),
        (
            "cronjob",
            include_bytes!("../src/protobuf/testdata/batch_v1_cronjobs.pb"),
        ),
    ];
    for (name, body) in bodies {
        let n = 200_000u32;
        let start = Instant::now();
        for _ in 0..n {
            let v = apimachinery::protobuf::decode_unknown(std::hint::black_box(body))
                .expect("decodes");
            std::hint::black_box(v);
        }
        let per = start.elapsed() / n;
        println!(
            "{name}: {} bytes, {:.2} µs/decode, {:.0} decodes/s",
            body.len(),
            per.as_secs_f64() * 1e6,
            1.0 / per.as_secs_f64()
        );
    }
}
