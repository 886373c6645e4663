//! One console session: the challenge, the login, then commands until the client leaves, idles
//! out, or the server stops.

use std::{net::SocketAddr, sync::Arc};

use futures_util::{SinkExt, StreamExt};
use genro_envelope::taskdump::TaskDumper;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    tungstenite::{self, Message},
    WebSocketStream,
};

use crate::{
    auth,
    protocol::{ClientMessage, Refusal, ServerMessage, WaitingOn, VERSION},
    state::{stopped, Outcome, State},
    view,
};

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

enum Next {
    Text(String),
    /// The client closed, or the connection failed.
    Gone,
    /// A message over the size limit, or not text.
    Bad(&'static str),
}

async fn next(ws: &mut Socket) -> Next {
    loop {
        return match ws.next().await {
            Some(Ok(Message::Text(text))) => Next::Text(text.as_str().to_owned()),
            Some(Ok(Message::Binary(_))) => Next::Bad("a binary message"),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Err(tungstenite::Error::Capacity(_))) => {
                Next::Bad("a message over debug.max_message_size")
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => Next::Gone,
        };
    }
}

async fn send(ws: &mut Socket, message: &ServerMessage) -> bool {
    let text = serde_json::to_string(message).expect("protocol messages serialise");
    ws.send(Message::text(text)).await.is_ok()
}

async fn refuse(ws: &mut Socket, reason: Refusal, message: String) {
    let _ = send(ws, &ServerMessage::Refused { reason, message }).await;
    let _ = ws.close(None).await;
}

pub(crate) async fn run(mut ws: Socket, peer: SocketAddr, host: String, state: Arc<State>) {
    let ip = peer.ip();
    let login = |outcome: &'static str| {
        state
            .metrics
            .logins
            .get_or_create(&Outcome { outcome })
            .inc();
    };
    let Some(_slot) = state.enter() else {
        login(Refusal::TooManySessions.as_str());
        tracing::warn!(target: "genro_debug::audit", peer = %peer, max_sessions = state.config.max_sessions, "login refused: too many sessions");
        let message = format!(
            "the console has its most sessions open ({}); try again when one ends",
            state.config.max_sessions
        );
        return refuse(&mut ws, Refusal::TooManySessions, message).await;
    };
    if let Some(left) = state.limiter.locked(ip) {
        login(Refusal::RateLimited.as_str());
        tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: rate-limited");
        let message = format!(
            "too many failed logins from {ip}: refused for {}s more",
            left.as_secs() + 1
        );
        return refuse(&mut ws, Refusal::RateLimited, message).await;
    }
    let nonce = auth::nonce();
    let context = auth::context(&host);
    let challenge = ServerMessage::Challenge {
        version: VERSION,
        nonce: nonce.clone(),
        context: context.clone(),
    };
    if !send(&mut ws, &challenge).await {
        return;
    }
    let answer = match tokio::time::timeout(state.config.login_timeout, next(&mut ws)).await {
        Err(_) => {
            login(Refusal::LoginTimeout.as_str());
            tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: no answer in time");
            let message = "no login within debug.login_timeout".to_owned();
            return refuse(&mut ws, Refusal::LoginTimeout, message).await;
        }
        Ok(Next::Gone) => return,
        Ok(Next::Bad(what)) => {
            login(Refusal::BadMessage.as_str());
            tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: {what}");
            return refuse(&mut ws, Refusal::BadMessage, format!("refused: {what}")).await;
        }
        Ok(Next::Text(text)) => {
            if let Ok(ClientMessage::Login { answer }) = ClientMessage::decode(&text) {
                answer
            } else {
                login(Refusal::BadMessage.as_str());
                tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: not a login message");
                let message = "the first message must be a login".to_owned();
                return refuse(&mut ws, Refusal::BadMessage, message).await;
            }
        }
    };
    if !auth::verify(&state.config.secret, &nonce, &context, &answer) {
        let locked = state.limiter.failed(ip);
        login(Refusal::WrongSecret.as_str());
        tracing::warn!(target: "genro_debug::audit", peer = %peer, locked_out = locked, "login refused: wrong secret");
        let message = "wrong secret".to_owned();
        return refuse(&mut ws, Refusal::WrongSecret, message).await;
    }
    state.limiter.succeeded(ip);
    login("ok");
    tracing::info!(target: "genro_debug::audit", peer = %peer, "login ok");
    let welcome = ServerMessage::Welcome {
        version: VERSION,
        holding: state.holds.is_some(),
    };
    if !send(&mut ws, &welcome).await {
        return;
    }
    let mut stop = state.stop.clone();
    loop {
        let incoming = tokio::select! {
            () = stopped(&mut stop) => {
                let message = "the server is shutting down".to_owned();
                refuse(&mut ws, Refusal::ShuttingDown, message).await;
                break;
            }
            incoming = tokio::time::timeout(state.config.session_timeout, next(&mut ws)) => incoming,
        };
        let text = match incoming {
            Err(_) => {
                tracing::info!(target: "genro_debug::audit", peer = %peer, "session closed: idle");
                let message = "closed after debug.session_timeout without a command".to_owned();
                refuse(&mut ws, Refusal::IdleTimeout, message).await;
                return;
            }
            Ok(Next::Gone) => break,
            Ok(Next::Bad(what)) => {
                tracing::warn!(target: "genro_debug::audit", peer = %peer, "session closed: {what}");
                refuse(&mut ws, Refusal::BadMessage, format!("closed: {what}")).await;
                return;
            }
            Ok(Next::Text(text)) => text,
        };
        let reply = match ClientMessage::decode(&text) {
            Ok(command) => command_reply(&state, peer, command).await,
            Err(e) => ServerMessage::Error {
                message: format!("not a command of protocol {VERSION}: {e}"),
            },
        };
        if !send(&mut ws, &reply).await {
            break;
        }
    }
    tracing::info!(target: "genro_debug::audit", peer = %peer, "session ended");
}

fn error(message: String) -> ServerMessage {
    ServerMessage::Error { message }
}

fn no_request(id: &str) -> ServerMessage {
    error(format!(
        "no request in flight with id {}",
        id.escape_debug()
    ))
}

const NOT_HOLDING: &str = "holding on error is off (debug.remote_pdb = false)";

async fn command_reply(state: &State, peer: SocketAddr, command: ClientMessage) -> ServerMessage {
    let masked = &state.config.masked_headers;
    match command {
        ClientMessage::Login { .. } => error("already logged in".into()),
        ClientMessage::Ls => {
            // Lists are polled (the web view asks every second): audited at DEBUG.
            tracing::debug!(target: "genro_debug::audit", peer = %peer, "command: ls");
            let mut requests = state.registry.snapshot();
            requests.sort_by_key(|e| e.started());
            ServerMessage::Requests {
                requests: requests.iter().map(|e| view::summary(e)).collect(),
            }
        }
        ClientMessage::Show { id, trace } => show(state, peer, &id, trace).await,
        ClientMessage::Cancel { id } => match state.registry.find(&id) {
            Some(envelope) => {
                let short = envelope.short_id();
                tracing::warn!(target: "genro_debug::audit", peer = %peer, error_id = %short, "command: cancel");
                // The flag first: a request that fails from now on is not held (the hold reads
                // it), and one held already is released here with the same 503.
                envelope.cancel();
                let held = state.holds.as_ref().and_then(|holds| {
                    holds.release(&id, Some(http::StatusCode::SERVICE_UNAVAILABLE))
                });
                let message = if held.is_some() {
                    format!("cancelled {short}: it was held on error, and is released with 503")
                } else {
                    format!("cancelled {short}: it ends with 503")
                };
                ServerMessage::Done { message }
            }
            None => no_request(&id),
        },
        ClientMessage::Held => match &state.holds {
            Some(holds) => {
                tracing::debug!(target: "genro_debug::audit", peer = %peer, "command: held");
                ServerMessage::HeldList { held: holds.list() }
            }
            None => error(NOT_HOLDING.into()),
        },
        ClientMessage::Attach { id } => match &state.holds {
            Some(holds) => match holds.detail(&id, masked) {
                Some(held) => {
                    tracing::info!(target: "genro_debug::audit", peer = %peer, error_id = %held.request.id, "command: attach");
                    ServerMessage::Attached { held }
                }
                None => error(format!("no held request with id {}", id.escape_debug())),
            },
            None => error(NOT_HOLDING.into()),
        },
        ClientMessage::Continue { id } => release(state, peer, &id, None),
        ClientMessage::Release { id, status } => match http::StatusCode::from_u16(status) {
            Ok(status) if status.as_u16() >= 200 => release(state, peer, &id, Some(status)),
            _ => error(format!("{status} is not a final HTTP status (200 to 599)")),
        },
        ClientMessage::LogLevel { filter } => match &state.log_filter {
            Some(set) => match set(&filter) {
                Ok(()) => {
                    tracing::warn!(target: "genro_debug::audit", peer = %peer, filter = %filter.escape_debug(), "command: log-level");
                    ServerMessage::Done {
                        message: format!("log filter is now {filter}"),
                    }
                }
                Err(why) => error(why),
            },
            None => error("this server has no live log filter".into()),
        },
    }
}

/// `show ID`: the request in full; with `--trace`, also what it waits on, traced on its own task
/// (one batch at a time, rate-limited and timed out by the dumper: this session waits, the others
/// and the requests do not).
async fn show(state: &State, peer: SocketAddr, id: &str, trace: bool) -> ServerMessage {
    let Some(envelope) = state.registry.find(id) else {
        return no_request(id);
    };
    let command = if trace {
        "command: show --trace"
    } else {
        "command: show"
    };
    tracing::info!(target: "genro_debug::audit", peer = %peer, error_id = %envelope.short_id(), "{command}");
    let mut request = view::detail(&envelope, &state.config.masked_headers);
    if trace {
        request.waiting_on = Some(match TaskDumper::global().waiting_on(&envelope).await {
            Ok(trace) => WaitingOn {
                trace: Some(trace.to_string()),
                unavailable: None,
                age_s: Some(trace.age().as_secs_f64()),
            },
            Err(why) => WaitingOn {
                trace: None,
                unavailable: Some(why.to_string()),
                age_s: None,
            },
        });
    }
    ServerMessage::Request { request }
}

fn release(
    state: &State,
    peer: SocketAddr,
    id: &str,
    status: Option<http::StatusCode>,
) -> ServerMessage {
    let Some(holds) = &state.holds else {
        return error(NOT_HOLDING.into());
    };
    match holds.release(id, status) {
        Some(short) => {
            let with = status.map_or_else(
                || "its own response".to_owned(),
                |s| format!("status {}", s.as_u16()),
            );
            tracing::info!(target: "genro_debug::audit", peer = %peer, error_id = %short, with = %with, "command: release");
            ServerMessage::Done {
                message: format!("released {short} with {with}"),
            }
        }
        None => error(format!("no held request with id {}", id.escape_debug())),
    }
}
