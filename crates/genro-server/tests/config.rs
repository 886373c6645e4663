//! The configuration: the seed's file read verbatim, precedence env > file > default, every bad
//! input reported with its key, source and value, and secrets that never show.

use std::time::Duration;

use genro_server::{
    config::{LogFormat, Source},
    Config,
};
use proptest::prelude::*;

const SEED: &str = include_str!("fixtures/seed.ini");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_seed_file_parses_verbatim_and_its_placeholder_webhook_is_reported() {
    // Notifications are on in the seed, with a placeholder URL: that is the one problem.
    let err = Config::from_ini_str(SEED, "server.ini", env(&[])).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    let problem = &err.problems()[0];
    assert_eq!(problem.key(), "errors.notify_webhook");
    let text = err.to_string();
    assert!(text.contains("\"https://...\""), "{text}");
    assert!(text.contains("(from server.ini:31)"), "{text}");

    // Turned off from the environment, the rest of the seed is accepted as written.
    let config = Config::from_ini_str(
        SEED,
        "server.ini",
        env(&[("GENRO_ASGI_ERRORS_NOTIFY_CRITICAL", "false")]),
    )
    .unwrap();
    assert_eq!(config.server.host, "0.0.0.0");
    assert_eq!(config.server.port, 8000);
    assert_eq!(config.server.workers, 4);
    assert_eq!(config.watchdog.interval, Duration::from_secs(30));
    assert_eq!(config.watchdog.critical, Duration::from_secs(300));
    assert_eq!(
        config.logging.format,
        LogFormat::Template(
            "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
                .parse()
                .unwrap()
        )
    );
    assert_eq!(config.metrics.export_port, Some(9090));
    // Debug is off, so its placeholder secret is not judged.
    assert!(!config.debug.enabled);
    assert_eq!(config.application.app_name(), Some("myapp"));
    assert_eq!(config.application.secret_key().unwrap().expose(), "xxxxx");
    assert_eq!(
        config.application.source("name"),
        Some(&Source::File {
            path: "server.ini".into(),
            line: 41
        })
    );
}

#[test]
fn server_debug_switches_development_defaults_that_explicit_keys_override() {
    let config = Config::from_ini_str("[server]\ndebug = true\n", "t.ini", env(&[])).unwrap();
    assert!(config.errors.show_traceback);
    assert_eq!(config.logging.level, "DEBUG");
    assert_eq!(config.logging.format, LogFormat::Pretty);
    let config = Config::from_ini_str(
        "[server]\ndebug = true\n[errors]\nshow_traceback = false\n[logging]\nlevel = WARNING\n",
        "t.ini",
        env(&[]),
    )
    .unwrap();
    assert!(!config.errors.show_traceback);
    assert_eq!(config.logging.level, "WARNING");
    let production = Config::default();
    assert!(!production.errors.show_traceback);
    assert_eq!(production.logging.format, LogFormat::Json);
}

#[test]
fn every_bad_input_names_its_key_source_and_value() {
    let ini = "[server]\nport = 70000\nprot = 1\n[watchdog]\ntimeout = -3\n[debug]\nenabled = true\n\
               secret = 0123456789abcdef\nallowed_ips = 10.0.0.0/33\n[limits]\nmax_connections = 0\n";
    let err = Config::from_ini_str(ini, "bad.ini", env(&[("GENRO_ASGI_SERVER_WORKRES", "2")]))
        .unwrap_err();
    let text = err.to_string();
    for expected in [
        "server.port: \"70000\" is not a port number from 0 to 65535 (from bad.ini:2)",
        "server.prot: unknown key (did you mean `port`?) (from bad.ini:3)",
        "watchdog.timeout: \"-3\" is not a duration",
        "(from bad.ini:5)",
        "debug.allowed_ips: \"10.0.0.0/33\" is not an IP address or network",
        "(from bad.ini:9)",
        "limits.max_connections: must be at least 1 (from bad.ini:11)",
        "server.workres: unknown key (did you mean `workers`?) (from GENRO_ASGI_SERVER_WORKRES)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(err.problems().len(), 6, "{text}");
}

#[test]
fn files_that_cannot_be_read_or_parsed_say_so() {
    let missing = Config::from_path("/no/such/dir/server.ini").unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("config file /no/such/dir/server.ini: cannot read it:"),
        "{missing}"
    );
    let dir = std::env::temp_dir();
    let unreadable = Config::from_path(&dir).unwrap_err();
    assert!(
        unreadable.to_string().contains("cannot read it"),
        "{unreadable}"
    );
    let err =
        Config::from_ini_str("[server]\nport 8000\n[server]\n", "s.ini", env(&[])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("s.ini:2: expected `key = value`"), "{text}");
    assert!(
        text.contains("s.ini:3: section [server] appears twice"),
        "{text}"
    );
}

#[test]
fn secrets_never_show_in_debug_output_printed_config_or_errors() {
    const CANARY: &str = "canary-7f3a91-secret";
    let ini = format!(
        "[debug]\nenabled = true\nsecret = {CANARY}\n[application]\nsecret_key = {CANARY}\n\
         [billing]\napi_token = {CANARY}\nregion = eu\n"
    );
    let config = Config::from_ini_str(&ini, "s.ini", env(&[])).unwrap();
    assert_eq!(config.debug.secret.expose(), CANARY);
    assert_eq!(config.section("billing").unwrap().get("region"), Some("eu"));
    assert_eq!(
        config
            .section("billing")
            .unwrap()
            .secret("api_token")
            .unwrap()
            .expose(),
        CANARY
    );
    for shown in [format!("{config:?}"), config.render_effective()] {
        assert!(!shown.contains(CANARY), "{shown}");
    }
    // A secret that is refused is still not shown.
    let short = "[debug]\nenabled = true\nsecret = canary-short\n";
    let err = Config::from_ini_str(short, "s.ini", env(&[])).unwrap_err();
    assert!(!err.to_string().contains("canary-short"), "{err}");
    assert!(err
        .to_string()
        .contains("debug.secret: must be at least 16 bytes"));
}

#[test]
fn the_effective_config_names_each_source() {
    let config = Config::from_ini_str(
        "[server]\nport = 9000\n",
        "s.ini",
        env(&[("GENRO_ASGI_SERVER_HOST", "0.0.0.0")]),
    )
    .unwrap();
    let text = config.render_effective();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{text}"))
            .to_owned()
    };
    assert!(line("port").ends_with("# s.ini:2"), "{text}");
    assert!(line("host").ends_with("# GENRO_ASGI_SERVER_HOST"), "{text}");
    assert!(line("workers").ends_with("# default"), "{text}");
}

/// Found by the `allowed_ips` fuzz target (fuzz/fuzz_targets/allowed_ips.rs): a `;` after a
/// blank starts a comment, so this value is empty and allows no one; and blanks separate items as
/// commas do.
#[test]
fn allowed_ips_read_as_the_ini_reader_hands_them_over() {
    let config = Config::from_ini_str(
        "[debug]\nallowed_ips = ;0.0&0./\u{7}/80\n",
        "fuzz.ini",
        env(&[]),
    )
    .unwrap();
    assert!(config.debug.allowed_ips.networks().is_empty());
    let config = Config::from_ini_str(
        "[debug]\nallowed_ips = 10.0.0.0/8\t::1,127.0.0.1\n",
        "fuzz.ini",
        env(&[]),
    )
    .unwrap();
    let shown: Vec<String> = config
        .debug
        .allowed_ips
        .networks()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "::1", "127.0.0.1"]);
}

proptest! {
    /// For any mix of keys set in the file, in the environment, both or neither, the value in
    /// force is the environment's, else the file's, else the default, and its source says which.
    #[test]
    fn precedence_is_env_then_file_then_default(
        port_in_file in proptest::option::of(1u16..),
        port_in_env in proptest::option::of(1u16..),
        interval_in_file in proptest::option::of(1u64..100_000),
        interval_in_env in proptest::option::of(1u64..100_000),
    ) {
        let mut ini = String::from("[server]\n");
        if let Some(p) = port_in_file { ini.push_str(&format!("port = {p}\n")); }
        ini.push_str("[watchdog]\ncritical = 1000000\n");
        if let Some(i) = interval_in_file { ini.push_str(&format!("interval = {i}ms\n")); }
        let mut vars = Vec::new();
        if let Some(p) = port_in_env { vars.push(("GENRO_ASGI_SERVER_PORT".to_owned(), p.to_string())); }
        if let Some(i) = interval_in_env { vars.push(("GENRO_ASGI_WATCHDOG_INTERVAL".to_owned(), format!("{i}ms"))); }
        let config = Config::from_ini_str(&ini, "p.ini", vars).unwrap();
        prop_assert_eq!(config.server.port, port_in_env.or(port_in_file).unwrap_or(8000));
        prop_assert_eq!(
            config.watchdog.interval,
            Duration::from_millis(interval_in_env.or(interval_in_file).unwrap_or(30_000))
        );
        let source = |key: &str| config.effective().iter().find(|e| e.key == key).unwrap().source.clone();
        let expected = match (port_in_env, port_in_file) {
            (Some(_), _) => "GENRO_ASGI_SERVER_PORT".to_owned(),
            (None, Some(_)) => "p.ini:2".to_owned(),
            (None, None) => "default".to_owned(),
        };
        prop_assert_eq!(source("port").to_string(), expected);
    }
}

#[test]
fn the_consoles_bounds_and_lists_are_checked_by_name() {
    let ini = "[debug]\nenabled = true\nsecret = 0123456789abcdef\nmax_sessions = 0\n\
               hold_timeout = 0\nmax_message_size = 0\nallowed_hosts = debug.internal, bad/name\n\
               mask_headers = x-api-key, bad:header\nlogin_failures = 0\nlockout = 0s\n";
    let err = Config::from_ini_str(ini, "d.ini", env(&[])).unwrap_err();
    let text = err.to_string();
    for expected in [
        "debug.max_sessions: must be at least 1 (from d.ini:4)",
        "debug.hold_timeout: must be more than zero",
        "debug.max_message_size: must be more than 0 (from d.ini:6)",
        "debug.allowed_hosts: \"debug.internal, bad/name\" is not a list of host names such as debug.internal (not \"bad/name\")",
        "debug.mask_headers:",
        "debug.login_failures: must be at least 1 (from d.ini:9)",
        "debug.lockout: must be more than zero",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The good values become the console's own settings.
    let ok = "[debug]\nenabled = true\nsecret = 0123456789abcdef\nallowed_ips = 10.0.0.0/8\n\
              allowed_hosts = Debug.Internal\nmask_headers = X-Api-Key\nmax_message_size = 64KiB\n\
              login_failures = 3\nlockout = 5m\n";
    let config = Config::from_ini_str(ok, "d.ini", env(&[])).unwrap();
    let console = config.debug.console();
    assert_eq!(console.allowed_hosts, vec!["debug.internal".to_owned()]);
    assert_eq!(
        console.masked_headers,
        vec![http::HeaderName::from_static("x-api-key")]
    );
    assert_eq!(console.max_message_size, 65_536);
    assert_eq!(console.failures.failures, 3);
    assert_eq!(
        console.failures.lockout,
        std::time::Duration::from_secs(300)
    );
    assert!(console.allowed_ips.allows("10.1.2.3".parse().unwrap()));
    assert!(!console.allowed_ips.allows("127.0.0.1".parse().unwrap()));
    assert!(!format!("{console:?}").contains("0123456789abcdef"));
}
