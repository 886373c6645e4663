//! The `genro-debug` binary, driven as a person drives it: through a pseudo-terminal (rexpect),
//! against a real console; and as a script reads it, on standard input.

mod common;

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use common::{fetch, fixture, SECRET};
use genro_debug::AllowList;
use genro_test_support::eventually;
use rexpect::session::{spawn_command, PtySession};

const BIN: &str = env!("CARGO_BIN_EXE_genro-debug");
const HOLD: Duration = Duration::from_secs(20);

fn console(addr: &str, secret: Option<&str>) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg(addr)
        .env("TERM", "dumb")
        .env_remove("GENRO_DEBUG_SECRET");
    if let Some(secret) = secret {
        command.env("GENRO_DEBUG_SECRET", secret);
    }
    command
}

fn spawn(command: Command) -> PtySession {
    spawn_command(command, Some(10_000)).expect("the console starts in a pseudo-terminal")
}

fn exit_code(session: &PtySession) -> i32 {
    match session.process.wait().unwrap() {
        rexpect::process::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("did not exit: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_logs_in_lists_shows_and_cancels_through_a_terminal() {
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    let client =
        tokio::spawn(
            async move { fetch(app, "/slow", "authorization: Basic dXNlcjpwYXNz\r\n").await },
        );
    while f.registry.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = f.registry.snapshot()[0].short_id().to_string();
    let addr = f.addr.clone();
    let shown = id.clone();
    let transcript = tokio::task::spawn_blocking(move || {
        let id = shown;
        let mut p = spawn(console(&addr, None));
        p.exp_string("Secret: ").unwrap();
        p.send_line(SECRET).unwrap();
        let before = p.exp_string("type help for the commands").unwrap();
        assert!(
            !before.contains(SECRET),
            "the secret was echoed: {before:?}"
        );
        p.exp_string("genro-debug> ").unwrap();
        p.send_line("ls").unwrap();
        let ls = p.exp_string("(1 in flight)").unwrap();
        assert!(
            ls.contains("ID") && ls.contains("METHOD") && ls.contains("TARGET"),
            "{ls}"
        );
        assert!(
            ls.contains(&id) && ls.contains("/slow") && ls.contains("handling"),
            "{ls}"
        );
        p.exp_string("genro-debug> ").unwrap();
        p.send_line(&format!("show {id}")).unwrap();
        let show = p.exp_string("genro-debug> ").unwrap();
        assert!(show.contains("step = waiting on the bank"), "{show}");
        assert!(show.contains("authorization: <masked>"), "{show}");
        assert!(!show.contains("dXNlcjpwYXNz"), "{show}");
        assert!(!show.contains("waiting on:"), "only --trace asks: {show}");
        p.send_line(&format!("show {id} --trace")).unwrap();
        let traced = p.exp_string("genro-debug> ").unwrap();
        assert!(traced.contains("step = waiting on the bank"), "{traced}");
        if !genro_envelope::taskdump::AVAILABLE {
            assert!(
                traced.contains("waiting on: unavailable: task dumps are not")
                    && traced.contains("tokio_unstable"),
                "{traced}"
            );
        }
        // `watch` redraws the list in place every second until Ctrl-C.
        p.send_line("watch").unwrap();
        p.exp_string("(watching; Ctrl-C to stop)").unwrap();
        let redrawn = p.exp_string("(watching; Ctrl-C to stop)").unwrap();
        assert!(
            redrawn.contains("\x1b[2J") && redrawn.contains(&id),
            "{redrawn:?}"
        );
        p.send_control('c').unwrap();
        p.exp_string("genro-debug> ").unwrap();
        p.send_line("frobnicate").unwrap();
        p.exp_string("unknown command").unwrap();
        p.exp_string("genro-debug> ").unwrap();
        p.send_line(&format!("cancel {id}")).unwrap();
        p.exp_string(&format!("cancelled {id}: it ends with 503"))
            .unwrap();
        p.exp_string("genro-debug> ").unwrap();
        p.send_line("quit").unwrap();
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&p), 0);
        show
    })
    .await
    .unwrap();
    assert!(transcript.contains(&id));
    let answer = client.await.unwrap();
    assert_eq!(answer.status, 503);
    assert!(f.dropped());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_says_why_it_cannot_log_in_and_exits_non_zero() {
    let f = fixture(|_| {}, HOLD, 4).await;
    let refused_ip = fixture(
        |c| c.allowed_ips = AllowList::new(["10.0.0.0/8".parse().unwrap()]),
        HOLD,
        4,
    )
    .await;
    // A port where nothing listens.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let cases = [
        (
            f.addr.clone(),
            "the wrong secret, long enough",
            "login refused: wrong secret",
        ),
        (
            refused_ip.addr.clone(),
            SECRET,
            "not in its debug.allowed_ips",
        ),
        (
            closed.clone(),
            SECRET,
            &*format!("cannot reach the debug console at {closed}"),
        ),
    ]
    .map(|(a, s, m)| (a, s.to_owned(), m.to_owned()));
    tokio::task::spawn_blocking(move || {
        for (addr, secret, message) in cases {
            let mut p = spawn(console(&addr, Some(&secret)));
            let out = p.exp_string(&message).unwrap();
            assert!(
                !out.contains("panicked") && !out.contains("RUST_BACKTRACE"),
                "{out}"
            );
            p.exp_eof().unwrap();
            assert_eq!(exit_code(&p), 1, "{message}");
        }
        // Usage errors are exit status 2.
        let mut p = spawn(Command::new(BIN));
        p.exp_string("usage: genro-debug HOST:PORT").unwrap();
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&p), 2);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_standard_input_give_the_same_output() {
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    let _client = tokio::spawn(async move { fetch(app, "/slow", "").await });
    while f.registry.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = f.registry.snapshot()[0].short_id().to_string();
    let addr = f.addr.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = console(&addr, Some(SECRET))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"ls\nheld\nshow nope\nquit\nls\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&id) && stdout.contains("(1 in flight)"),
        "{stdout}"
    );
    assert!(stdout.contains("no request is held"), "{stdout}");
    assert!(
        stdout.contains("error: no request in flight with id nope"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("in flight)").count(),
        1,
        "nothing runs after quit: {stdout}"
    );
    // Without the variable, a script is told how to give the secret.
    let addr = f.addr.clone();
    let output = tokio::task::spawn_blocking(move || {
        console(&addr, None).stdin(Stdio::null()).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("GENRO_DEBUG_SECRET"));
}

/// What the terminal received, as text: rexpect hands each byte over as one char.
fn as_utf8(seen: &str) -> String {
    let bytes: Vec<u8> = seen
        .chars()
        .map(|c| u8::try_from(c).expect("one byte per char"))
        .collect();
    String::from_utf8(bytes).expect("the console writes UTF-8")
}

/// Characters a terminal acts on instead of showing: C0 but for the line ends the terminal
/// itself writes, DEL, C1, and the bidirectional formatting characters.
fn acted_on(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\r')
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_wrote_reaches_the_terminal_as_visible_escapes() {
    common::capture_backtraces();
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    // C1 controls pass HTTP/1 where ESC does not: CSI clears the screen, OSC retitles the
    // window, NEL breaks the line, RLO reverses what follows.
    let client = tokio::spawn(async move {
        fetch(
            app,
            "/hostile/c1\u{9b}2J",
            "user-agent: \u{9d}0;TITLE\u{9c}\u{202e}gpj.exe\r\nx-note: one\u{85}two\r\n",
        )
        .await
    });
    eventually("a held request", || !f.holds.is_empty()).await;
    let id = f.registry.snapshot()[0].short_id().to_string();
    let addr = f.addr.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let mut p = spawn(console(&addr, Some(SECRET)));
        p.exp_string("genro-debug> ").unwrap();
        let mut seen = String::new();
        for command in ["ls", &format!("show {id}"), "held", &format!("attach {id}")] {
            p.send_line(command).unwrap();
            seen.push_str(&p.exp_string("genro-debug> ").unwrap());
        }
        p.send_line("continue").unwrap();
        p.exp_string("genro-debug> ").unwrap();
        p.send_line("quit").unwrap();
        p.exp_eof().unwrap();
        seen
    })
    .await
    .unwrap();
    let seen = as_utf8(&seen);
    let acted: Vec<char> = seen.chars().filter(|&c| acted_on(c)).collect();
    assert!(
        acted.is_empty(),
        "{acted:?} reached the terminal:\n{seen:?}"
    );
    // Each field is still there, its controls shown as escapes.
    for shown in [
        "/hostile/c1\\u{9b}2J",                              // ls, show: the path
        "user-agent: \\u{9d}0;TITLE\\u{9c}\\u{202e}gpj.exe", // show: a header
        "x-note: one\\u{85}two",                             // show: a header
        "agent = \\u{9d}0;TITLE",                            // show: an annotation
        "cannot serve \\u{9d}0;TITLE\\u{9c}",                // held, attach: the error
    ] {
        assert!(seen.contains(shown), "{shown} not in:\n{seen}");
    }
    assert_eq!(client.await.unwrap().status, 500);
}

/// What `attach` shows of a held panic, in the order a debugger reads it: the request and its
/// error, then the backtrace's frames from the panic to the error layer with the handler's
/// frame first and marked, then the request in detail; `--full` shows every frame. `held` names
/// each request's method and target beside its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_shows_the_summary_and_the_applications_frames_first() {
    common::capture_backtraces();
    let f = fixture(|_| {}, HOLD, 4).await;
    let app = f.app;
    let client = tokio::spawn(async move { fetch(app, "/panic", "").await });
    eventually("a held request", || !f.holds.is_empty()).await;
    let id = f.registry.snapshot()[0].short_id().to_string();
    let addr = f.addr.clone();
    let (held, short, full) = tokio::task::spawn_blocking(move || {
        let mut p = spawn(console(&addr, Some(SECRET)));
        p.exp_string("genro-debug> ").unwrap();
        let mut seen = Vec::new();
        for command in [
            "held".to_owned(),
            format!("attach {id}"),
            format!("attach {id} --full"),
        ] {
            p.send_line(&command).unwrap();
            seen.push(p.exp_string("genro-debug> ").unwrap());
        }
        p.send_line("continue").unwrap();
        p.exp_string("genro-debug> ").unwrap();
        p.send_line("quit").unwrap();
        p.exp_eof().unwrap();
        (as_utf8(&seen[0]), as_utf8(&seen[1]), as_utf8(&seen[2]))
    })
    .await
    .unwrap();
    assert!(
        held.contains("GET /panic: boom while pricing order 42"),
        "{held}"
    );

    // The summary is the first line after the command's echo.
    let summary = short.lines().find(|l| l.starts_with("held ")).unwrap_or("");
    assert!(
        summary.contains("GET /panic → 500 (panic, panic)"),
        "{short}"
    );
    let at = |what: &str| {
        short
            .find(what)
            .unwrap_or_else(|| panic!("{what} not in:\n{short}"))
    };
    assert!(
        at("held ") < at("error:")
            && at("error:") < at("backtrace: ")
            && at("backtrace: ") < at("request:")
    );
    let frames: Vec<&str> = short[at("backtrace: ")..at("(attach ")]
        .lines()
        .skip(1)
        .collect();
    assert!(
        frames[0].starts_with("* ") && frames[0].contains("tests/common/mod.rs:"),
        "the handler's frame comes first, marked: {frames:#?}"
    );
    let (shown, total) = short[at("backtrace: ") + "backtrace: ".len()..]
        .split_once(" frames")
        .and_then(|(counts, _)| counts.split_once(" of "))
        .map(|(s, t)| (s.parse::<usize>().unwrap(), t.parse::<usize>().unwrap()))
        .expect("N of M frames");
    assert_eq!(shown, frames.len());
    assert!(shown < total, "{shown} of {total}");
    let hashed = |f: &str| {
        f.split("::h")
            .skip(1)
            .any(|rest| rest.len() >= 16 && rest.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit))
    };
    assert!(!frames.iter().any(|f| hashed(f)), "{frames:#?}");
    for machinery in ["std::panicking::", "tokio::runtime::", "<F,", "<P>"] {
        assert!(
            !frames.iter().any(|f| f.contains(machinery)),
            "{machinery} in the short backtrace: {frames:#?}"
        );
    }
    // --full: every frame, the panic machinery and the runtime included.
    assert!(full.contains("std::panicking::"), "{full}");
    assert!(full.contains("tokio::runtime::"), "{full}");
    assert_eq!(client.await.unwrap().status, 500);
}
