//! The example server (`examples/server.rs`) as a user runs it: a real process on a free port,
//! one of its own configurations with some keys changed, and a real hyper client.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use genro_test_support::process::temp_dir;
pub use genro_test_support::process::ServerProcess as Server;

/// The example server's binary, built by `cargo test`.
pub fn example() -> PathBuf {
    example_named("server")
}

/// The binary of the example `name`, built by `cargo test`.
pub fn example_named(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "the example is built by `cargo test`: {}",
        path.display()
    );
    path
}

/// One of the example's own configurations (`examples/server.ini`, `examples/debug.ini`), with
/// these keys changed.
pub fn config_with(dir: &Path, base: &str, changes: &[(&str, &str, &str)]) -> PathBuf {
    let mut text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(base)).unwrap();
    for (section, key, value) in changes {
        let header = format!("[{section}]\n");
        let at = text.find(&header).expect("section exists") + header.len();
        text.insert_str(at, &format!("{key} = {value}\n"));
        // The original line of the key, if any, is commented out.
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut seen = false;
        let mut in_section = false;
        for line in &mut lines {
            if line.starts_with('[') {
                in_section = line == &format!("[{section}]");
                continue;
            }
            if in_section && line.split('=').next().map(str::trim) == Some(*key) {
                if seen {
                    *line = format!("# {line}");
                }
                seen = true;
            }
        }
        text = lines.join("\n") + "\n";
    }
    let path = dir.join("server.ini");
    std::fs::write(&path, text).unwrap();
    path
}

/// The example on a free port, logging to a file beside its configuration, with `changes`.
pub fn start(name: &str, changes: &[(&str, &str, &str)]) -> Server {
    start_from("examples/server.ini", name, changes, &[])
}

/// As [`start`], from the configuration `base`, with these environment variables.
pub fn start_from(
    base: &str,
    name: &str,
    changes: &[(&str, &str, &str)],
    env: &[(&str, &str)],
) -> Server {
    let dir = temp_dir(name);
    let log = dir.join("server.log");
    let log_value = log.display().to_string();
    let mut all = vec![
        ("server", "port", "0"),
        ("logging", "file", log_value.as_str()),
        ("logging", "level", "INFO"),
    ];
    all.extend_from_slice(changes);
    let config = config_with(&dir, base, &all);
    let mut command = Command::new(example());
    command
        .arg("--config")
        .arg(&config)
        .envs(env.iter().copied());
    // The example prints where it listens on stdout, whatever the log level.
    Server::spawn(command, log)
}
