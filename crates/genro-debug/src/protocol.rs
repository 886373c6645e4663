//! The console's protocol: JSON text messages over a WebSocket, each an object with a `type`.
//!
//! The server speaks first, with a [`ServerMessage::Challenge`]; the client answers with
//! [`ClientMessage::Login`]; after [`ServerMessage::Welcome`], each command gets exactly one
//! reply, in order. A refusal ([`ServerMessage::Refused`]) is followed by the close of the
//! connection. See the crate documentation for an example exchange.

use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::auth::Secret;

/// The protocol version, in the challenge and in the answer's signed context.
pub const VERSION: u32 = 1;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// The answer to the challenge: `HMAC-SHA256(secret, nonce ‖ context)` in hex.
    Login {
        /// The answer.
        answer: String,
    },
    /// The in-flight requests.
    Ls,
    /// One in-flight request in full.
    Show {
        /// Its short, internal or external id.
        id: String,
        /// Also what it is waiting on ([`RequestDetail::waiting_on`]): this traces its future,
        /// within the server's limits.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        trace: bool,
    },
    /// Cancels an in-flight request: it ends with 503 and an error id.
    Cancel {
        /// Its id.
        id: String,
    },
    /// The requests held on error.
    Held,
    /// One held request in full: its error, `source()` chain and backtrace.
    Attach {
        /// Its id.
        id: String,
    },
    /// Releases a held request with its own error response.
    Continue {
        /// Its id.
        id: String,
    },
    /// Releases a held request with a status of the debugger's choosing.
    Release {
        /// Its id.
        id: String,
        /// The status the client gets.
        status: u16,
    },
    /// Sets the server's log filter.
    LogLevel {
        /// A filter such as `info` or `info,my_app=debug`.
        filter: String,
    },
}

impl ClientMessage {
    /// Reads one message as the server does: a JSON object with a known `type` and the fields
    /// that type needs. The debug server's fuzz target drives this function.
    ///
    /// # Errors
    ///
    /// Text that is not one of the messages above.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The first message: sign `nonce ‖ context` with the secret.
    Challenge {
        /// The protocol version.
        version: u32,
        /// A fresh random nonce, in hex.
        nonce: String,
        /// What the answer signs besides the nonce.
        context: String,
    },
    /// Logged in.
    Welcome {
        /// The protocol version.
        version: u32,
        /// Whether failing requests are held for a debugger.
        holding: bool,
    },
    /// The session is refused and will be closed.
    Refused {
        /// Why.
        reason: Refusal,
        /// A sentence for a person.
        message: String,
    },
    /// The in-flight requests, oldest first.
    Requests {
        /// The requests.
        requests: Vec<RequestSummary>,
    },
    /// One request in full.
    Request {
        /// The request.
        request: RequestDetail,
    },
    /// The held requests, oldest first.
    HeldList {
        /// The held requests.
        held: Vec<HeldSummary>,
    },
    /// One held request in full.
    Attached {
        /// The held request.
        held: HeldDetail,
    },
    /// A command did what it said.
    Done {
        /// What happened.
        message: String,
    },
    /// A command could not be done; the session goes on.
    Error {
        /// Why.
        message: String,
    },
}

/// Why a session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The answer to the challenge was wrong.
    WrongSecret,
    /// This address failed too often and is locked out for a while.
    RateLimited,
    /// The console has its most sessions open.
    TooManySessions,
    /// No login came in time.
    LoginTimeout,
    /// The session was idle too long.
    IdleTimeout,
    /// A message was larger than the limit, or not a message of this protocol.
    BadMessage,
    /// The server is shutting down.
    ShuttingDown,
}

impl Refusal {
    /// A short name, for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WrongSecret => "wrong_secret",
            Self::RateLimited => "rate_limited",
            Self::TooManySessions => "too_many_sessions",
            Self::LoginTimeout => "login_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::BadMessage => "bad_message",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

/// One in-flight request, in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The short id (the error id a client sees).
    pub id: String,
    /// The method.
    pub method: String,
    /// The route template, or the path when no route matched yet.
    pub target: String,
    /// Seconds since the request arrived.
    pub age_s: f64,
    /// `handling`, `streaming`, `upgraded`, `held` or `finished`.
    pub phase: String,
    /// How many annotations it has.
    pub annotations: usize,
}

/// One in-flight request in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDetail {
    /// The short id.
    pub id: String,
    /// The internal id (UUIDv7).
    pub internal_id: String,
    /// The client's own id, when it sent a valid one.
    pub external_id: Option<String>,
    /// The W3C trace the request is part of (32 hex digits), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The method.
    pub method: String,
    /// The path (the query string is left out: it is where tokens end up).
    pub path: String,
    /// The route template, when known.
    pub route: Option<String>,
    /// The HTTP version.
    pub version: String,
    /// The client's address.
    pub client: Option<String>,
    /// Seconds since the request arrived.
    pub age_s: f64,
    /// Where it is in its life.
    pub phase: String,
    /// What handlers annotated, in order.
    pub annotations: Vec<(String, String)>,
    /// The request headers, secrets masked; `None` when the server does not keep them.
    pub headers: Option<Vec<(String, String)>>,
    /// What its task is waiting on, when `show` asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<WaitingOn>,
}

/// What an in-flight request is waiting on: the async stack of its future, from tokio's tracing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingOn {
    /// The frames, one per line, innermost (the tokio future it is parked on) first; `None`
    /// when there is no trace.
    pub trace: Option<String>,
    /// Why there is no trace; in a build without tracing, how to turn it on.
    pub unavailable: Option<String>,
    /// Seconds since the trace was taken (traces are rate-limited: a recent one is reused).
    pub age_s: Option<f64>,
}

/// One held request, in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldSummary {
    /// The request.
    pub request: RequestSummary,
    /// The status it will get.
    pub status: u16,
    /// `error` or `panic`.
    pub kind: String,
    /// The error's type label.
    pub error_type: String,
    /// The first line of the error.
    pub message: String,
    /// Seconds it has been held.
    pub held_s: f64,
    /// Seconds until it is released anyway.
    pub release_in_s: f64,
}

/// One held request in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldDetail {
    /// The request.
    pub request: RequestDetail,
    /// The status it will get.
    pub status: u16,
    /// `error` or `panic`.
    pub kind: String,
    /// The error's type label.
    pub error_type: String,
    /// The error and its `source()` chain, outermost first (a panic: its message).
    pub chain: Vec<String>,
    /// The backtrace, when one was captured.
    pub backtrace: Option<String>,
    /// Seconds it has been held.
    pub held_s: f64,
    /// Seconds until it is released anyway.
    pub release_in_s: f64,
}

/// What the answer to a challenge signs besides the nonce: the protocol and the `Host` the
/// client connected to.
#[must_use]
pub fn context(host: &str) -> String {
    format!("genro-debug/{VERSION} {host}")
}

/// The answer to a challenge: `HMAC-SHA256(secret, nonce ‖ context)`, in lowercase hex.
#[must_use]
pub fn answer(secret: &Secret, nonce: &str, context: &str) -> String {
    let mut mac = secret.mac();
    mac.update(nonce.as_bytes());
    mac.update(context.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{nonce, verify};

    #[test]
    fn only_the_right_secret_answers_whatever_the_wrong_ones_length() {
        let secret = Secret::new("correct horse battery staple");
        let nonce = nonce();
        let context = context("127.0.0.1:8001");
        let right = answer(&secret, &nonce, &context);
        assert!(verify(&secret, &nonce, &context, &right));
        for wrong in [
            "correct horse",
            "correct horse battery stapl!",
            "correct horse battery staple, and more",
        ] {
            let a = answer(&Secret::new(wrong), &nonce, &context);
            assert!(!verify(&secret, &nonce, &context, &a), "{wrong}");
        }
        // Another nonce, another host, a cut or padded answer, junk: all wrong.
        assert!(!verify(&secret, &crate::auth::nonce(), &context, &right));
        assert!(!verify(&secret, &nonce, &super::context("evil:80"), &right));
        assert!(!verify(&secret, &nonce, &context, &right[..62]));
        assert!(!verify(&secret, &nonce, &context, &format!("{right}00")));
        assert!(!verify(&secret, &nonce, &context, "zz"));
        assert!(!verify(&secret, &nonce, &context, ""));
        assert_ne!(nonce, crate::auth::nonce(), "nonces are fresh");
        assert!(!format!("{secret:?}").contains("horse"));
    }
}
