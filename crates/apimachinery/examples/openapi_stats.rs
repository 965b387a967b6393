//! Prints how long generating the built-in OpenAPI v3 documents takes and how big they are;
//! with a directory argument also writes each document there (`api__v1.json`, ...).

use std::time::Instant;

fn main() {
    let out = std::env::args().nth(1);
    let t = Instant::now();
    let b = apimachinery::openapi::builtin();
    let components = t.elapsed();
    let docs = apimachinery::openapi::builtin_documents();
    let all = t.elapsed();
    let total: usize = docs.iter().map(|d| d.bytes.len()).sum();
    println!(
        "{} component schemas in {components:?}; {} documents ({total} bytes) in {all:?}",
        b.schemas().len(),
        docs.len()
    );
    for d in &docs {
        println!("{:>9} bytes  {}", d.bytes.len(), d.path);
        if let Some(dir) = &out {
            let file = format!("{dir}/{}.json", d.path.replace('/', "__"));
            std::fs::write(&file, &d.bytes).expect("write document");
        }
    }
    let t = Instant::now();
    let again = apimachinery::openapi::document("api/v1").expect("core document");
    println!("cached lookup of {} in {:?}", again.path, t.elapsed());
}
