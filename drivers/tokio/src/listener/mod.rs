//! The listener's hyper glue: [`FillService`] (the shared request pipeline as a hyper and tower
//! service, for applications that serve it from their own server, e.g. axum) and the accept
//! loop behind `FillListener::serve` (HTTP/1.1, h2c by prior knowledge and, with TLS, h2 or
//! HTTP/1.1 by ALPN, all on one port).

mod batch;
mod body;
mod serve;
mod service;

pub use body::FillResponseBody;
pub(crate) use serve::accept_loop;
pub use service::{FillService, ResponseFuture};
