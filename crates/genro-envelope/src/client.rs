//! The client's address: [`ClientAddr`] in request extensions, or the served client a server
//! names for the poll of its requests' futures.

use std::net::SocketAddr;

use http::Extensions;

/// The socket address of the client, put in request extensions by the server that accepted the
/// connection.
///
/// [`EnvelopeLayer`](crate::EnvelopeLayer) reads it into [`RequestEnvelope::client`](crate::RequestEnvelope::client). (A server
/// that polls its requests' futures itself can name the client without an extension per
/// request: [`plumbing::serving_client`](crate::plumbing::serving_client).) With the
/// `axum` feature, axum's `ConnectInfo<SocketAddr>` is read as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

pub(crate) fn client_from(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(ClientAddr(addr)) = extensions.get::<ClientAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    SERVED_CLIENT.try_with(|client| *client).ok()
}

tokio::task_local! {
    /// The client whose request is being polled, when its server says so
    /// ([`crate::plumbing::serving_client`]).
    static SERVED_CLIENT: SocketAddr;
}

/// Runs `poll` with `client` as the served client: tokio's task-local scope, set for the
/// poll and restored afterwards (a panic included).
pub(crate) fn serving_client<R>(client: SocketAddr, poll: impl FnOnce() -> R) -> R {
    SERVED_CLIENT.sync_scope(client, poll)
}
