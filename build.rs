//! Generates the host bindings for Spin's interfaces from the WIT files that ship inside the
//! `spin-sdk` crate our components are built with, so the runtime and the guests always agree on
//! the interface versions and nothing is vendored.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let wit_dir = spin_sdk_wit_dir();
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    // `bindgen!` only accepts a string literal path, so write the invocation into a file with the
    // absolute path spelled out and `include!` it from `src/host/bindings.rs`.
    let source = format!(
        r#"wasmtime::component::bindgen!({{
    inline: "
        package honey:host;
        world spin-host {{
            import spin:postgres/postgres@4.2.0;
            import spin:redis/redis@3.0.0;
            import spin:variables/variables@3.0.0;
        }}
    ",
    path: {wit:?},
    world: "honey:host/spin-host",
    imports: {{ default: async | trappable }},
}});
"#,
        wit = wit_dir.display().to_string()
    );
    std::fs::write(out.join("spin_bindings.rs"), source).expect("write generated bindings");
}

/// Asks cargo where the workspace's `spin-sdk` 7 lives and returns its `wit/` directory.
fn spin_sdk_wit_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HONEY_SPIN_SDK_WIT") {
        return PathBuf::from(dir);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    // Only the host's platform; offline first (a build script should not need the network),
    // online only if some workspace dependency has not been downloaded yet.
    let target = std::env::var("TARGET").expect("TARGET is set by cargo");
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--filter-platform"])
            .arg(&target)
            .arg("--manifest-path")
            .arg(PathBuf::from(&manifest_dir).join("Cargo.toml"));
        if offline {
            cmd.arg("--offline");
        }
        cmd.output()
            .expect("run `cargo metadata` to locate spin-sdk")
    };
    let mut output = metadata(true);
    if !output.status.success() {
        output = metadata(false);
    }
    if !output.status.success() {
        panic!(
            "`cargo metadata` failed while locating spin-sdk's WIT: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages array");
    let sdk = packages
        .iter()
        .find(|p| {
            p["name"] == "spin-sdk" && p["version"].as_str().is_some_and(|v| v.starts_with("7."))
        })
        .expect("spin-sdk 7 must be a dependency of a workspace member (the components)");
    let manifest = PathBuf::from(sdk["manifest_path"].as_str().expect("manifest_path"));
    let wit = manifest.parent().expect("crate dir").join("wit");
    assert!(
        wit.join("deps").is_dir(),
        "spin-sdk has no wit/deps at {}",
        wit.display()
    );
    wit
}
