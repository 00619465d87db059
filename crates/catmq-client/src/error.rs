//! The client's one error type.

use catmq_protocol::ResponseCode;
use catmq_remoting::RemotingError;

/// Everything a client call can fail with. [`ClientError::is_retryable`] says whether trying
/// again (later, or on another broker) can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, sending or waiting failed.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// A broker or name server answered with an error code.
    #[error("{addr} refused the request: code {code} ({}): {remark}", code_name(*code))]
    Refused {
        addr: String,
        code: i32,
        remark: String,
    },
    /// No broker serves the topic (or none is writable / readable).
    #[error("no route to topic {topic}: {reason}")]
    NoRoute { topic: String, reason: String },
    /// None of the name servers could be reached.
    #[error("no name server reachable (tried {tried})")]
    NoNameServer { tried: String },
    /// The caller asked for something invalid (message too large, bad topic, bad option).
    #[error("{0}")]
    Invalid(String),
    /// A response or stored message could not be decoded.
    #[error("bad data from {addr}: {reason}")]
    Decode { addr: String, reason: String },
    /// The client was shut down.
    #[error("the client is shut down")]
    Shutdown,
    /// A local file (offset store) could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn code_name(code: i32) -> String {
    ResponseCode::from_i32(code).map_or_else(|| "unknown".to_owned(), |c| format!("{c:?}"))
}

/// Response codes after which the same request may succeed later or on another broker.
const RETRYABLE_CODES: &[ResponseCode] = &[
    ResponseCode::SystemError,
    ResponseCode::SystemBusy,
    ResponseCode::FlushDiskTimeout,
    ResponseCode::SlaveNotAvailable,
    ResponseCode::FlushSlaveTimeout,
    ResponseCode::ServiceNotAvailable,
    ResponseCode::NoPermission,
    ResponseCode::TopicNotExist,
    ResponseCode::NoBuyerId,
    ResponseCode::NotInCurrentUnit,
    ResponseCode::FlowControl,
    ResponseCode::GoAway,
];

impl ClientError {
    /// Whether trying again (later, or elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Remoting(e) => e.is_retryable(),
            Self::Refused { code, .. } => {
                ResponseCode::from_i32(*code).is_some_and(|c| RETRYABLE_CODES.contains(&c))
            }
            Self::NoRoute { .. } | Self::NoNameServer { .. } => true,
            Self::Invalid(_) | Self::Decode { .. } | Self::Shutdown | Self::Io { .. } => false,
        }
    }

    /// The response code, when a server refused the request.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn refused(addr: &str, resp: &catmq_protocol::RemotingCommand) -> Self {
        Self::Refused {
            addr: addr.to_owned(),
            code: resp.code,
            remark: resp.remark.clone().unwrap_or_default(),
        }
    }

    pub(crate) fn decode(addr: &str, reason: impl std::fmt::Display) -> Self {
        Self::Decode {
            addr: addr.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_follows_the_code() {
        let busy = ClientError::Refused {
            addr: "a:1".into(),
            code: 2,
            remark: "busy".into(),
        };
        assert!(busy.is_retryable());
        assert!(busy.to_string().contains("SystemBusy"));
        let illegal = ClientError::Refused {
            addr: "a:1".into(),
            code: 13,
            remark: "too big".into(),
        };
        assert!(!illegal.is_retryable());
        assert!(!ClientError::Invalid("x".into()).is_retryable());
        assert_eq!(illegal.response_code(), Some(13));
    }
}
