//! Regenerates `src/openapi/components.json`, the built-in OpenAPI component schemas the
//! server embeds, from k8s-openapi's types (`cargo run -p apimachinery --features schemars
//! --example gen_openapi_components`).

fn main() {
    let gvs = apimachinery::openapi::builtin_group_versions();
    let json = apimachinery::openapi::builtin_components(&gvs).to_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi/components.json");
    std::fs::write(path, &json).expect("write components.json");
    println!("{path}: {} bytes", json.len());
}
