//! Compiles the `syncguard.v1` contract with a vendored `protoc`, so no system package is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = [
        "common",
        "ingest",
        "stager",
        "gate",
        "notifier",
        "retention",
        "exporter",
    ]
    .iter()
    .map(|name| proto_root.join(format!("syncguard/v1/{name}.proto")))
    .collect();
    let descriptor_path = PathBuf::from(std::env::var("OUT_DIR")?).join("syncguard_descriptor.bin");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        // Messages that do not decode answer INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::ApiCodec")
        .compile_with_config(config, &files, std::slice::from_ref(&proto_root))?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
