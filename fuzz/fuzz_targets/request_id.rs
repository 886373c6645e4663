//! The request-id validator, alone and in the layer: an id is echoed exactly when it matches
//! `^[A-Za-z0-9._:-]{1,128}$`; anything else gets the server's own UUIDv7, and the response's
//! id header is always a valid id.
#![no_main]

use std::{convert::Infallible, sync::OnceLock};

use genro_envelope::{is_valid_external_id, EnvelopeLayer, MAX_EXTERNAL_ID_LEN};
use http::{HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use tower::{service_fn, Layer, ServiceExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// The accepted language, written out independently of the crate.
fn spec(value: &[u8]) -> bool {
    (1..=MAX_EXTERNAL_ID_LEN).contains(&value.len())
        && value.iter().all(
            |b| matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b':' | b'-'),
        )
}

fuzz_target!(|data: &[u8]| {
    let valid = is_valid_external_id(data);
    assert_eq!(valid, spec(data));

    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let svc = EnvelopeLayer::new().layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut req = Request::new(());
    req.headers_mut().insert("x-request-id", value);
    let res = runtime().block_on(svc.oneshot(req)).expect("infallible");
    let echoed = res.headers()["x-request-id"].as_bytes();
    if valid {
        assert_eq!(echoed, data);
    } else {
        assert_ne!(echoed, data);
        assert!(is_valid_external_id(echoed));
        assert_eq!(echoed.len(), 36, "a UUID");
    }
});
