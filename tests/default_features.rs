//! The crates as a separate user crate sees them: `tests/consumer` depends on genro-envelope,
//! genro-errors and genro-metrics with their default features and nothing else, and is built and
//! tested on its own (outside this workspace, whose other members turn features on). Without
//! `axum` among the defaults it would not compile, and its routes would be `unmatched`.

use std::{path::Path, process::Command};

#[test]
fn a_user_crate_with_default_features_gets_the_axum_integration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("genro-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("tests")).unwrap();
    let manifest = std::fs::read_to_string(root.join("tests/consumer/Cargo.toml"))
        .unwrap()
        .replace("../../crates/", &format!("{}/crates/", root.display()));
    std::fs::write(work.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(
        root.join("tests/consumer/tests/defaults.rs"),
        work.join("tests/defaults.rs"),
    )
    .unwrap();
    // The workspace's lock file pins the same versions, and lets cargo work offline.
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock")).unwrap();
    // Its own build directory, kept between runs: the workspace's is locked by this test's cargo.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || root.join("target").join("consumer"),
        |dir| Path::new(&dir).join("consumer"),
    );
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(&work)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        out.status.success(),
        "the consumer crate failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
