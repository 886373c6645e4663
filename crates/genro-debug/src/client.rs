//! [`Client`]: a console session from Rust, used by the `genro-debug` binary and by tests.

use std::fmt;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{self, Message},
    WebSocketStream,
};

use crate::{
    auth::Secret,
    protocol::{self, ClientMessage, Refusal, ServerMessage},
};

/// Why a session could not be opened or went on no longer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answers at the address.
    Unreachable {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server closed the connection before answering the handshake: the address of this
    /// machine is not in its `allowed_ips`, or it has too many connections.
    ClosedBeforeHandshake {
        /// The address.
        addr: String,
    },
    /// The server answered the handshake with an HTTP error (403: an unexpected `Host` or a
    /// foreign `Origin`).
    Handshake {
        /// The status.
        status: u16,
        /// The body's text.
        body: String,
    },
    /// The server refused the session.
    Refused {
        /// Why.
        reason: Refusal,
        /// The server's sentence.
        message: String,
    },
    /// The server closed the session.
    Closed,
    /// The server said something this client does not understand.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { addr, source } => {
                write!(f, "cannot reach the debug console at {addr}: {source}")
            }
            Self::ClosedBeforeHandshake { addr } => write!(
                f,
                "{addr} closed the connection before answering: this machine's address is not \
                 in its debug.allowed_ips (or it has too many connections)"
            ),
            Self::Handshake { status, body } => {
                write!(
                    f,
                    "the console refused the connection ({status}): {}",
                    body.trim()
                )
            }
            Self::Refused { reason, message } => match reason {
                Refusal::WrongSecret => f.write_str("login refused: wrong secret"),
                Refusal::RateLimited => write!(f, "login refused, rate-limited: {message}"),
                _ => write!(f, "refused: {message}"),
            },
            Self::Closed => f.write_str("the server closed the session"),
            Self::Protocol(what) => write!(f, "unexpected answer from the console: {what}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An open, logged-in console session.
///
/// ```no_run
/// # async fn example() -> Result<(), genro_debug::ClientError> {
/// use genro_debug::{protocol::{ClientMessage, ServerMessage}, Client, Secret};
///
/// let mut console = Client::connect("127.0.0.1:8001", &Secret::new("a secret of 16+ bytes")).await?;
/// if let ServerMessage::Requests { requests } = console.call(&ClientMessage::Ls).await? {
///     println!("{} in flight", requests.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    holding: bool,
}

impl Client {
    /// Connects to the console at `addr` (`HOST:PORT`) and logs in with `secret`.
    ///
    /// # Errors
    ///
    /// Unreachable, refused by the allowlist or the handshake checks, a wrong secret, a
    /// rate-limited address, too many sessions.
    pub async fn connect(addr: &str, secret: &Secret) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Unreachable {
                addr: addr.to_owned(),
                source,
            })?;
        Self::over(stream, addr, secret).await
    }

    /// Logs in over a connection the caller made (to choose the local address, say), to the
    /// console it reaches as `addr` (`HOST:PORT`, sent as the `Host`).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), but for reaching the address.
    pub async fn over(stream: TcpStream, addr: &str, secret: &Secret) -> Result<Self, ClientError> {
        let _ = stream.set_nodelay(true);
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => ClientError::Handshake {
                    status: response.status().as_u16(),
                    body: response
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                },
                _ => ClientError::ClosedBeforeHandshake {
                    addr: addr.to_owned(),
                },
            })?;
        let (nonce, context) = match read(&mut ws).await? {
            ServerMessage::Challenge { nonce, context, .. } => (nonce, context),
            other => return Err(unexpected(&other)),
        };
        // Sign only a challenge for the console this client meant to reach.
        if context != protocol::context(addr) {
            return Err(ClientError::Protocol(format!(
                "the challenge is for {context:?}, not for {addr}"
            )));
        }
        let answer = protocol::answer(secret, &nonce, &context);
        write(&mut ws, &ClientMessage::Login { answer }).await?;
        match read(&mut ws).await? {
            ServerMessage::Welcome { holding, .. } => Ok(Self { ws, holding }),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether the server holds failing requests (`remote_pdb`).
    #[must_use]
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Sends one command and returns its reply.
    ///
    /// # Errors
    ///
    /// The session was closed or refused (idle, too large a message, the server stopping).
    pub async fn call(&mut self, command: &ClientMessage) -> Result<ServerMessage, ClientError> {
        write(&mut self.ws, command).await?;
        match read(&mut self.ws).await? {
            ServerMessage::Refused { reason, message } => {
                Err(ClientError::Refused { reason, message })
            }
            reply => Ok(reply),
        }
    }

    /// Closes the session.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn unexpected(message: &ServerMessage) -> ClientError {
    match message {
        ServerMessage::Refused { reason, message } => ClientError::Refused {
            reason: *reason,
            message: message.clone(),
        },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}

async fn write(
    ws: &mut WebSocketStream<TcpStream>,
    message: &ClientMessage,
) -> Result<(), ClientError> {
    let text = serde_json::to_string(message).expect("protocol messages serialise");
    ws.send(Message::text(text))
        .await
        .map_err(|_| ClientError::Closed)
}

async fn read(ws: &mut WebSocketStream<TcpStream>) -> Result<ServerMessage, ClientError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Binary(_))) => {
                return Err(ClientError::Protocol("a binary message".into()))
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(ClientError::Closed),
        }
    }
}
