//! Compiles `api/*.proto` with protox (pure Rust, no `protoc` needed) and
//! generates the prost messages and the tonic client from the result.

use std::error::Error;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = root.join("api");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    // Files are named relative to the crate root ("api/gobgp.proto"), which is
    // also how they import each other.
    let mut files = Vec::new();
    for entry in fs::read_dir(&proto_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path.strip_prefix(&root)?.to_path_buf());
        }
    }
    files.sort();

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // Self-contained descriptor set (with google/protobuf/timestamp.proto),
    // exported as `FILE_DESCRIPTOR_SET`.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("gobgp_api_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // The well-known types stay in the set so prost can inspect them, but are
    // mapped to prost-types rather than generated.
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
