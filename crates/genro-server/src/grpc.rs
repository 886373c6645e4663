//! gRPC health follows the drain (feature `tonic`): tonic-health's serving status turns to
//! NOT_SERVING the moment the drain begins, as `/health/ready` turns to 503, so that load
//! balancers that probe gRPC health stop sending new calls while in-flight ones finish.

use tonic_health::{server::HealthReporter, ServingStatus};

use crate::state::ServerContext;

/// Marks `services` (and the whole server, the empty service name) NOT_SERVING in `reporter`
/// when `server` begins to drain. Returns at once; the change happens on a task of its own.
///
/// ```no_run
/// # async fn example(server: genro_server::ServerContext) {
/// let (reporter, health_service) = tonic_health::server::health_reporter();
/// genro_server::grpc::health_follows_drain(&server, reporter, ["shop.Orders"]);
/// # let _ = health_service;
/// # }
/// ```
pub fn health_follows_drain<I, S>(server: &ServerContext, reporter: HealthReporter, services: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let server = server.clone();
    let services: Vec<String> = services.into_iter().map(Into::into).collect();
    tokio::spawn(async move {
        server.shutdown_signal().await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in services {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    });
}
