//! TLS over real sockets with a certificate generated here: ALPN picks HTTP/2, HTTP/1.1 still
//! works, a silent client is dropped at the handshake timeout, and bad files are start-up errors.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{routing::get, Router};
use bytes::Bytes;
use genro_server::{AsgiServer, Config};
use genro_test_support::server::start_server;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{io::AsyncReadExt, net::TcpStream};

struct Cert {
    dir: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn certificate(name: &str) -> Cert {
    let dir = std::env::temp_dir().join(format!("genro-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    Cert {
        dir,
        der: cert.cert.der().clone(),
    }
}

fn ini(dir: &Path, extra: &str) -> String {
    format!(
        "[ssl]\nenabled = true\ncertfile = {}\nkeyfile = {}\n{extra}",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    )
}

fn client_config(root: &rustls::pki_types::CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

async fn start(
    ini: &str,
) -> (
    u16,
    genro_server::ServerHandle,
    tokio::task::JoinHandle<Result<(), genro_server::Error>>,
) {
    let app = Router::new().route("/", get(|| async { "over tls" }));
    let server = start_server(ini, |s| s, app).await;
    (server.addr.port(), server.handle, server.task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_negotiates_http2_and_http1_still_works() {
    let cert = certificate("alpn");
    let (port, handle, task) = start(&ini(&cert.dir, "")).await;
    let url: http::Uri = format!("https://localhost:{port}/").parse().unwrap();
    for (both, version) in [
        (true, http::Version::HTTP_2),
        (false, http::Version::HTTP_11),
    ] {
        // The connector offers h2 and http/1.1 by ALPN, or http/1.1 alone.
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_config(&cert.der))
            .https_only();
        let connector = if both {
            builder.enable_all_versions().build()
        } else {
            builder.enable_http1().build()
        };
        let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
        let res = client.get(url.clone()).await.unwrap();
        assert_eq!(res.version(), version);
        assert!(res.headers().contains_key("x-request-id"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "over tls");
    }
    // curl, another client, negotiates HTTP/2 too.
    let out = std::process::Command::new("curl")
        .args(["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("curl is needed (Debian: curl; scripts/test installs it)");
    assert!(out.status.success(), "curl: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    handle.shutdown();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_says_hello_is_dropped_at_the_handshake_timeout() {
    let cert = certificate("silent");
    let (port, handle, task) = start(&ini(&cert.dir, "handshake_timeout = 500ms\n")).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_millis(1_500),
        "{after:?}"
    );
    handle.shutdown();
    task.await.unwrap().unwrap();
}

/// A drain does not wait for handshakes: with a client that never sends its ClientHello and
/// nothing in flight, the server stops at once, long before the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_pending_handshakes_at_once() {
    let cert = certificate("drain-handshake");
    let (port, handle, task) = start(&ini(&cert.dir, "handshake_timeout = 10s\n")).await;
    let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn missing_or_mismatched_files_are_clear_start_up_errors() {
    let cert = certificate("bad");
    let missing = Config::from_ini_str(
        &format!(
            "[ssl]\nenabled = true\ncertfile = {}/nope.pem\nkeyfile = {}/key.pem\n",
            cert.dir.display(),
            cert.dir.display()
        ),
        "tls.ini",
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        missing.to_string().starts_with("ssl.certfile: cannot read"),
        "{missing}"
    );

    // A key that belongs to another certificate.
    let other = certificate("other");
    std::fs::copy(other.dir.join("key.pem"), cert.dir.join("key.pem")).unwrap();
    let config = Config::from_ini_str(&ini(&cert.dir, ""), "tls.ini", Vec::new()).unwrap();
    let err = AsgiServer::from_config(config)
        .without_logging()
        .serve(Router::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match the certificate"),
        "{err}"
    );

    std::fs::write(cert.dir.join("key.pem"), "not a key").unwrap();
    let config = Config::from_ini_str(&ini(&cert.dir, ""), "tls.ini", Vec::new()).unwrap();
    let err = AsgiServer::from_config(config)
        .without_logging()
        .serve(Router::new())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("ssl.keyfile:"), "{err}");
}

/// One request on a TLS connection of its own, answered in full.
async fn served_over_tls(port: u16, root: &rustls::pki_types::CertificateDer<'static>) {
    use tokio::io::AsyncWriteExt;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(root)));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("over tls"),
        "{text}"
    );
}

/// A client's hello as rustls writes it.
fn client_hello(root: &rustls::pki_types::CertificateDer<'static>) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config(root)), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_handshakes_caps_the_handshakes_worked_on_and_stalled_hellos_hold_no_slot() {
    use tokio::io::AsyncWriteExt;
    let cert = certificate("handshakes");
    let (port, handle, task) = start(&ini(
        &cert.dir,
        "handshake_timeout = 2s\nmax_handshakes = 2\n",
    ))
    .await;
    let hello = client_hello(&cert.der);
    // Many clients that stall halfway through their hello: they cost the server nothing and
    // hold no handshake slot, so a normal client is served at once (well within the 2 s that
    // they are allowed to stall).
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(&hello[..hello.len() / 2]).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::timeout(Duration::from_secs(1), served_over_tls(port, &cert.der))
        .await
        .expect("served while the half hellos stall");
    // Two clients whose hello arrived, then stall: the server worked on both handshakes, which
    // hold the two slots until their handshake_timeout. A third handshake waits for a slot,
    // and is served once one frees, within its own timeout.
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(&hello).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    served_over_tls(port, &cert.der).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "served at once ({waited:?}): the two handshakes in progress did not hold the slots"
    );
    handle.shutdown();
    task.await.unwrap().unwrap();
}
