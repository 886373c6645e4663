//! WebhookNotifier against real local HTTP and HTTPS servers: payload, retry, timeout, queue
//! overflow, de-duplication, extreme settings, bounded reads, and no leaked tasks.

use genro_test_support::eventually;
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use genro_notify::{
    Notification, Notifier, Notifiers, Outcome, RequestInfo, Severity, WebhookNotifier,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: serde_json::Value,
}

type Answer = Arc<dyn Fn(usize) -> Option<StatusCode> + Send + Sync>;

/// A real HTTP/1.1 server. `answer(n)` gives the status of the n-th request (from 0), or `None`
/// to never answer it.
async fn server(
    answer: Answer,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (answer, seen, count, tls) =
                (answer.clone(), seen.clone(), count.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (answer, seen, count) = (answer.clone(), seen.clone(), count.clone());
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().push(Received {
                            headers,
                            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                        });
                        match answer(n) {
                            Some(status) => {
                                let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
                                *res.status_mut() = status;
                                Ok::<_, Infallible>(res)
                            }
                            None => std::future::pending().await,
                        }
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    (addr, received)
}

fn always(status: StatusCode) -> Answer {
    Arc::new(move |_| Some(status))
}

fn critical(message: impl Into<String>) -> Notification {
    Notification::new("critical_error", Severity::Critical, message)
}

fn info() -> RequestInfo {
    let envelope = genro_envelope::RequestEnvelope::new(
        http::Method::PUT,
        http::Uri::from_static("/orders/9?token=s"),
    );
    envelope.annotate("order", "9");
    RequestInfo::from_envelope(&envelope)
}

#[tokio::test]
async fn posts_the_notification_as_json_with_configured_headers() {
    let (addr, received) = server(always(StatusCode::OK), None).await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/hooks/secret-path-token"))
        .unwrap()
        .header(http::header::AUTHORIZATION, "Bearer t0k3n".parse().unwrap())
        .build()
        .unwrap();
    let info = info();
    notifier
        .notify(Notification::stuck_request(info.clone()))
        .await;
    eventually("one delivery", || {
        notifier.outcome_count(Outcome::Sent) == 1
    })
    .await;

    let got = received.lock().unwrap()[0].clone();
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["authorization"], "Bearer t0k3n");
    let body = got.body;
    assert_eq!(body["kind"], "stuck_request");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["request"]["internal_id"], info.internal_id.as_str());
    assert_eq!(body["request"]["method"], "PUT");
    assert_eq!(body["request"]["path"], "/orders/9", "no query string");
    assert_eq!(body["request"]["annotations"]["order"], "9");
    assert!(body["timestamp_ms"].as_u64().unwrap() > 1_700_000_000_000);
    // The secret path never shows in Debug output.
    assert!(!format!("{notifier:?}").contains("secret-path-token"));
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let answer: Answer = Arc::new(|n| {
        Some(if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        })
    });
    let (addr, received) = server(answer, None).await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .backoff(Duration::from_millis(20))
        .build()
        .unwrap();
    notifier.notify(critical("boom")).await;
    eventually("delivered on the third attempt", || {
        notifier.outcome_count(Outcome::Sent) == 1
    })
    .await;
    assert_eq!(notifier.outcome_count(Outcome::Retried), 2);
    assert_eq!(received.lock().unwrap().len(), 3);

    // A 4xx other than 408/429 is final: no retry.
    let (addr, received) = server(always(StatusCode::BAD_REQUEST), None).await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .build()
        .unwrap();
    notifier.notify(critical("x")).await;
    eventually("refused", || notifier.outcome_count(Outcome::Failed) == 1).await;
    assert_eq!(received.lock().unwrap().len(), 1);
    assert_eq!(notifier.outcome_count(Outcome::Retried), 0);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_fails() {
    let (addr, received) = server(Arc::new(|_| None), None).await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .timeout(Duration::from_millis(150))
        .max_retries(1)
        .backoff(Duration::from_millis(10))
        .build()
        .unwrap();
    notifier.notify(critical("slow")).await;
    eventually("given up after two attempts", || {
        notifier.outcome_count(Outcome::Failed) == 1
    })
    .await;
    assert_eq!(received.lock().unwrap().len(), 2);
    assert_eq!(notifier.outcome_count(Outcome::Sent), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_blocking_and_nothing_leaks() {
    let (addr, _received) = server(Arc::new(|_| None), None).await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .queue_capacity(4)
        .timeout(Duration::from_millis(300))
        .max_retries(0)
        .dedup_window(Duration::ZERO)
        .build()
        .unwrap();
    for i in 0..100 {
        // Each call returns at once even though the endpoint is hung.
        tokio::time::timeout(
            Duration::from_millis(50),
            notifier.notify(critical(format!("n{i}"))),
        )
        .await
        .expect("notify never blocks");
    }
    let dropped = notifier.outcome_count(Outcome::Dropped);
    assert!(
        (95..=96).contains(&dropped),
        "dropped {dropped}: queue of 4 plus one in delivery"
    );

    // Dropping the notifier ends its delivery task once the queue drains.
    drop(notifier);
    let handle = tokio::runtime::Handle::current();
    eventually("the delivery task ended", || {
        handle.metrics().num_alive_tasks() <= tasks_before + 1
    })
    .await;
}

#[tokio::test]
async fn repeats_within_the_window_are_sent_once() {
    let (addr, received) = server(always(StatusCode::OK), None).await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .build()
        .unwrap();
    let n = critical("same").with_dedup_key("k1");
    notifier.notify(n.clone()).await;
    notifier.notify(n.clone()).await;
    notifier.notify(n.with_dedup_key("k2")).await;
    eventually("two deliveries", || {
        notifier.outcome_count(Outcome::Sent) == 2
    })
    .await;
    assert_eq!(notifier.outcome_count(Outcome::Deduplicated), 1);
    assert_eq!(received.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn https_with_a_private_root_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (addr, received) = server(always(StatusCode::OK), Some(acceptor)).await;
    let url = format!("https://localhost:{}/hook", addr.port());

    // Without the private root the certificate is refused ...
    let untrusting = WebhookNotifier::builder(&url)
        .unwrap()
        .max_retries(0)
        .build()
        .unwrap();
    untrusting.notify(critical("a")).await;
    eventually("refused by TLS", || {
        untrusting.outcome_count(Outcome::Failed) == 1
    })
    .await;
    assert!(received.lock().unwrap().is_empty());

    // ... and with it, delivered over TLS.
    let trusting = WebhookNotifier::builder(&url)
        .unwrap()
        .root_certificate(cert_der.to_vec())
        .build()
        .unwrap();
    trusting.notify(critical("b")).await;
    eventually("delivered over https", || {
        trusting.outcome_count(Outcome::Sent) == 1
    })
    .await;
    assert_eq!(received.lock().unwrap()[0].body["message"], "b");
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_message() {
    let err = WebhookNotifier::builder("ftp://example.com/x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "webhook url: the scheme must be http or https"
    );
    assert!(WebhookNotifier::builder("not a url").is_err());
    let err = WebhookNotifier::builder("http://example.com/")
        .unwrap()
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "webhook: queue capacity must be at least 1"
    );
}

/// A response body of 64 KiB chunks that never ends.
struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &[b'x'; 64 * 1024],
        )))))
    }
}

/// A real HTTP/1.1 server that answers 200 with a body that never ends, and counts requests.
async fn endless_body_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, Infallible>(Response::new(Endless)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let (addr, requests) = endless_body_server().await;
    let notifier = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .timeout(Duration::from_secs(3))
        .max_retries(2)
        .backoff(Duration::from_millis(10))
        .build()
        .unwrap();
    notifier.notify(critical("big answer")).await;
    // Reading the whole answer would never end: the attempt would time out and be retried.
    eventually("sent on the first attempt", || {
        notifier.outcome_count(Outcome::Sent) == 1
    })
    .await;
    assert_eq!(notifier.outcome_count(Outcome::Retried), 0);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_backoff_is_capped_and_never_silences_another_webhook() {
    // A webhook pointed at a closed port, with the largest backoff there is ...
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let broken = WebhookNotifier::builder(&format!("http://{closed_addr}/"))
        .unwrap()
        .backoff(Duration::MAX)
        .max_retries(2)
        .dedup_window(Duration::ZERO)
        .build()
        .unwrap();
    // ... and a working one, both told the same things through one set.
    let (addr, received) = server(always(StatusCode::OK), None).await;
    let working = WebhookNotifier::builder(&format!("http://{addr}/"))
        .unwrap()
        .dedup_window(Duration::ZERO)
        .build()
        .unwrap();
    let set = Notifiers::new()
        .with("broken", broken.clone())
        .with("working", working.clone());
    for i in 0..3 {
        set.send(critical(format!("stuck {i}")));
    }
    eventually("the working webhook got all three", || {
        received.lock().unwrap().len() == 3
    })
    .await;
    // The broken one failed its first attempt and waits (capped at 30 s) without panicking.
    eventually("the broken webhook retried", || {
        broken.outcome_count(Outcome::Retried) >= 1
    })
    .await;
    assert_eq!(broken.outcome_count(Outcome::Sent), 0);
}
