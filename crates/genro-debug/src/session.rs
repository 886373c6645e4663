//! One console session: the challenge, the login, then commands until the client leaves, idles
//! out, or the server stops.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use genro_envelope::taskdump::TaskDumper;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::{
    tungstenite::{self, Message},
    WebSocketStream,
};

use crate::{
    auth,
    pending::PendingPlace,
    protocol::{self, ClientMessage, Refusal, ServerMessage, WaitingOn, VERSION},
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

/// How much longer a wrong answer from a locked-out address waits for its refusal: a guesser that
/// waits for each answer is slowed down, and a right answer is let in at once.
const LOCKED_OUT_DELAY: Duration = Duration::from_secs(1);

/// A session: the login, then commands until the client leaves, idles out, or the server stops.
/// Until it logs in, the connection holds `place` among the connections not logged in, and has
/// until `deadline` to answer the challenge.
pub(crate) async fn run(
    mut ws: Socket,
    peer: SocketAddr,
    host: String,
    state: Arc<State>,
    place: PendingPlace,
    deadline: Instant,
) {
    if !log_in(&mut ws, peer, &host, &state, &place, deadline).await {
        return;
    }
    // Logged in: a session now, no longer a connection waiting to log in.
    drop(place);
    let Some(_slot) = state.enter() else {
        count_login(&state, Refusal::TooManySessions.as_str());
        tracing::warn!(target: "genro_debug::audit", peer = %peer, max_sessions = state.config.max_sessions, "login refused: too many sessions");
        let message = format!(
            "the console has its most sessions open ({}); try again when one ends",
            state.config.max_sessions
        );
        return refuse(&mut ws, Refusal::TooManySessions, message).await;
    };
    count_login(&state, "ok");
    tracing::info!(target: "genro_debug::audit", peer = %peer, "login ok");
    let welcome = ServerMessage::Welcome {
        version: VERSION,
        holding: state.holds.is_some(),
    };
    if send(&mut ws, &welcome).await {
        commands(&mut ws, peer, &state).await;
    }
    tracing::info!(target: "genro_debug::audit", peer = %peer, "session ended");
}

fn count_login(state: &State, outcome: &'static str) {
    state
        .metrics
        .logins
        .get_or_create(&Outcome { outcome })
        .inc();
}

/// The challenge and its answer: whether the client gave the right one. A wrong answer, a late
/// one, or a connection closed to make room is refused (and counted) here.
async fn log_in(
    ws: &mut Socket,
    peer: SocketAddr,
    host: &str,
    state: &State,
    place: &PendingPlace,
    deadline: Instant,
) -> bool {
    let ip = peer.ip();
    let nonce = auth::nonce();
    let context = protocol::context(host);
    let challenge = ServerMessage::Challenge {
        version: VERSION,
        nonce: nonce.clone(),
        context: context.clone(),
    };
    if !send(ws, &challenge).await {
        return false;
    }
    let mut taken = place.taken();
    let answer = tokio::select! {
        () = taken.wait() => {
            tracing::debug!(target: "genro_debug::audit", peer = %peer, "connection closed before login to make room");
            return false;
        }
        answer = tokio::time::timeout_at(deadline, next(ws)) => answer,
    };
    let answer = match answer {
        Err(_) => {
            count_login(state, Refusal::LoginTimeout.as_str());
            tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: no answer in time");
            let message = "no login within debug.login_timeout".to_owned();
            refuse(ws, Refusal::LoginTimeout, message).await;
            return false;
        }
        Ok(Next::Gone) => return false,
        Ok(Next::Bad(what)) => {
            count_login(state, Refusal::BadMessage.as_str());
            tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: {what}");
            refuse(ws, Refusal::BadMessage, format!("refused: {what}")).await;
            return false;
        }
        Ok(Next::Text(text)) => {
            if let Ok(ClientMessage::Login { answer }) = ClientMessage::decode(&text) {
                answer
            } else {
                count_login(state, Refusal::BadMessage.as_str());
                tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: not a login message");
                let message = "the first message must be a login".to_owned();
                refuse(ws, Refusal::BadMessage, message).await;
                return false;
            }
        }
    };
    if auth::verify(&state.config.secret, &nonce, &context, &answer) {
        // Right, even from an address locked out: the lockout refuses wrong answers only, so
        // that failing logins cannot lock the operator out.
        state.limiter.succeeded(ip);
        return true;
    }
    let locked = state.limiter.locked(ip);
    let now_locked = state.limiter.failed(ip);
    let Some(left) = locked else {
        count_login(state, Refusal::WrongSecret.as_str());
        tracing::warn!(target: "genro_debug::audit", peer = %peer, locked_out = now_locked, "login refused: wrong secret");
        refuse(ws, Refusal::WrongSecret, "wrong secret".to_owned()).await;
        return false;
    };
    count_login(state, Refusal::RateLimited.as_str());
    tracing::warn!(target: "genro_debug::audit", peer = %peer, "login refused: wrong secret, locked out");
    tokio::select! {
        () = taken.wait() => return false,
        () = tokio::time::sleep(LOCKED_OUT_DELAY) => {}
    }
    let message = format!(
        "too many failed logins from {ip}: wrong answers are refused for {}s more",
        left.as_secs() + 1
    );
    refuse(ws, Refusal::RateLimited, message).await;
    false
}

/// Commands, each answered, until the client leaves, idles out, or the server stops.
async fn commands(ws: &mut Socket, peer: SocketAddr, state: &State) {
    let mut stop = state.stop.clone();
    loop {
        let incoming = tokio::select! {
            () = stopped(&mut stop) => {
                let message = "the server is shutting down".to_owned();
                refuse(ws, Refusal::ShuttingDown, message).await;
                return;
            }
            incoming = tokio::time::timeout(state.config.session_timeout, next(ws)) => incoming,
        };
        let text = match incoming {
            Err(_) => {
                tracing::info!(target: "genro_debug::audit", peer = %peer, "session closed: idle");
                let message = "closed after debug.session_timeout without a command".to_owned();
                refuse(ws, Refusal::IdleTimeout, message).await;
                return;
            }
            Ok(Next::Gone) => return,
            Ok(Next::Bad(what)) => {
                tracing::warn!(target: "genro_debug::audit", peer = %peer, "session closed: {what}");
                refuse(ws, Refusal::BadMessage, format!("closed: {what}")).await;
                return;
            }
            Ok(Next::Text(text)) => text,
        };
        let reply = match ClientMessage::decode(&text) {
            Ok(command) => command_reply(state, peer, command).await,
            Err(e) => ServerMessage::Error {
                message: format!("not a command of protocol {VERSION}: {e}"),
            },
        };
        if !send(ws, &reply).await {
            return;
        }
    }
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
                // A held request watches the signal too: it is released with the same 503.
                let held = state.holds.as_ref().is_some_and(|holds| holds.is_held(&id));
                envelope.cancel();
                let message = if held {
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
