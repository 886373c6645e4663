//! The envelope layer alone, called in-process around a service that answers at once.

use std::{convert::Infallible, hint::black_box};

use criterion::{criterion_group, criterion_main, Criterion};
use genro_asgi::EnvelopeLayer;
use http::{Request, Response};
use tower::{service_fn, Layer, Service, ServiceExt};

fn layer_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let inner = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut bare = inner;
    let mut wrapped = EnvelopeLayer::new().layer(inner);

    let mut group = c.benchmark_group("envelope");
    group.bench_function("bare_service", |b| {
        b.iter(|| {
            rt.block_on(async {
                let svc = bare.ready().await.expect("ready");
                black_box(svc.call(Request::new(())).await.expect("call"))
            })
        });
    });
    group.bench_function("layer/no_header", |b| {
        b.iter(|| {
            rt.block_on(async {
                let svc = wrapped.ready().await.expect("ready");
                black_box(svc.call(Request::new(())).await.expect("call"))
            })
        });
    });
    group.bench_function("layer/valid_external_id", |b| {
        b.iter(|| {
            let req = Request::builder()
                .header("x-request-id", "upstream-7f3a-41c2")
                .body(())
                .expect("request");
            rt.block_on(async {
                let svc = wrapped.ready().await.expect("ready");
                black_box(svc.call(req).await.expect("call"))
            })
        });
    });
    group.finish();
}

criterion_group!(benches, layer_call);
criterion_main!(benches);
