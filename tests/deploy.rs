//! The deploy files in `deploy/`: the Kubernetes manifests validated against the API's schemas
//! (kubernetes-validate, which `scripts/test` installs from PyPI), their server configuration
//! checked by the example server itself, the grace period above the drain, and the systemd
//! units verified by `systemd-analyze`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::example::example;
use genro_asgi::Config;
use genro_test_support::process::temp_dir;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap()
}

/// `kubernetes-validate --strict FILE`: whether it passed, and what it said.
fn kubernetes_validate(file: &Path) -> (bool, String) {
    let output = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(file)
        .output()
        .expect("kubernetes-validate is installed (PyPI; scripts/test installs it)");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let manifest = deploy("kubernetes/genro-asgi.yaml");
    let (ok, said) = kubernetes_validate(&manifest);
    assert!(ok, "{said}");
    for kind in ["configmap", "deployment", "service"] {
        assert!(
            said.contains(&format!("passed for resource {kind}/")),
            "{said}"
        );
    }
    // The check can fail: a misspelt field is refused.
    let dir = temp_dir("deploy-k8s");
    let wrong = dir.join("wrong.yaml");
    let text = read("kubernetes/genro-asgi.yaml")
        .replace("terminationGracePeriodSeconds", "terminationGracePeriod");
    std::fs::write(&wrong, text).unwrap();
    let (ok, said) = kubernetes_validate(&wrong);
    assert!(!ok, "a misspelt field passed: {said}");
}

/// A `key: value` of the manifest (the first one).
fn yaml_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} in the manifest"))
        .trim()
        .trim_matches('"')
}

/// The probe's path under `probe:` (`readinessProbe`, `livenessProbe`).
fn probe_path<'a>(text: &'a str, probe: &str) -> &'a str {
    let at = text.find(&format!("{probe}:")).unwrap();
    yaml_value(&text[at..], "path")
}

#[test]
fn the_kubernetes_configuration_is_valid_and_the_grace_period_covers_the_drain() {
    let text = read("kubernetes/genro-asgi.yaml");
    // The ConfigMap's server.ini, as the pod reads it.
    let ini: String = text
        .split("server.ini: |\n")
        .nth(1)
        .unwrap()
        .split("\n---")
        .next()
        .unwrap()
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line).to_owned() + "\n")
        .collect();
    let dir = temp_dir("deploy-k8s-config");
    let file = dir.join("server.ini");
    std::fs::write(&file, &ini).unwrap();
    let checked = Command::new(example())
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let config = Config::from_ini_str(&ini, "server.ini", Vec::new()).unwrap();
    let drain = config.shutdown.drain_delay + config.shutdown.drain_timeout;
    assert!(
        !config.shutdown.drain_delay.is_zero(),
        "readiness leads the drain"
    );
    let grace: u64 = yaml_value(&text, "terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    assert!(
        grace > drain.as_secs(),
        "terminationGracePeriodSeconds {grace} is not above drain_delay + drain_timeout ({drain:?})"
    );
    assert_eq!(probe_path(&text, "readinessProbe"), config.health.ready);
    assert_eq!(probe_path(&text, "livenessProbe"), config.health.live);
    assert_eq!(yaml_value(&text, "prometheus.io/scrape"), "true");
    assert_eq!(
        yaml_value(&text, "prometheus.io/path"),
        config.metrics.endpoint
    );
    assert_eq!(
        yaml_value(&text, "prometheus.io/port"),
        config.server.port.to_string()
    );
    assert_eq!(
        yaml_value(&text, "containerPort"),
        config.server.port.to_string()
    );
}

/// The value of `Key=` in a unit file.
fn unit_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= in the unit"))
}

#[test]
fn the_systemd_units_notify_inherit_the_named_socket_and_verify() {
    let service = read("systemd/genro-asgi.service");
    let socket = read("systemd/genro-asgi.socket");
    assert_eq!(unit_value(&service, "Type"), "notify");
    // The upgrade's new process reports MAINPID= before it is the main process.
    assert_eq!(unit_value(&service, "NotifyAccess"), "all");
    assert!(unit_value(&service, "WatchdogSec").parse::<u64>().unwrap() > 0);
    // The name the server takes its main port by.
    assert_eq!(unit_value(&socket, "FileDescriptorName"), "main");
    assert_eq!(unit_value(&socket, "Service"), "genro-asgi.service");
    // The stop timeout covers the example configuration's drain.
    let config =
        Config::from_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/server.ini"))
            .unwrap();
    let stop: u64 = unit_value(&service, "TimeoutStopSec").parse().unwrap();
    assert!(stop > (config.shutdown.drain_delay + config.shutdown.drain_timeout).as_secs());
    // The pid file systemd reads is the one the server writes.
    let pid_file = unit_value(&service, "PIDFile");
    assert_eq!(
        unit_value(&service, "Environment"),
        format!("GENRO_ASGI_SERVER_PID_FILE={pid_file}")
    );

    // Verified with ExecStart pointing at a binary that exists: the example server.
    let dir = temp_dir("deploy-systemd");
    let exec = unit_value(&service, "ExecStart")
        .split_whitespace()
        .next()
        .unwrap();
    std::fs::write(
        dir.join("genro-asgi.service"),
        service.replace(exec, &example().display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.join("genro-asgi.socket"), &socket).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("genro-asgi.socket"))
        .arg(dir.join("genro-asgi.service"))
        .output()
        .expect("systemd-analyze is needed (Debian: systemd; scripts/test installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(!said.contains("Unknown key"), "{said}");
}
