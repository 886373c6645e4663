//! The request path: what every request passes on its way to the application and back, one
//! file per step. From the outside in:
//!
//! 1. `adapter`: the service hyper calls for each request of a connection. The request body
//!    gets its read timeout (`body`), the request a span with its ids, and the connection's
//!    `activity` counts it until its response body ends;
//! 2. `edge`: tower-http's CORS and compression around the whole application (when
//!    configured), and the body limit on the request body;
//! 3. `builtins`: the metrics and health endpoints, answered before the application sees the
//!    request;
//! 4. the genro stack ([`GenroLayer`](genro_stack::GenroLayer)): the envelope, the registry,
//!    the metrics and the error layer, inside an axum router's routing (`app`);
//! 5. `limits`: inside the error layer, the body limit by `Content-Length` (413), the
//!    concurrency limit (503), the request timeout (504) and cancellation (503), each rendered
//!    with an error id;
//! 6. the application.
//!
//! [`app`] is the public face: what the server serves ([`IntoApplication`](app::IntoApplication))
//! and the types a served application is made of.

pub(crate) mod activity;
pub(crate) mod adapter;
pub mod app;
mod body;
pub(crate) mod builtins;
pub(crate) mod edge;
mod limits;
