//! Build script: generates the OpenAPI v2 protobuf types (gnostic's openapi_v2 wire format)
//! from `proto/openapi_v2.proto` with prost (needs protoc).

fn main() {
    println!("cargo:rerun-if-changed=proto/openapi_v2.proto");
    prost_build::Config::new()
        .compile_protos(&["proto/openapi_v2.proto"], &["proto"])
        .expect("compile proto/openapi_v2.proto (is protoc installed?)");
}
