//! Embeds the built portal (`../portal/dist`, made by `npm run build` in
//! `portal/`) in the control-plane binary, so that one binary is the whole
//! control plane. Without a build the binary still works, and `/portal`
//! says how to build it.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_none_or(|x| x != "gz") {
            out.push(p);
        }
    }
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|x| x.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../portal/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    files(&dist, &mut found);
    found.sort();
    let built = found.iter().any(|p| p.file_name().is_some_and(|n| n == "index.html"));
    if !built {
        println!("cargo:warning=the portal is not built (no portal/dist/index.html): /portal will say how to build it");
    }
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for p in &found {
        let rel = p.strip_prefix(&dist).expect("under dist").to_string_lossy().replace('\\', "/");
        let gz = PathBuf::from(format!("{}.gz", p.display()));
        let gz =
            if gz.exists() { format!("Some(include_bytes!({:?}))", gz.display().to_string()) } else { "None".into() };
        code.push_str(&format!(
            "    Asset {{ path: {rel:?}, body: include_bytes!({:?}), gzip: {gz}, mime: {:?} }},\n",
            p.display().to_string(),
            mime(p)
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!("pub const BUILT: bool = {built};\n"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("portal_assets.rs");
    std::fs::write(out, code).expect("write portal_assets.rs");
}
