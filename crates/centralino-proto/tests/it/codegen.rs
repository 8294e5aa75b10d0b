//! Regenerates the code from `proto/` and fails when the checked-in copy drifted.
//! `CENTRALINO_BLESS=1 cargo test -p centralino-proto codegen` (or `cargo xtask codegen`)
//! rewrites the checked-in files.

use std::path::{Path, PathBuf};

use prost::Message;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn proto_files(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("proto/centralino/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("proto/centralino/v1 is readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    files
}

#[test]
fn generated_code_matches_proto_sources() {
    let root = repo_root();
    let files = proto_files(&root);
    assert!(!files.is_empty(), "no .proto files found");
    let fds = protox::compile(&files, [root.join("proto")]).expect("proto files compile");
    let out = std::env::temp_dir().join(format!("centralino-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .out_dir(&out)
        .compile_fds(fds.clone())
        .expect("code generates");

    let gen_dir = root.join("crates/centralino-proto/src/gen");
    let mut expected = vec![("descriptor.bin".to_owned(), fds.encode_to_vec())];
    for entry in std::fs::read_dir(&out).expect("out dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        expected.push((name, std::fs::read(&path).expect("generated file")));
    }
    let _ = std::fs::remove_dir_all(&out);

    let bless = std::env::var_os("CENTRALINO_BLESS").is_some();
    let mut drifted = Vec::new();
    for (name, bytes) in &expected {
        let target = gen_dir.join(name);
        if std::fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
            if bless {
                std::fs::write(&target, bytes).expect("write generated file");
            } else {
                drifted.push(name.clone());
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "generated code is stale for {drifted:?}: run `cargo xtask codegen` and commit the result"
    );
}
