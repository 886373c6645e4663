//! Operations, on the example server as a real process: `[shutdown] drain_delay`, sockets
//! inherited by systemd's socket-activation protocol, `reuse_port`, the zero-downtime upgrade
//! on SIGUSR2 under load, and systemd's notify protocol.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use std::{
    net::{SocketAddr, TcpListener},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use command_fds::{CommandFdExt, FdMapping};
use common::example::{config_with, example, start, Server};
use genro_test_support::http::get;
use genro_test_support::process::{signal as kill, temp_dir};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on a connection of its own (`connection: close`): its status, or why it failed
/// (a refused connection included).
async fn on_new_connection(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    // A response cut short would be missing its body (the example's `/` says "request").
    if status == 200 && path == "/" && !text.contains("request") {
        return Err(format!("incomplete response: {text:?}"));
    }
    Ok(status)
}

fn running(pid: u32) -> bool {
    // A zombie has exited: only its exit status is left for its parent to collect.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|s| !s.starts_with('Z'))
    })
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_turns_readiness_off_while_new_connections_are_still_served() {
    let mut server = start(
        "ops-drain-delay",
        &[
            ("shutdown", "drain_delay", "2s"),
            ("executors", "processes", "0"),
        ],
    );
    let addr = server.addr();
    assert_eq!(on_new_connection(addr, "/health/ready").await, Ok(200));
    let in_flight = tokio::spawn(on_new_connection(addr, "/slow?ms=3000"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    server.wait_for_log("not ready: serving on for the drain delay");
    // During the delay: not ready, and a new connection is still served.
    assert_eq!(on_new_connection(addr, "/health/ready").await, Ok(503));
    assert_eq!(on_new_connection(addr, "/").await, Ok(200));
    assert!(
        !server.log().contains("draining in_flight"),
        "the drain began before the delay ended:\n{}",
        server.log()
    );
    // After it: the listener is closed, and the request in flight finishes.
    server.wait_for_log("draining in_flight");
    let refused = on_new_connection(addr, "/").await;
    assert!(
        refused.as_ref().is_err_and(|e| e.starts_with("connect")),
        "{refused:?}"
    );
    assert_eq!(in_flight.await.unwrap(), Ok(200));
    let (status, _) = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_delay() {
    let mut server = start(
        "ops-drain-delay-twice",
        &[
            ("shutdown", "drain_delay", "60s"),
            ("executors", "processes", "0"),
        ],
    );
    server.signal("TERM");
    server.wait_for_log("not ready: serving on for the drain delay");
    server.signal("TERM");
    let (status, took) = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(server.log().contains("second signal: draining now"));
}

/// The example with `listeners` as descriptors 3, 4, … and the socket-activation variables
/// (`LISTEN_PID` set to the process's own pid by `sh`, as systemd would, unless `pid` is given).
fn activated(
    config: &Path,
    listeners: Vec<OwnedFd>,
    names: Option<&str>,
    pid: Option<&str>,
) -> Command {
    let count = listeners.len();
    let mut command = Command::new("/bin/sh");
    let set_pid = match pid {
        Some(pid) => format!("LISTEN_PID={pid}"),
        None => "LISTEN_PID=$$".to_owned(),
    };
    command
        .arg("-c")
        .arg(format!("{set_pid}; export LISTEN_PID; exec \"$0\" \"$@\""))
        .arg(example())
        .arg("--config")
        .arg(config)
        .env("LISTEN_FDS", count.to_string());
    if let Some(names) = names {
        command.env("LISTEN_FDNAMES", names);
    }
    let mappings = listeners
        .into_iter()
        .zip(3..)
        .map(|(parent_fd, child_fd)| FdMapping {
            parent_fd,
            child_fd,
        })
        .collect();
    command.fd_mappings(mappings).unwrap();
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_on_the_inherited_socket_without_binding() {
    let dir = temp_dir("ops-activation");
    let log = dir.join("server.log");
    let inherited = TcpListener::bind("127.0.0.1:0").unwrap();
    let inherited_addr = inherited.local_addr().unwrap();
    // The configured port is held by the test: a server that bound it itself would fail.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port().to_string();
    let config = config_with(
        &dir,
        "examples/server.ini",
        &[
            ("server", "port", &held_port),
            ("logging", "file", &log.display().to_string()),
            ("executors", "processes", "0"),
        ],
    );
    let server = Server::spawn(
        activated(&config, vec![OwnedFd::from(inherited)], None, None),
        log,
    );
    assert_eq!(server.addr(), inherited_addr);
    let (status, headers, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-request-id"));
    // The log is written by a thread of its own: wait for the line, not for the order.
    server.wait_for_log(&format!("sockets=main={inherited_addr}"));
    drop(held);
}

/// The example's start-up error with these inherited sockets: its stderr, once it has exited
/// with a failure.
fn start_error(
    name: &str,
    listeners: Vec<OwnedFd>,
    names: Option<&str>,
    pid: Option<&str>,
) -> String {
    let dir = temp_dir(name);
    let config = config_with(
        &dir,
        "examples/server.ini",
        &[("server", "port", "0"), ("executors", "processes", "0")],
    );
    let output = activated(&config, listeners, names, pid)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "it started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn socket_activation_mismatches_are_clear_start_up_errors() {
    let listener = || OwnedFd::from(TcpListener::bind("127.0.0.1:0").unwrap());
    let wrong_pid = start_error("ops-wrong-pid", vec![listener()], None, Some("1"));
    assert!(
        wrong_pid.contains("LISTEN_PID: the sockets are meant for process \"1\""),
        "{wrong_pid}"
    );
    let unknown = start_error(
        "ops-wrong-name",
        vec![listener(), listener()],
        Some("main:admin"),
        None,
    );
    assert!(
        unknown.contains("unknown socket name(s) [\"admin\"]"),
        "{unknown}"
    );
    // A metrics socket while [metrics] export_port is off.
    let unused = start_error(
        "ops-unused-name",
        vec![listener(), listener()],
        Some("main:metrics"),
        None,
    );
    assert!(unused.contains("[\"metrics\"] not used"), "{unused}");
    // Digits only: Rust's integer parse would take a sign.
    let signed = start_error("ops-signed-pid", vec![listener()], None, Some("+$$"));
    assert!(
        signed.contains("LISTEN_PID: the sockets are meant for process \"+"),
        "{signed}"
    );
    // One socket under two names: the console would accept the application's connections.
    let one = TcpListener::bind("127.0.0.1:0").unwrap();
    let twice = vec![OwnedFd::from(one.try_clone().unwrap()), OwnedFd::from(one)];
    let passed_twice = start_error("ops-one-socket-twice", twice, Some("main:debug"), None);
    assert!(
        passed_twice.contains(
            "the sockets \"main\" (descriptor 3) and \"debug\" (descriptor 4) are one socket \
             passed twice"
        ),
        "{passed_twice}"
    );
    let udp = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let wrong_type = start_error("ops-wrong-type", vec![udp], None, None);
    assert!(wrong_type.contains("is not a TCP socket"), "{wrong_type}");
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let not_listening = start_error("ops-not-listening", vec![OwnedFd::from(bound)], None, None);
    assert!(
        not_listening.contains("is not listening"),
        "{not_listening}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_port_lets_two_servers_share_a_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let changes = [
        ("server", "port", port.as_str()),
        ("server", "reuse_port", "true"),
        ("metrics", "export_port", "0"),
        ("executors", "processes", "0"),
    ];
    let first = start("ops-reuse-a", &changes);
    let second = start("ops-reuse-b", &changes);
    assert_eq!(first.addr(), second.addr());
    for _ in 0..64 {
        assert_eq!(on_new_connection(first.addr(), "/").await, Ok(200));
    }
    // The kernel spread the connections over both: each counted some on its own export port.
    for server in [&first, &second] {
        let log = server.wait_for_log("metrics=http://");
        let metrics = log
            .split("metrics=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        let (_, _, text) = get(&metrics).await;
        let served = genro_test_support::series_value(
            &text,
            r#"http_requests_total{method="GET",route="/",status="200"}"#,
        )
        .unwrap_or(0.0);
        assert!(served > 0.0, "one server served nothing:\n{text}");
    }
    // Without it, the second one cannot bind.
    let dir = temp_dir("ops-no-reuse");
    let config = config_with(
        &dir,
        "examples/server.ini",
        &[
            ("server", "port", port.as_str()),
            ("executors", "processes", "0"),
        ],
    );
    let output = Command::new(example())
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

/// What the clients of the upgrade test saw.
#[derive(Debug, Default)]
struct Seen {
    ok: AtomicU64,
    failed: std::sync::Mutex<Vec<String>>,
}

impl Seen {
    fn record(&self, result: Result<u16, String>) {
        match result {
            Ok(200) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(status) => self.failed.lock().unwrap().push(format!("status {status}")),
            Err(e) => self.failed.lock().unwrap().push(e),
        }
    }
}

fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The example with `[server] pid_file` in a directory of its own, once the file names it.
fn start_with_pid_file(name: &str) -> (Server, PathBuf) {
    let pid_file = temp_dir(&format!("{name}-pid")).join("server.pid");
    let server = start(
        name,
        &[
            ("server", "pid_file", &pid_file.display().to_string()),
            ("executors", "processes", "0"),
        ],
    );
    wait_until(Duration::from_secs(5), "the pid file", || {
        pid_in(&pid_file) == Some(server.pid())
    });
    (server, pid_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_upgrades_under_load_lose_no_request_and_leave_no_process() {
    let (mut first, pid_file) = start_with_pid_file("ops-upgrade");
    let addr = first.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut clients = Vec::new();
    // Two clients on a new connection per request, two on kept-alive connections.
    for _ in 0..2 {
        let (stop, seen) = (stop.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                seen.record(on_new_connection(addr, "/").await);
            }
        }));
    }
    for _ in 0..2 {
        let (stop, seen) = (stop.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            let url: http::Uri = format!("http://{addr}/").parse().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let result = match client.get(url.clone()).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.into_body().collect().await.map(|b| b.to_bytes()) {
                            Ok(body) if !body.is_empty() => Ok(status),
                            Ok(_) => Err("empty body".to_owned()),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("kept-alive: {e:?}")),
                };
                seen.record(result);
            }
        }));
    }
    let mut pids = vec![first.pid()];
    for round in 1..=5 {
        let serving = *pids.last().unwrap();
        let before = seen.ok.load(Ordering::Relaxed);
        kill("USR2", serving);
        let next = tokio::task::spawn_blocking({
            let pid_file = pid_file.clone();
            move || {
                wait_until(Duration::from_secs(20), "a new serving pid", || {
                    pid_in(&pid_file).is_some_and(|pid| pid != serving)
                });
                wait_until(Duration::from_secs(20), "the old process's exit", || {
                    !running(serving)
                });
                pid_in(&pid_file).unwrap()
            }
        })
        .await
        .unwrap();
        assert!(!pids.contains(&next), "round {round}: pid {next} again");
        pids.push(next);
        // Requests were served across the hand-over.
        wait_until(Duration::from_secs(5), "requests after the upgrade", || {
            seen.ok.load(Ordering::Relaxed) > before + 20
        });
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failed = seen.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        seen.ok.load(Ordering::Relaxed) + failed.len() as u64
    );
    assert_eq!(pids.len(), 6);
    let last = *pids.last().unwrap();
    let log = first.log();
    assert_eq!(
        log.matches("upgrade: the new process is serving").count(),
        5,
        "{log}"
    );
    // The first process was the test's child: it has exited and is reaped.
    first.wait(Duration::from_secs(5));
    kill("TERM", last);
    wait_until(Duration::from_secs(15), "the last process's exit", || {
        !running(last)
    });
    for pid in pids {
        assert!(!running(pid), "process {pid} is left behind");
    }
    assert!(!pid_file.exists(), "the last process removes its pid file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_fails_to_start_leaves_the_old_process_serving() {
    let (server, pid_file) = start_with_pid_file("ops-upgrade-fails");
    // The new process reads the configuration again: a bad value stops it at start-up.
    let config = server.log_path().parent().unwrap().join("server.ini");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("[server]\n", "[server]\nworkers = lots\n"),
    )
    .unwrap();
    server.signal("USR2");
    server.wait_for_log("exited before it was ready");
    server.wait_for_log("this process keeps serving");
    assert_eq!(pid_in(&pid_file), Some(server.pid()));
    let (status, _, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    // The failed process was reaped, and the next upgrade works.
    std::fs::write(&config, good).unwrap();
    server.signal("USR2");
    server.wait_for_log("upgrade: the new process is serving");
    wait_until(Duration::from_secs(10), "the new pid", || {
        pid_in(&pid_file).is_some_and(|pid| pid != server.pid())
    });
    let next = pid_in(&pid_file).unwrap();
    let (status, _, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    kill("TERM", next);
    wait_until(Duration::from_secs(15), "the new process's exit", || {
        !running(next)
    });
}

/// A process that cannot write `[server] pid_file` does not start: at an upgrade the old process
/// serves on with its own pid in the file, so `kill $(cat pid_file)` never names an exited one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_cannot_write_the_pid_file_is_never_ready() {
    let (mut server, pid_file) = start_with_pid_file("ops-pid-unwritable-server");
    // The file is written through `<pid_file>.partial`: a directory there makes the write fail,
    // for root too (a read-only or full disk does the same).
    let dir = pid_file.parent().unwrap();
    let pid_value = pid_file.display().to_string();
    let blocker = dir.join("server.pid.partial");
    std::fs::create_dir(&blocker).unwrap();
    server.signal("USR2");
    server.wait_for_stderr("server.pid_file: cannot write");
    server.wait_for_log("exited before it was ready");
    server.wait_for_log("this process keeps serving");
    assert_eq!(pid_in(&pid_file), Some(server.pid()));
    assert!(running(server.pid()));
    let (status, _, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    // A first start fails the same way, with the reason.
    let config = config_with(
        dir,
        "examples/server.ini",
        &[
            ("server", "port", "0"),
            ("server", "pid_file", &pid_value),
            ("executors", "processes", "0"),
        ],
    );
    let refused = Command::new(example())
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "it started: {said}");
    assert!(said.contains("server.pid_file: cannot write"), "{said}");
    assert_eq!(pid_in(&pid_file), Some(server.pid()));
    // Writable again: the old process stops as usual and removes its file.
    std::fs::remove_dir(&blocker).unwrap();
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(15)).0.success());
    assert!(!pid_file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let dir = temp_dir("ops-notify-socket");
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let socket_value = socket_path.display().to_string();
    let server = common::example::start_from(
        "examples/server.ini",
        "ops-notify",
        &[("executors", "processes", "0")],
        &[
            ("NOTIFY_SOCKET", socket_value.as_str()),
            // Pings every 100 ms.
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let next = || {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).trim_end().to_owned()
    };
    // Messages until one matches `wanted`, skipping watchdog pings.
    let until = |wanted: &str| -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let message = next();
            if message.contains(wanted) {
                before.push(message);
                return before;
            }
            before.push(message);
        }
    };
    let first = next();
    assert!(first.contains("READY=1"), "{first}");
    // Pings at the interval: about ten in a second.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if next() == "WATCHDOG=1" {
            pings += 1;
        }
    }
    assert!((5..=15).contains(&pings), "{pings} pings in a second");
    server.signal("HUP");
    let reloading = until("RELOADING=1");
    assert!(
        reloading.last().unwrap().contains("MONOTONIC_USEC="),
        "{reloading:?}"
    );
    let ready = until("READY=1");
    assert!(
        ready
            .iter()
            .all(|m| m == "WATCHDOG=1" || m.contains("READY=1")),
        "{ready:?}"
    );
    // The log has its own writer thread: systemd may hear READY=1 before the line is written.
    server.wait_for_log("configuration reloaded");
    server.signal("TERM");
    until("STOPPING=1");
}
