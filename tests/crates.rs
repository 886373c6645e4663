//! Every crate as it would be published and used alone: its metadata and files, the
//! dependency counts its README states, what its middleware pulls in, and docs that start with
//! a runnable example and name the features and the MSRV. (`.ci/run` packages each crate and
//! checks each feature alone with cargo-hack.)

mod common;

use std::path::Path;

use common::cargo;
use serde_json::Value;

/// The published crates, each after the crates it depends on.
const PUBLISHED: [&str; 9] = [
    "genro-envelope",
    "genro-notify",
    "genro-registry",
    "genro-metrics",
    "genro-errors",
    "genro-watchdog",
    "genro-stack",
    "genro-debug",
    "genro-server",
];

/// The published crates that serve on a port of their own; the others are tower middleware,
/// layers a user adds to a server of their own.
const SERVERS: [&str; 2] = ["genro-debug", "genro-server"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's packages, from `cargo metadata`.
fn packages() -> Vec<Value> {
    let text = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let metadata: Value = serde_json::from_str(&text).unwrap();
    metadata["packages"].as_array().unwrap().clone()
}

fn package<'a>(packages: &'a [Value], name: &str) -> &'a Value {
    packages
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

/// `cargo tree` of `krate` alone, one line per crate (`--prefix none`), with these edges.
fn tree(krate: &str, edges: &str, default_features: bool, dedupe: bool) -> String {
    let mut args = vec![
        "tree",
        "--offline",
        "--locked",
        "-e",
        edges,
        "--prefix",
        "none",
        "-p",
        krate,
    ];
    if !default_features {
        args.push("--no-default-features");
    }
    if !dedupe {
        args.push("--no-dedupe");
    }
    cargo(&args)
}

/// The crates in the normal dependency tree of `krate`, itself included: the count each README
/// states. (`--no-dedupe`: without it, a crate met twice is printed a second time with `(*)`
/// and would be counted twice.)
fn dependency_count(krate: &str, default_features: bool) -> usize {
    let tree = tree(krate, "normal", default_features, false);
    let mut lines: Vec<&str> = tree.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines.dedup();
    lines.len()
}

#[test]
fn each_readme_states_its_true_dependency_counts() {
    let command = "cargo tree -e normal --prefix none --no-dedupe | sort -u | wc -l";
    let mut wrong = Vec::new();
    for krate in PUBLISHED {
        let readme =
            std::fs::read_to_string(root().join("crates").join(krate).join("README.md")).unwrap();
        let line = readme
            .lines()
            .find(|l| l.starts_with("Dependencies: "))
            .unwrap_or_else(|| panic!("{krate}'s README has no `Dependencies: ` line"));
        assert!(line.contains(command), "{krate}: {line}");
        let numbers: Vec<usize> = line
            .split("**")
            .skip(1)
            .step_by(2)
            .map(|n| n.parse().expect("a count in bold"))
            .collect();
        let measured = [
            dependency_count(krate, true),
            dependency_count(krate, false),
        ];
        if numbers != measured {
            wrong.push(format!(
                "{krate}: README says {numbers:?}, cargo tree counts {measured:?} (with, without default features)"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_middleware_crate_pulls_no_server_and_no_tonic_unless_a_feature_asks() {
    let packages = packages();
    let server_parts = [
        r#"tokio feature "net""#,
        r#"hyper feature "server""#,
        r#"hyper-util feature "server""#,
    ];
    for krate in PUBLISHED.into_iter().filter(|k| !SERVERS.contains(k)) {
        for default_features in [false, true] {
            let tree = tree(krate, "normal,features", default_features, true);
            assert!(
                !tree.lines().any(|l| l.starts_with("tonic")),
                "{krate} (default features: {default_features}) pulls tonic"
            );
            let pulls_server = tree
                .lines()
                .any(|l| server_parts.iter().any(|part| l.starts_with(part)));
            // Only axum's own `tokio` feature (which `ConnectInfo` needs) may bring a server
            // in, through the crate's `axum` feature, a default one.
            if pulls_server {
                let defaults = &package(&packages, krate)["features"]["default"];
                assert!(
                    default_features
                        && defaults
                            .as_array()
                            .is_some_and(|d| d.iter().any(|f| f == "axum"))
                        && tree
                            .lines()
                            .any(|l| l.starts_with(r#"axum feature "tokio""#)),
                    "{krate} (default features: {default_features}) pulls a server in:\n{tree}"
                );
            }
        }
    }
}

/// The doc comment lines (`//!`) of a crate's `lib.rs`, without the marker.
fn crate_docs(krate: &str) -> Vec<String> {
    let lib =
        std::fs::read_to_string(root().join("crates").join(krate).join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).to_owned())
        .collect()
}

/// The fenced blocks of `docs`: each opening fence and the lines inside.
fn code_blocks(docs: &[String]) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in docs {
        match open.take() {
            None if line.starts_with("```") => open = Some((line.clone(), Vec::new())),
            None => {}
            Some(block) if line == "```" => blocks.push(block),
            Some((fence, mut body)) => {
                body.push(line.clone());
                open = Some((fence, body));
            }
        }
    }
    blocks
}

/// The lines of the section `heading` of `docs`, up to the next heading.
fn section<'a>(docs: &'a [String], heading: &str, krate: &str) -> Vec<&'a String> {
    let at = docs
        .iter()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("{krate}: no `{heading}` section"));
    docs[at + 1..]
        .iter()
        .take_while(|l| !l.starts_with("# "))
        .collect()
}

#[test]
fn each_crate_docs_start_with_a_runnable_example_and_name_its_features_and_msrv() {
    let packages = packages();
    let msrv = package(&packages, "genro-asgi")["rust_version"]
        .as_str()
        .unwrap()
        .to_owned();
    for krate in PUBLISHED {
        let docs = crate_docs(krate);
        // The first example (a ```text block is a picture, not an example): run as a doctest
        // (no `no_run` or `ignore`), and it checks what it got.
        let (fence, body) = code_blocks(&docs)
            .into_iter()
            .find(|(fence, _)| fence != "```text")
            .unwrap_or_else(|| panic!("{krate}: no example"));
        assert!(
            fence == "```" || fence == "```rust",
            "{krate}: the first example is `{fence}`, not run"
        );
        assert!(
            body.iter().any(|l| l.contains("assert")),
            "{krate}: the first example asserts nothing"
        );

        let features = section(&docs, "# Feature flags", krate);
        let declared = package(&packages, krate)["features"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|f| *f != "default")
            .cloned()
            .collect::<Vec<_>>();
        for feature in &declared {
            assert!(
                features
                    .iter()
                    .any(|l| l.starts_with(&format!("| `{feature}`"))),
                "{krate}: feature `{feature}` is not in its table"
            );
        }
        if declared.is_empty() {
            assert!(
                features.iter().any(|l| l.contains("no feature flags")),
                "{krate}: say that it has no feature flags"
            );
        }

        assert!(
            section(&docs, "# Minimum supported Rust version", krate)
                .iter()
                .any(|l| l.contains(&msrv)),
            "{krate}: the MSRV section does not say {msrv}"
        );
    }
}

#[test]
fn each_published_crate_has_what_crates_io_and_docs_rs_need() {
    let packages = packages();
    for krate in PUBLISHED {
        let p = package(&packages, krate);
        assert!(p["publish"].is_null(), "{krate} is publishable");
        for field in [
            "description",
            "license",
            "repository",
            "readme",
            "rust_version",
        ] {
            assert!(
                p[field].as_str().is_some_and(|v| !v.is_empty()),
                "{krate}: no {field}"
            );
        }
        for list in ["keywords", "categories"] {
            let items = p[list].as_array().unwrap();
            assert!(
                (1..=5).contains(&items.len()),
                "{krate}: {list} {items:?} (crates.io takes 1 to 5)"
            );
        }
        assert_eq!(
            p["metadata"]["docs"]["rs"]["all-features"], true,
            "{krate}: docs.rs metadata"
        );
        let files = cargo(&[
            "package",
            "--list",
            "--offline",
            "--allow-dirty",
            "-p",
            krate,
        ]);
        for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "Cargo.toml"] {
            assert!(
                files.lines().any(|l| l == file),
                "{krate}: {file} is not packaged:\n{files}"
            );
        }
    }
    // Test helpers and the umbrella of the workspace stay unpublished.
    for krate in ["genro-test-support", "genro-asgi"] {
        assert_eq!(
            package(&packages, krate)["publish"],
            serde_json::json!([]),
            "{krate} must be publish = false"
        );
    }
}
