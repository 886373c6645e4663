//! The envelope and registry layers under tonic, unchanged: a real tonic server (tonic-health's
//! pre-generated service, no protoc) and a real tonic client over TCP.

mod common;

use std::time::Duration;

use genro_asgi::{EnvelopeLayer, EnvelopeRegistry, Phase, RegistryLayer};
use tonic::{transport::Channel, Request};
use tonic_health::{
    pb::{health_client::HealthClient, HealthCheckRequest},
    ServingStatus,
};

async fn start(registry: &EnvelopeRegistry) -> HealthClient<Channel> {
    let (_addr, client) = tonic_health_server!(tower::ServiceBuilder::new()
        .layer(EnvelopeLayer::new())
        .layer(RegistryLayer::new(registry.clone())));
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_gets_the_request_id_back_in_metadata() {
    let registry = EnvelopeRegistry::new();
    let mut client = start(&registry).await;

    let mut req = Request::new(HealthCheckRequest {
        service: "genro.Test".into(),
    });
    req.metadata_mut()
        .insert("x-request-id", "grpc-call-0001".parse().unwrap());
    let res = client.check(req).await.unwrap();
    assert_eq!(
        res.metadata().get("x-request-id").unwrap(),
        "grpc-call-0001"
    );
    assert_eq!(res.get_ref().status, ServingStatus::Serving as i32);

    // Without an external id, the server's own UUIDv7 comes back.
    let res = client
        .check(HealthCheckRequest {
            service: "genro.Test".into(),
        })
        .await
        .unwrap();
    let id = res
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(uuid::Uuid::try_parse(id).unwrap().get_version_num(), 7);

    assert!(registry.wait_idle(Duration::from_secs(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_stays_in_flight_until_the_client_drops_it() {
    let registry = EnvelopeRegistry::new();
    let mut client = start(&registry).await;

    let mut stream = client
        .watch(HealthCheckRequest {
            service: "genro.Test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let live = registry.snapshot();
    assert_eq!(live.len(), 1, "the open gRPC stream is in flight");
    assert_eq!(live[0].path(), "/grpc.health.v1.Health/Watch");
    assert_eq!(live[0].phase(), Phase::Streaming);

    drop(stream);
    assert!(
        registry.wait_idle(Duration::from_secs(1)).await,
        "stream cancelled by the client"
    );
}
