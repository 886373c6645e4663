//! `genro-debug HOST:PORT`: the console of a genro-asgi server's remote debugger.
//!
//! The secret comes from `GENRO_DEBUG_SECRET`, or from a prompt that does not echo. Commands come
//! from the terminal, with line editing and history, or from standard input, one per line:
//!
//! ```text
//! printf 'ls\nquit\n' | GENRO_DEBUG_SECRET=… genro-debug 127.0.0.1:8001
//! ```

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use genro_debug::{
    protocol::{ClientMessage, HeldDetail, RequestDetail, RequestSummary, ServerMessage},
    Client, ClientError, Secret,
};
use rustyline::{error::ReadlineError, DefaultEditor};
use shown::{line, lines};
use tokio::runtime::Runtime;

mod shown;

const HELP: &str = "\
commands:
  ls                    the requests in flight, oldest first
  watch                 ls, refreshed every second until Ctrl-C
  show ID               one request: envelope, annotations, headers (secrets masked)
  show ID --trace       and what it is waiting on (the async stack of its future)
  cancel ID             end a request with 503 (its handler is dropped)
  held                  the requests held on error: method, target and error
  attach ID [--full]    a held request: error, source chain, the backtrace's frames from
                        the panic to the error layer (--full: all of them), the request
  continue [ID]         release a held request with its own error response
  release [ID] STATUS   release a held request with STATUS instead
  log-level FILTER      set the server's log filter (e.g. info,my_app=debug)
  help                  this text
  quit                  leave";

fn usage() -> ExitCode {
    eprintln!(
        "usage: genro-debug HOST:PORT\n\nConnects to a genro-asgi debug console. The secret is read \
         from GENRO_DEBUG_SECRET, or asked for.\n\n{HELP}"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("usage: genro-debug HOST:PORT\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag == "-V" || flag == "--version" => {
            println!("genro-debug {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        [addr] if !addr.starts_with('-') && addr.contains(':') => addr.clone(),
        _ => return usage(),
    };
    let interactive = std::io::stdin().is_terminal();
    let secret = match std::env::var("GENRO_DEBUG_SECRET") {
        Ok(secret) => Secret::new(secret),
        Err(_) if interactive => match rpassword::prompt_password("Secret: ") {
            Ok(secret) => Secret::new(secret.trim_end_matches(['\r', '\n'])),
            Err(e) => {
                eprintln!("genro-debug: cannot read the secret: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => {
            eprintln!("genro-debug: set GENRO_DEBUG_SECRET to read commands from standard input");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("genro-debug: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match runtime.block_on(Client::connect(&addr, &secret)) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("genro-debug: {}", line(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    drop(secret);
    if say(&format!(
        "connected to {addr}{}; type help for the commands\n",
        if client.holding() {
            " (failing requests are held)"
        } else {
            ""
        }
    )) == Flow::Quit
    {
        return ExitCode::SUCCESS;
    }
    let mut console = Console {
        runtime,
        client,
        attached: None,
    };
    let result = if interactive {
        console.interactive()
    } else {
        console.script()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genro-debug: {}", line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

struct Console {
    runtime: Runtime,
    client: Client,
    /// The held request last attached to: `continue` and `release` default to it.
    attached: Option<String>,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

impl Console {
    fn interactive(&mut self) -> Result<(), ClientError> {
        let Ok(mut editor) = DefaultEditor::new() else {
            return self.script();
        };
        loop {
            match editor.readline("genro-debug> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if self.line(&line)? == Flow::Quit {
                        return Ok(());
                    }
                }
                Err(ReadlineError::Interrupted) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    fn script(&mut self) -> Result<(), ClientError> {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if self.line(&line)? == Flow::Quit {
                break;
            }
        }
        Ok(())
    }

    fn call(&mut self, command: &ClientMessage) -> Result<ServerMessage, ClientError> {
        self.runtime.block_on(self.client.call(command))
    }

    fn line(&mut self, line: &str) -> Result<Flow, ClientError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = |n: usize| words.get(n).map(|s| (*s).to_owned());
        let command = match words.as_slice() {
            [] => return Ok(Flow::Go),
            ["quit" | "exit" | "q"] => return Ok(Flow::Quit),
            ["help" | "?"] => {
                return Ok(say(&format!("{HELP}\n")));
            }
            ["watch"] => return self.watch().map(|()| Flow::Go),
            ["ls"] => ClientMessage::Ls,
            ["held"] => ClientMessage::Held,
            ["show", id] => ClientMessage::Show {
                id: (*id).to_owned(),
                trace: false,
            },
            ["show", "--trace", id] | ["show", id, "--trace"] => ClientMessage::Show {
                id: (*id).to_owned(),
                trace: true,
            },
            ["cancel", _] => ClientMessage::Cancel {
                id: id(1).unwrap_or_default(),
            },
            ["attach", id] | ["attach", id, "--full"] | ["attach", "--full", id] => {
                ClientMessage::Attach {
                    id: (*id).to_owned(),
                }
            }
            ["continue" | "c"] | ["continue" | "c", _] => {
                if let Some(id) = id(1).or_else(|| self.attached.clone()) {
                    ClientMessage::Continue { id }
                } else {
                    return Ok(say(
                        "continue which request? attach to one first, or give its id\n",
                    ));
                }
            }
            ["release", rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
                let (target, status) = match rest {
                    [status] => (self.attached.clone(), *status),
                    [id, status] => (Some((*id).to_owned()), *status),
                    _ => unreachable!("one or two words"),
                };
                let (Some(id), Ok(status)) = (target, status.parse::<u16>()) else {
                    return Ok(say(
                        "usage: release [ID] STATUS (attach to a request first, or give its id)
",
                    ));
                };
                ClientMessage::Release { id, status }
            }
            ["log-level", filter] => ClientMessage::LogLevel {
                filter: (*filter).to_owned(),
            },
            _ => {
                return Ok(say(&format!(
                    "unknown command {:?}; type help for the commands
",
                    line.trim()
                )));
            }
        };
        if let ClientMessage::Attach { id } = &command {
            self.attached = Some(id.clone());
        }
        let reply = self.call(&command)?;
        // `--full`: only `attach` takes it.
        Ok(say(&render(&reply, words.contains(&"--full"))))
    }

    fn watch(&mut self) -> Result<(), ClientError> {
        let interrupted = self.runtime.block_on(async {
            let ctrl_c = tokio::signal::ctrl_c();
            tokio::pin!(ctrl_c);
            loop {
                let reply = self.client.call(&ClientMessage::Ls).await?;
                // Clear the screen and go home, as top does.
                let screen = format!(
                    "\x1b[H\x1b[2J{}(watching; Ctrl-C to stop)\n",
                    render(&reply, false)
                );
                if say(&screen) == Flow::Quit {
                    return Ok(true);
                }
                tokio::select! {
                    _ = &mut ctrl_c => return Ok::<_, ClientError>(true),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })?;
        if interrupted {
            say("\n");
        }
        Ok(())
    }
}

/// Writes to standard output; an output that was closed (`| head`) ends the session quietly.
fn say(text: &str) -> Flow {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
    {
        Flow::Go
    } else {
        Flow::Quit
    }
}

/// A reply as the terminal shows it; `full`: an attached request's whole backtrace.
fn render(reply: &ServerMessage, full: bool) -> String {
    match reply {
        ServerMessage::Requests { requests } => table(requests),
        ServerMessage::Request { request } => detail(request),
        ServerMessage::HeldList { held } => {
            if held.is_empty() {
                return "no request is held\n".into();
            }
            let mut out = format!(
                "{:<8}  {:>6}  {:<5}  {:<12}  {:>7}  {:>7}  {}\n",
                "ID", "STATUS", "KIND", "TYPE", "HELD", "LEFT", "REQUEST: ERROR"
            );
            for h in held {
                out.push_str(&format!(
                    "{:<8}  {:>6}  {:<5}  {:<12}  {:>7}  {:>7}  {} {}: {}\n",
                    line(&h.request.id),
                    h.status,
                    line(&h.kind),
                    line(&h.error_type),
                    seconds(h.held_s),
                    seconds(h.release_in_s),
                    line(&h.request.method),
                    line(&h.request.target),
                    line(&h.message)
                ));
            }
            out
        }
        ServerMessage::Attached { held } => attached(held, full),
        ServerMessage::Done { message } => format!("{}\n", line(message)),
        ServerMessage::Error { message } => format!("error: {}\n", line(message)),
        other => format!("{}\n", line(&format!("{other:?}"))),
    }
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.0}s")
    }
}

fn table(requests: &[RequestSummary]) -> String {
    let mut out = format!(
        "{:<8}  {:<7}  {:>7}  {:<9}  {:>5}  {}\n",
        "ID", "METHOD", "AGE", "PHASE", "NOTES", "TARGET"
    );
    for r in requests {
        out.push_str(&format!(
            "{:<8}  {:<7}  {:>7}  {:<9}  {:>5}  {}\n",
            line(&r.id),
            line(&r.method),
            seconds(r.age_s),
            line(&r.phase),
            r.annotations,
            line(&r.target)
        ));
    }
    out.push_str(&format!("({} in flight)\n", requests.len()));
    out
}

fn detail(r: &RequestDetail) -> String {
    let mut out = String::new();
    // Every value is escaped here: most of them the client or the handler wrote.
    let mut field = |k: &str, v: &str| out.push_str(&format!("{k:<12} {}\n", line(v)));
    field("id", &r.id);
    field("internal id", &r.internal_id);
    field("external id", r.external_id.as_deref().unwrap_or("-"));
    field("trace id", r.trace_id.as_deref().unwrap_or("-"));
    field("request", &format!("{} {} {}", r.method, r.path, r.version));
    field("route", r.route.as_deref().unwrap_or("-"));
    field("client", r.client.as_deref().unwrap_or("-"));
    field("age", &seconds(r.age_s));
    field("phase", &r.phase);
    out.push_str("annotations:\n");
    for (k, v) in &r.annotations {
        out.push_str(&format!("  {} = {}\n", line(k), line(v)));
    }
    match &r.headers {
        Some(headers) => {
            out.push_str("headers:\n");
            for (k, v) in headers {
                out.push_str(&format!("  {}: {}\n", line(k), line(v)));
            }
        }
        None => out.push_str("headers: (not kept by this server)\n"),
    }
    if let Some(waiting) = &r.waiting_on {
        match (&waiting.trace, &waiting.unavailable) {
            (Some(trace), _) => {
                let age = waiting
                    .age_s
                    .map_or_else(String::new, |s| format!(" (traced {} ago)", seconds(s)));
                out.push_str(&format!("waiting on{age}:\n{}\n", lines(trace)));
            }
            (None, why) => out.push_str(&format!(
                "waiting on: unavailable: {}\n",
                line(why.as_deref().unwrap_or("no trace"))
            )),
        }
    }
    out
}

/// A held request: what it is and why it is held first, then the backtrace's frames from the
/// panic to the error layer (the application's marked; all of them with `full`), then the
/// request in detail.
fn attached(h: &HeldDetail, full: bool) -> String {
    let r = &h.request;
    let mut out = format!(
        "held {}: {} {} → {} ({}, {}); held {}, released anyway in {}\n",
        line(&r.id),
        line(&r.method),
        line(&r.path),
        h.status,
        line(&h.kind),
        line(&h.error_type),
        seconds(h.held_s),
        seconds(h.release_in_s)
    );
    out.push_str("error:\n");
    for (i, e) in h.chain.iter().enumerate() {
        out.push_str(&format!("  {i}: {}\n", line(e)));
    }
    match (&h.backtrace, full) {
        (Some(bt), true) => out.push_str(&format!("backtrace:\n{}\n", lines(bt))),
        (Some(bt), false) => match genro_errors::short_backtrace(bt) {
            Some(short) => out.push_str(&format!(
                "backtrace: {}\n(attach {} --full for every frame)\n",
                lines(&short.to_string()),
                line(&r.id)
            )),
            None => out.push_str(&format!("backtrace:\n{}\n", lines(bt))),
        },
        (None, _) => {
            out.push_str("backtrace: (none captured; run the server with RUST_BACKTRACE=1)\n");
        }
    }
    out.push_str("request:\n");
    out.push_str(&detail(r));
    out.push_str("continue releases it with its own response; release STATUS with another\n");
    out
}
