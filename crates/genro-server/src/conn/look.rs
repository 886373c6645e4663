//! What the connection's task decides each time it looks at its connection ([`Looked::next`]),
//! from what the connection's requests counted (the request path's `Activity`):
//! - **idle**: no request in progress for too long. Before the first request that is
//!   `header_read_timeout`, on both protocols: a connection that sends nothing, trickles a
//!   request head, sends only the HTTP/2 preface or stalls inside a header block is closed then.
//!   Between requests, an HTTP/1 connection has `header_read_timeout` (the smaller of it and
//!   `idle_timeout`) to send its next complete head, which also bounds a head sent slowly on a
//!   kept-alive connection; an HTTP/2 connection, whose streams open and close while pings keep
//!   it alive, has `idle_timeout`. This is the server's header read timeout: one timer per
//!   connection, moved as the connection lives, instead of a timer armed for every request head
//!   (what hyper's own `header_read_timeout` does, boxing a timer per request);
//! - **stalled**: a response has a frame waiting to go and none has moved for `write_timeout`:
//!   the client stopped reading (a full socket on HTTP/1, a closed flow-control window on
//!   HTTP/2), and is disconnected.

use std::time::Duration;

use tokio::time::Instant;

use crate::request::activity::Activity;

/// The timeouts a connection's task applies, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// `[limits] header_read_timeout`: for the first request head, and an HTTP/1 connection's
    /// next.
    pub(crate) header_read: Duration,
    /// Between requests.
    pub(crate) idle: Duration,
    /// A response with something to send that does not move.
    pub(crate) write: Option<Duration>,
    /// Between two reads of a request body.
    pub(crate) body_read: Option<Duration>,
}

/// What a connection's task does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Look again at this instant.
    CheckAt(Instant),
    /// Close: no request in progress for the idle limit.
    Idle,
    /// Close: a response has not moved for the write limit.
    Stalled,
}

/// What the connection's task saw at its last look.
#[derive(Debug)]
pub(crate) struct Looked {
    born: Instant,
    progress: u64,
    ended: u64,
    /// The first look that saw no request in progress after the last one ended.
    idle_since: Instant,
}

impl Looked {
    pub(crate) fn new(born: Instant) -> Self {
        Self {
            born,
            progress: 0,
            ended: 0,
            idle_since: born,
        }
    }

    /// How long the connection may go without a request in progress once one has ended: the
    /// time an HTTP/1 client has to send its next head, or an HTTP/2 connection's idle limit.
    fn between_requests(activity: &Activity, timeouts: &Timeouts) -> Duration {
        if activity.is_http2() {
            timeouts.idle
        } else {
            timeouts.idle.min(timeouts.header_read)
        }
    }

    /// Decides at `now` whether the connection is idle or stalled, else when to look again.
    /// The end of a request is dated by the first look that sees it; while requests run, the
    /// looks come at least every half of the limit between requests, so a connection left
    /// without one closes within one and a half of it.
    pub(crate) fn next(&mut self, activity: &Activity, now: Instant, timeouts: &Timeouts) -> Next {
        let looked = self;
        // Something to send, nothing sent since the last look (a whole `write` ago): stalled.
        let progress = activity.progress();
        let moved = std::mem::replace(&mut looked.progress, progress) != progress;
        let to_send = activity.has_unsent();
        if to_send && !moved && timeouts.write.is_some() {
            return Next::Stalled;
        }
        // With a write limit, a look at least every `write`: a request that starts meanwhile is
        // watched from then on.
        let write_look = timeouts.write.map(|write| now + write);
        let between = Self::between_requests(activity, timeouts);
        let idle_at = if activity.in_flight() == 0 {
            let ended = activity.ended();
            if ended != looked.ended {
                looked.ended = ended;
                looked.idle_since = now;
            }
            let (since, limit) = if ended > 0 {
                (looked.idle_since, between)
            } else {
                (looked.born, timeouts.header_read)
            };
            let deadline = since + limit;
            match (now >= deadline, to_send) {
                (false, _) => deadline,
                (true, false) => return Next::Idle,
                // Past the idle limit with a response still going out: not idle.
                (true, true) => now + timeouts.write.unwrap_or(timeouts.idle),
            }
        } else {
            // A request in progress: look again for a stall, or for its end.
            now + between / 2
        };
        Next::CheckAt(write_look.map_or(idle_at, |w| w.min(idle_at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(1),
            idle: Duration::from_secs(5),
            write: Some(Duration::from_secs(2)),
            body_read: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_before_the_first_request_after_the_last_and_never_while_one_runs() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        // HTTP/2: between requests, the idle limit.
        activity.speaks_http2();
        let t = timeouts();
        let born = Instant::now();
        let mut looked = Looked::new(born);
        assert_eq!(
            looked.next(&activity, born, &t),
            Next::CheckAt(born + t.header_read)
        );
        assert_eq!(looked.next(&activity, born + t.header_read, &t), Next::Idle);

        let request = activity.request_started();
        // A request in progress, nothing to send: never idle, never stalled; looked at again
        // within the write limit and half the idle limit.
        let later = born + Duration::from_secs(60);
        assert_eq!(
            looked.next(&activity, later, &t),
            Next::CheckAt(later + Duration::from_secs(2))
        );
        drop(request);
        // The first look after the end dates it; idle from there.
        let seen = later + Duration::from_secs(2);
        assert_eq!(
            looked.next(&activity, seen, &t),
            Next::CheckAt(seen + t.write.unwrap())
        );
        assert_eq!(
            looked.next(&activity, seen + t.idle - Duration::from_millis(1), &t),
            Next::CheckAt(seen + t.idle)
        );
        assert_eq!(looked.next(&activity, seen + t.idle, &t), Next::Idle);
        // A request that came and went between two looks starts the idle time again.
        drop(activity.request_started());
        let again = seen + t.idle + Duration::from_secs(1);
        assert_eq!(
            looked.next(&activity, again, &t),
            Next::CheckAt(again + t.write.unwrap())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_connection_has_the_header_read_timeout_to_send_its_next_head() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        let t = timeouts();
        let born = Instant::now();
        let mut looked = Looked::new(born);
        let request = activity.request_started();
        // While a request runs, looks come every half of the limit between requests (1 s).
        assert_eq!(
            looked.next(&activity, born, &t),
            Next::CheckAt(born + t.header_read / 2)
        );
        drop(request);
        let seen = born + t.header_read / 2;
        assert_eq!(
            looked.next(&activity, seen, &t),
            Next::CheckAt(seen + t.header_read)
        );
        // Not the idle limit (5 s): the next head must be in within the header read timeout,
        // however slowly its bytes arrive.
        assert_eq!(looked.next(&activity, seen + t.header_read, &t), Next::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_that_does_not_move_for_a_whole_look_is_stalled() {
        let activity = Activity::new(([127, 0, 0, 1], 9).into());
        let t = timeouts();
        let mut looked = Looked::new(Instant::now());
        let mut request = activity.request_started();
        request.polled();
        request.handed_over();
        let now = Instant::now();
        // The first look sees progress since the start; the second sees none.
        assert!(matches!(looked.next(&activity, now, &t), Next::CheckAt(_)));
        assert_eq!(looked.next(&activity, now, &t), Next::Stalled);
        // Taken further: moving again.
        request.polled();
        assert!(matches!(looked.next(&activity, now, &t), Next::CheckAt(_)));
        drop(request);
        assert!(!activity.has_unsent());
        assert_eq!(activity.in_flight(), 0);
    }
}
