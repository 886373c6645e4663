//! The console's web page in a real headless Chromium: log in (the page answers the challenge
//! with WebCrypto), see two requests in flight and one held error by id, press release, and see
//! the client get its response. Chromium is driven over the DevTools protocol, with a few
//! JSON messages on a WebSocket: `Target.createTarget`, `Runtime.evaluate` and
//! `Page.captureScreenshot` are all it needs.
#![allow(clippy::too_many_lines)] // a test reads as one scenario

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{fetch, fixture, SECRET};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    session: Option<String>,
    _profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn launch() -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = genro_test_support::process::temp_dir("chromium-profile");
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{binary} is needed for this test (Debian: chromium; scripts/test installs it): {e}")
            });
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let url = tokio::task::spawn_blocking(move || {
            for line in stderr.lines() {
                let line = line.unwrap();
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools address");
        })
        .await
        .unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        Self {
            child,
            socket,
            next_id: 0,
            session: None,
            _profile: profile,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = self.socket.next().await else {
                panic!("the DevTools connection closed");
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    async fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": url})).await;
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    async fn until(&mut self, expression: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = self.eval(expression).await;
            if value != Value::Null && value != json!(false) {
                return value;
            }
            let status = self
                .eval("document.getElementById('status')?.textContent")
                .await;
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_logs_in_shows_requests_and_held_errors_and_releases_one() {
    let f = fixture(|_| {}, Duration::from_secs(30), 4).await;
    let app = f.app;
    let slow = [
        tokio::spawn(async move { fetch(app, "/slow", "").await }),
        tokio::spawn(async move { fetch(app, "/slow", "").await }),
    ];
    let panicking = tokio::spawn(async move { fetch(app, "/panic", "").await });
    while f.registry.len() < 3 || f.holds.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids: Vec<(String, String)> = f
        .registry
        .snapshot()
        .iter()
        .map(|e| (e.short_id().to_string(), e.path().to_owned()))
        .collect();
    ids.sort();
    let held = ids.iter().find(|(_, p)| p == "/panic").unwrap().0.clone();

    let mut browser = Browser::launch().await;
    browser.open(&format!("http://{}/", f.addr)).await;
    browser
        .until(
            "document.readyState === 'complete' && !!document.getElementById('login')",
            "the page",
        )
        .await;
    browser
        .eval(&format!(
            "document.getElementById('secret').value = {SECRET:?}; \
             document.getElementById('login').requestSubmit(); true"
        ))
        .await;
    let listed = browser
        .until(
            &format!(
                "(() => {{ const rows = [...document.querySelectorAll('#requests tbody tr')].map(r => r.dataset.id); \
                 const held = [...document.querySelectorAll('#held tbody tr')].map(r => r.dataset.id); \
                 return rows.length === 3 && held.includes({held:?}) ? {{rows, held}} : null; }})()"
            ),
            "two requests in flight and one held error",
        )
        .await;
    for (id, _) in &ids {
        assert!(
            listed["rows"].as_array().unwrap().contains(&json!(id)),
            "{listed}"
        );
    }
    let form = browser
        .eval("getComputedStyle(document.getElementById('login')).display")
        .await;
    assert_eq!(form, json!("none"), "the login form is gone once logged in");
    // The secret is nowhere in the page once it has logged in.
    let html = browser
        .eval("document.documentElement.outerHTML + document.getElementById('secret').value")
        .await;
    assert!(!html.as_str().unwrap().contains(SECRET));
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("debug-console.png");
    browser.screenshot(&artifact).await;
    eprintln!("screenshot of the web view: {}", artifact.display());
    assert!(std::fs::metadata(&artifact).unwrap().len() > 10_000);

    // The trace button asks what a request's task waits on. In this build (no task dumps; the
    // root tests/taskdump.rs checks a real trace) the answer says how to turn them on.
    let slow_id = ids.iter().find(|(_, p)| p == "/slow").unwrap().0.clone();
    browser
        .eval(&format!(
            "document.querySelector('button[data-trace={slow_id:?}]').click(); true"
        ))
        .await;
    let detail = browser
        .until(
            "(() => { const t = document.getElementById('detail').textContent;              return t.includes('waiting on:') || t.includes('waiting on (') ? t : null; })()",
            "the trace in the detail panel",
        )
        .await;
    let detail = detail.as_str().unwrap();
    assert!(detail.contains(&format!("error id {slow_id}")), "{detail}");
    if !genro_envelope::taskdump::AVAILABLE {
        assert!(
            detail.contains("waiting on: unavailable: task dumps are not"),
            "{detail}"
        );
    }

    browser
        .eval(&format!(
            "document.querySelector('button[data-release={held:?}]').click(); true"
        ))
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), panicking)
        .await
        .expect("released by the page's button")
        .unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.header("x-error-id").as_deref(), Some(held.as_str()));
    browser
        .until(
            &format!("document.getElementById('status').textContent.includes('released {held}')"),
            "the release message",
        )
        .await;
    for request in slow {
        request.abort();
    }
}
