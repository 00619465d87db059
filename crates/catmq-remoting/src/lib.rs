//! Tokio transport for the remoting protocol, shared by the broker, the name server and the
//! client. A [`Connection`] is symmetric: either side may send requests (matched to responses by
//! opaque) and oneways, and requests arriving from the peer go to a [`Handler`].
//!
//! Requests are handed to the handler in arrival order, one at a time, so the order of a
//! connection's sends is the order they are stored in. A handler that must wait (a long poll, a
//! sync flush) returns [`Handled::Later`]; that future runs on its own task and the next request
//! is read at once.

mod connection;
mod error;
mod server;
mod writer;

pub use connection::{Connection, ConnectionOptions, Handled, Handler, Reply};
pub use error::RemotingError;
pub use server::{serve, Server};
