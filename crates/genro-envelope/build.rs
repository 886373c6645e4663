//! Sets `cfg(genro_taskdump)` when this build can trace a request's future with tokio's task
//! tracing: the `taskdump` feature, `RUSTFLAGS="--cfg tokio_unstable"`, and a platform tokio
//! supports (see `src/taskdump/mod.rs`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(genro_taskdump)");
    println!("cargo::rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let platform = var("CARGO_CFG_TARGET_OS") == "linux"
        && ["aarch64", "x86", "x86_64", "s390x"].contains(&var("CARGO_CFG_TARGET_ARCH").as_str());
    if platform
        && std::env::var_os("CARGO_CFG_TOKIO_UNSTABLE").is_some()
        && std::env::var_os("CARGO_FEATURE_TASKDUMP").is_some()
    {
        println!("cargo::rustc-cfg=genro_taskdump");
    }
}
