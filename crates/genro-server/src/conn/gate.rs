//! A future polled only when it has something new: the connection task's own timer and the
//! server's lifecycle, beside the connection itself.
//!
//! A connection's task wakes several times per request (a read, a response ready, a write), and
//! every wake polls each branch of its `select!`. The timer and the lifecycle change a few times
//! in a connection's life, yet polling them costs a watch-channel registration and a timer-entry
//! check on every wake (hundreds of instructions per request on a kept-alive HTTP/1
//! connection). A [`Gate`] gives them a waker of their own: the task polls them only after that
//! waker fired, the way a `FuturesUnordered` polls only the futures that were woken.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
};

use atomic_waker::AtomicWaker;

/// Whether the gated futures were woken, and the task to wake when they are.
#[derive(Debug, Default)]
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// One per connection: the waker its gated futures are polled with.
#[derive(Debug)]
pub(crate) struct Gate {
    signal: Arc<WakeFlag>,
    waker: Waker,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let signal = Arc::new(WakeFlag::default());
        Self {
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// `future`, polled at once, then only after its waker fires.
    pub(crate) fn pass<F: Future>(&self, future: F) -> Gated<'_, F> {
        self.signal.woken.store(true, Ordering::Relaxed);
        Gated {
            gate: self,
            future,
            registered: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future behind a [`Gate`].
    pub(crate) struct Gated<'a, F> {
        gate: &'a Gate,
        #[pin]
        future: F,
        // The task's waker as last registered: a task polled again with the same waker (the
        // usual case) skips the registration's atomic operations.
        registered: Option<Waker>,
    }
}

impl<F: Future> Future for Gated<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let signal = &this.gate.signal;
        // Registered before the check, so that a wake between the two is not lost; skipped when
        // `task` already holds this waker.
        let held = this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if !held {
            signal.task.register(cx.waker());
            *this.registered = Some(cx.waker().clone());
        }
        if !signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        if held {
            // The wake took the waker out of `task`: put it back before the future is polled.
            // A wake that came in between is seen by that poll; any later one reaches the task.
            signal.task.register(cx.waker());
        }
        this.future.poll(&mut Context::from_waker(&this.gate.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `ready` is set, waking through the waker it was last given.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: AtomicWaker,
    }

    struct Polled<'a>(&'a Probe);

    impl Future for Polled<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::Relaxed);
            self.0.waker.register(cx.waker());
            if self.0.ready.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn the_gated_future_is_polled_first_then_only_when_woken_and_its_wake_reaches_the_task() {
        let gate = Gate::new();
        let probe = Probe::default();
        let mut gated = std::pin::pin!(gate.pass(Polled(&probe)));
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(probe.polls.load(Ordering::Relaxed), 1, "polled at once");
        for _ in 0..10 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::Relaxed), 1, "not polled unwoken");

        // Its wake reaches the task that polls the gate, and the next poll sees it ready.
        let (task, woken) = {
            #[derive(Default)]
            struct Flag(AtomicBool);
            impl Wake for Flag {
                fn wake(self: Arc<Self>) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let flag = Arc::new(Flag::default());
            (Waker::from(flag.clone()), flag)
        };
        let mut cx = Context::from_waker(&task);
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        probe.ready.store(true, Ordering::Release);
        probe
            .waker
            .take()
            .expect("the probe holds the gate's waker")
            .wake();
        assert!(woken.0.load(Ordering::Acquire), "the task was woken");
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::Relaxed), 2);
    }

    /// A task polled with the same waker every time skips the registration, yet every wake
    /// reaches it: the one after a wake too (a wake takes the registered waker).
    #[test]
    fn every_wake_reaches_a_task_polled_with_the_same_waker() {
        #[derive(Default)]
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count::default());
        let task = Waker::from(count.clone());
        let mut cx = Context::from_waker(&task);
        let gate = Gate::new();
        let probe = Probe::default();
        let mut gated = std::pin::pin!(gate.pass(Polled(&probe)));
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        for wakes in 1..=3 {
            probe
                .waker
                .take()
                .expect("the probe holds the gate's waker")
                .wake();
            assert_eq!(
                count.0.load(Ordering::Relaxed),
                wakes,
                "wake {wakes} reached the task"
            );
            assert!(gated.as_mut().poll(&mut cx).is_pending());
            // Polls without a wake skip the inner future and the registration.
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::Relaxed), 4);
    }
}
