use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps the build free of system packages.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    let protos = [
        "ccag/config/v1/snapshot.proto",
        "ccag/config/v1/resources.proto",
        "ccag/config/v1/dataplane.proto",
        "ccag/admin/v1/admin.proto",
    ];
    println!("cargo:rerun-if-changed=ccag");
    let mut config = prost_build::Config::new();
    config.file_descriptor_set_path(&descriptors);
    tonic_prost_build::configure().build_server(true).build_client(true).compile_with_config(
        config,
        &protos,
        &["."],
    )?;
    let set = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new().register_descriptors(&set)?.build(&[".ccag"])?;
    Ok(())
}
