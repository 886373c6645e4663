//! The server as a process: `examples/minimal_server.rs` started with real configuration files,
//! driven by its command line and real signals (SIGTERM, SIGINT, SIGHUP), and asked over real
//! sockets. `cargo test` builds the example first.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use bytes::Bytes;
use genro_test_support::process::{temp_dir, ServerProcess as Server};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("minimal_server");
    assert!(path.exists(), "built by `cargo test`: {}", path.display());
    path
}

/// A configuration on a free port, logging to `server.log` beside it, with `extra` appended.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("server.ini");
    let text = format!(
        "[server]\nport = 0\n\n[logging]\nlevel = INFO\nformat = %(levelname)s %(message)s\n\
         file = {}\n\n[watchdog]\nenabled = false\n\n{extra}",
        dir.join("server.log").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_command_line_checks_prints_and_explains_itself_with_the_binarys_default() {
    let dir = temp_dir("cli");
    let config = write_config(&dir, "[limits]\nbody_limit = 1MiB\n");
    let config = config.to_str().unwrap();

    let valid = run(&["--check-config", "--config", config], &[], &dir);
    assert_eq!(valid.status.code(), Some(0), "{}", text(&valid.stderr));
    assert!(text(&valid.stdout).contains("configuration is valid"));

    let printed = run(
        &["--print-config", &format!("--config={config}")],
        &[("GENRO_ASGI_LIMITS_MAX_HEADERS", "50")],
        &dir,
    );
    assert_eq!(printed.status.code(), Some(0));
    let out = text(&printed.stdout);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{out}"))
            .to_owned()
    };
    assert!(line("body_limit").ends_with("server.ini:13"), "{out}");
    assert!(line("max_headers").contains("= 50"), "{out}");
    assert!(
        line("max_headers").ends_with("# GENRO_ASGI_LIMITS_MAX_HEADERS"),
        "{out}"
    );
    assert!(line("drain_timeout").ends_with("# default"), "{out}");

    std::fs::write(dir.join("bad.ini"), "[limits]\nbody_limt = 1MiB\n").unwrap();
    let invalid = run(&["--check-config", "--config", "bad.ini"], &[], &dir);
    assert_eq!(invalid.status.code(), Some(1));
    let err = text(&invalid.stderr);
    assert!(
        err.contains("limits.body_limt: unknown key (did you mean `body_limit`?) (from bad.ini:2)"),
        "{err}"
    );

    // Help and usage name this binary's default file, not another one's.
    let help = run(&["--help"], &[], &dir);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("default minimal.ini"));
    let wrong = run(&["--verbose"], &[], &dir);
    assert_eq!(wrong.status.code(), Some(2));
    let err = text(&wrong.stderr);
    assert!(err.contains("unknown argument \"--verbose\""), "{err}");
    assert!(err.contains("default minimal.ini"), "{err}");

    // With no --config, the default file is the one read.
    let missing = run(&["--check-config"], &[], &dir);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("minimal.ini: invalid configuration"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The environment cannot crash the start: a variable that is not UTF-8 is ignored unless it
/// is genro's, which is refused by name. A misspelt log level, and zero where zero would break
/// serving, are refused by `--check-config` and at start, never served.
#[cfg(unix)]
#[test]
fn bad_environment_and_bad_values_are_refused_by_name_never_crash_or_serve_wrongly() {
    use std::{ffi::OsString, os::unix::ffi::OsStringExt};
    let dir = temp_dir("bad-values");
    let config = write_config(&dir, "");
    let not_utf8 = || OsString::from_vec(vec![b'a', 0xff, b'z']);
    let check = |var: &str| {
        Command::new(binary())
            .args(["--check-config", "--config"])
            .arg(&config)
            .env(var, not_utf8())
            .output()
            .unwrap()
    };
    // Unrelated: ignored.
    let unrelated = check("SOME_TOOL_SETTING");
    assert_eq!(
        unrelated.status.code(),
        Some(0),
        "{}",
        text(&unrelated.stderr)
    );
    // genro's: a clear error naming it, from --check-config and from a start alike.
    let genro = check("GENRO_ASGI_LIMITS_MAX_HEADERS");
    assert_eq!(genro.status.code(), Some(1), "{}", text(&genro.stderr));
    let err = text(&genro.stderr);
    assert!(
        err.contains("GENRO_ASGI_LIMITS_MAX_HEADERS: its value is not valid UTF-8"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let started = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .env("GENRO_ASGI_SERVER_PORT", not_utf8())
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(1), "{}", text(&started.stderr));
    assert!(text(&started.stderr).contains("GENRO_ASGI_SERVER_PORT"));

    for (extra, expected) in [
        (
            "[limits]\nmax_headers = 0\n",
            "limits.max_headers: must be at least 1",
        ),
        (
            "[limits]\nidle_timeout = 0\n",
            "limits.idle_timeout: must be more than zero",
        ),
        (
            "[ssl]\nhandshake_timeout = 0s\n",
            "ssl.handshake_timeout: must be more than zero",
        ),
    ] {
        let config = write_config(&dir, extra);
        let out = run(
            &["--check-config", "--config", config.to_str().unwrap()],
            &[],
            &dir,
        );
        assert_eq!(out.status.code(), Some(1), "{extra}");
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );
    }
    // A runaway file (10 MB) is refused by the size cap before it is parsed, at once.
    let huge = dir.join("huge.ini");
    std::fs::write(
        &huge,
        "[application]\n".to_owned() + &"k = v\n".repeat(10 << 20 >> 2),
    )
    .unwrap();
    let started = Instant::now();
    let out = run(
        &["--check-config", "--config", huge.to_str().unwrap()],
        &[],
        &dir,
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("larger than 1024 KiB"),
        "{}",
        text(&out.stderr)
    );
    assert!(took < Duration::from_secs(1), "{took:?}");

    // The level is in the [logging] section write_config writes.
    let text_of = std::fs::read_to_string(&config)
        .unwrap()
        .replace("level = INFO", "level = WARNNG");
    std::fs::write(&config, text_of).unwrap();
    let out = run(&["--config", config.to_str().unwrap()], &[], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("logging.level") && err.contains("(did you mean WARNING?)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example with `--config config`, logging to `server.log` in `dir`.
fn start(dir: &Path, config: &Path) -> Server {
    start_with(dir, Command::new(binary()), config)
}

/// As [`start`], through `command` (the binary, or a wrapper that runs it).
fn start_with(dir: &Path, mut command: Command, config: &Path) -> Server {
    command.arg("--config").arg(config);
    Server::spawn(command, dir.join("server.log"))
}

async fn get(url: String) -> (http::StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = client.get(url.parse().unwrap()).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, text(&body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_drain_what_is_in_flight_then_exit_zero() {
    for signal in ["TERM", "INT"] {
        let dir = temp_dir(&format!("stop-{signal}"));
        let config = write_config(&dir, "[shutdown]\ndrain_timeout = 5s\n");
        let mut server = start(&dir, &config);
        let slow = tokio::spawn(get(server.url("/slow?ms=700")));
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.signal(signal);
        let (status, body) = slow.await.unwrap();
        assert_eq!(status, 200, "SIG{signal}");
        assert_eq!(body, "slept 700 ms\n");
        let exit = server.exit_within(Duration::from_secs(5));
        assert!(
            exit.is_some_and(|(s, _)| s.success()),
            "SIG{signal}: {exit:?}"
        );
        let log = server.log();
        assert!(log.contains(&format!("signal=SIG{signal}")), "{log}");
        assert!(log.contains("drain complete"), "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_live_keys_names_restart_keys_and_refuses_a_broken_file() {
    let dir = temp_dir("reload");
    let config = write_config(&dir, "[application]\ngreeting = first\n");
    let original = std::fs::read_to_string(&config)
        .unwrap()
        .replace("level = INFO", "level = WARNING");
    std::fs::write(&config, &original).unwrap();
    let server = start(&dir, &config);
    assert_eq!(get(server.url("/greeting")).await.1, "first\n");
    // At WARNING, the INFO line that announces the address is not written.
    assert!(!server.log().contains("listening on"), "{}", server.log());

    // A broken file is refused; the server keeps its configuration and keeps serving.
    std::fs::write(&config, "[server]\nport = nope\n").unwrap();
    server.signal("HUP");
    let log = server.wait_for_log("new configuration refused");
    assert!(log.contains("server.port"), "{log}");
    assert_eq!(get(server.url("/greeting")).await.1, "first\n");

    // The level is applied live (the reload's own INFO line is written), the free-form section
    // is read anew by handlers, and a key that needs a restart is named as such.
    let changed = original
        .replace("level = WARNING", "level = INFO")
        .replace("greeting = first", "greeting = second")
        + "\n[limits]\nbody_limit = 1MiB\n";
    std::fs::write(&config, changed).unwrap();
    server.signal("HUP");
    let log = server.wait_for_log("configuration reloaded");
    let reloaded = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(reloaded.contains("logging.level"), "{reloaded}");
    let restart = log
        .lines()
        .find(|l| l.contains("need a restart"))
        .unwrap_or_else(|| panic!("no restart warning:\n{log}"));
    assert!(restart.contains("limits.body_limit"), "{restart}");
    assert!(!restart.contains("logging.level"), "{restart}");
    assert_eq!(get(server.url("/greeting")).await.1, "second\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A handler's panic reaches the log file as one event in the log's format, with its message,
/// where it happened and the request's id; not as raw lines on stderr that the log file never
/// sees, and not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_logged_in_the_log_format_with_its_request() {
    let dir = temp_dir("panic-log");
    let config = write_config(&dir, "");
    let server = start(&dir, &config);
    let (status, _) = get(server.url("/panic")).await;
    assert_eq!(status, 500);
    let log = server.wait_for_log("ERROR request failed");
    let event = &log[log.find("ERROR request failed").unwrap()..];
    // `%(levelname)s %(message)s`, the format write_config sets, and the request's span.
    assert!(event.contains("error=the /panic"), "{event}");
    assert!(event.contains("location="), "{event}");
    assert!(event.contains("minimal_server.rs"), "{event}");
    assert!(event.contains("request_id="), "{event}");
    assert_eq!(log.matches("the /panic").count(), 1, "logged once:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With TLS on, a client that never sends its ClientHello does not hold the exit: an idle
/// server stops within a second of SIGTERM, not at the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_a_silent_client_does_not_delay_the_exit() {
    let dir = temp_dir("tls-silent-exit");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let ssl = format!(
        "[ssl]\nenabled = true\nhandshake_timeout = 10s\ncertfile = {}\nkeyfile = {}\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let config = write_config(&dir, &ssl);
    let mut server = start(&dir, &config);
    let _silent = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    let (status, took) = server.wait(Duration::from_secs(12));
    assert!(status.success(), "{}", server.log());
    assert!(took < Duration::from_secs(1), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `first` then `second` to the process from one shell, back to back.
fn signal_twice(pid: u32, first: &str, pause: &str, second: &str) {
    let script = format!("kill -{first} {pid}; sleep {pause}; kill -{second} {pid}");
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(status.success());
}

/// The signal listeners live for the whole run, and a reload reads its file off the signal
/// loop: a SIGTERM sent right behind a SIGHUP, 50 times, or while a reload reads a large file,
/// or while it waits forever on a file that never comes (a FIFO), still drains and stops the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_behind_a_sighup_or_during_a_reload_still_stops_the_server() {
    // Back to back, from one shell: 50 trials.
    for trial in 0..50 {
        let dir = temp_dir(&format!("hup-term-{trial}"));
        let config = write_config(&dir, "");
        let mut server = start(&dir, &config);
        signal_twice(server.pid(), "HUP", "0", "TERM");
        let exit = server.exit_within(Duration::from_secs(5));
        assert!(
            exit.is_some_and(|(s, _)| s.success()),
            "trial {trial}: {exit:?}\n{}",
            server.log()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A large file (just under the size cap, 30,000 keys): the TERM lands during its reload.
    let dir = temp_dir("hup-term-large");
    let keys = (0..30_000).fold("[application]\n".to_owned(), |mut text, i| {
        text.push_str(&format!("key_{i:06} = value number {i}\n"));
        text
    });
    let config = write_config(&dir, &keys);
    let mut server = start(&dir, &config);
    signal_twice(server.pid(), "HUP", "0.01", "TERM");
    let (status, _) = server.wait(Duration::from_secs(5));
    assert!(status.success(), "{}", server.log());

    // A reload that never finishes reading: the file was replaced by a FIFO no one writes.
    let config = write_config(&dir, "");
    let mut server = start(&dir, &config);
    std::fs::remove_file(&config).unwrap();
    let made = Command::new("mkfifo").arg(&config).status().unwrap();
    assert!(made.success());
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = get(server.url("/")).await;
    assert!(!body.is_empty(), "still serving during the reload");
    server.signal("TERM");
    let (status, took) = server.wait(Duration::from_secs(5));
    assert!(status.success(), "{}", server.log());
    assert!(took < Duration::from_secs(2), "{took:?}");
    server.wait_for_log("drain complete");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Out of file descriptors, `accept` fails until a connection closes: the server says so once
/// per run of failures, counts every failure, and serves again as soon as descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_logged_once_counted_and_survived() {
    let dir = temp_dir("emfile");
    let config = write_config(&dir, "");
    let mut command = Command::new("prlimit");
    command.args(["--nofile=64", "--"]).arg(binary());
    let server = start_with(&dir, command, &config);
    let addr = server.addr();
    // Far more connections than the server has descriptors for: the kernel completes them
    // (the listen backlog), the server cannot accept them all.
    let mut held = Vec::new();
    for _ in 0..120 {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            held.push(stream);
        }
    }
    server.wait_for_log("accept failed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // One run of failures while the connections are held: logged once.
    let log = server.log();
    assert_eq!(log.matches("accept failed").count(), 1, "{log}");
    drop(held);
    // Descriptors are free again: new connections are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, body) = get(server.url("/metrics")).await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "not served again: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("server_accept_errors_total "))
        .unwrap_or_else(|| panic!("no accept error counter:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    // Every failure is counted, far more than were logged.
    let logged = server.log().matches("accept failed").count();
    assert!(
        failures > 2 * logged as u64,
        "{failures} failures, {logged} logged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
