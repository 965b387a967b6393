//! Regenerates `src/openapi/components.json.zz`, the built-in OpenAPI component schemas the
//! server embeds, from k8s-openapi's types (`cargo run -p apimachinery --features schemars
//! --example gen_openapi_components`).

use std::io::Write;

fn main() {
    let gvs = apimachinery::openapi::builtin_group_versions();
    let json = apimachinery::openapi::builtin_components(&gvs).to_json();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&json).expect("compress");
    let bytes = z.finish().expect("compress");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/openapi/components.json.zz"
    );
    std::fs::write(path, &bytes).expect("write components.json.zz");
    println!(
        "{path}: {} bytes ({} uncompressed)",
        bytes.len(),
        json.len()
    );
}
