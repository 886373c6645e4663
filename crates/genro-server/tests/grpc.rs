//! tonic routes served by the server: health checks pass through the whole request path, and
//! tonic-health turns NOT_SERVING as soon as the drain begins, while a call in flight finishes.

use std::time::Duration;

use genro_server::{AsgiApplication, AsgiServer, Config};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_turns_not_serving_when_the_drain_begins() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::Serving)
        .await;
    let routes = tonic::service::Routes::new(health);
    let config = Config::from_ini_str(
        "[server]\nport = 0\n[shutdown]\ndrain_timeout = 3s\n",
        "grpc.ini",
        Vec::new(),
    )
    .unwrap();
    let server = AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    genro_server::grpc::health_follows_drain(&server.context(), reporter, ["shop.Orders"]);
    let registry = server.registry().clone();
    let task = tokio::spawn(server.serve(AsgiApplication::from_service(routes)));
    let addr = handle.local_addr().await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let status = client
        .check(check("shop.Orders"))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // A watch stream is a call in flight: it keeps the drain open, and sees the change.
    let mut watch = client
        .watch(check("shop.Orders"))
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    assert!(!registry.is_empty(), "the open stream is tracked");
    handle.shutdown();
    let next = tokio::time::timeout(Duration::from_secs(2), watch.message())
        .await
        .expect("the status changed during the drain")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the drain ends")
        .unwrap()
        .unwrap();
}
