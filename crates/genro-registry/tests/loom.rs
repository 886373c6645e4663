//! Concurrency model test of the registry's shards: insert, remove and len under every
//! interleaving loom explores.
//!
//! The shard code is compiled here a second time, from the same file, against loom's mutex and
//! atomics instead of std's.

mod sync {
    pub(crate) use loom::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    };
    pub(crate) use std::sync::PoisonError;
}

#[path = "../src/shards.rs"]
#[allow(dead_code, unreachable_pub)]
mod shards;

use loom::thread;
use shards::Shards;
use sync::Arc;

/// Two threads add and remove at once while a third entry stays: the count never drops to zero
/// early, so no removal but the very last may report the set as emptied.
#[test]
fn no_false_idle_while_an_entry_remains() {
    loom::model(|| {
        let set = Arc::new(Shards::new(2, ()));
        let held = set.insert(0, 0u32);
        let workers: Vec<_> = (1..=2)
            .map(|i| {
                let set = set.clone();
                thread::spawn(move || {
                    let key = set.insert(i, i as u32);
                    let removed = key.remove().expect("own key is present");
                    let (value, emptied) = (removed.value, removed.emptied);
                    assert_eq!(value, i as u32);
                    assert!(!emptied, "emptied reported while another entry was held");
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(set.len(), 1);
        let emptied = held.remove().unwrap().emptied;
        assert!(emptied);
        assert_eq!(set.len(), 0);
    });
}

/// Concurrent add/remove pairs in one shared shard: every value is found while present, the
/// final count is zero, and the removal that emptied the set reported it.
#[test]
fn concurrent_pairs_leave_nothing_and_report_idle() {
    loom::model(|| {
        let set = Arc::new(Shards::new(1, ()));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let set = set.clone();
                thread::spawn(move || {
                    let key = set.insert(0, i);
                    // `len` counts our own entry: it can over-count, never under-count.
                    assert!(set.len() >= 1);
                    let mut seen = false;
                    set.visit(|v| seen |= *v == i);
                    assert!(seen, "an inserted value is visible to its inserter");
                    key.remove().expect("own key is present").emptied
                })
            })
            .collect();
        let emptied: Vec<bool> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(set.len(), 0);
        assert!(
            emptied.iter().any(|e| *e),
            "the last removal reports the set as emptied"
        );
        let mut left = 0;
        set.visit(|_| left += 1);
        assert_eq!(left, 0);
    });
}

/// A key removes only its own value, even when slots are reused between threads; keys are
/// consumed, so none can remove twice.
#[test]
fn keys_remove_their_own_value() {
    loom::model(|| {
        let set = Arc::new(Shards::new(1, ()));
        let a = set.insert(0, 'a');
        let t = {
            let set = set.clone();
            thread::spawn(move || {
                let b = set.insert(0, 'b');
                b.remove().unwrap().value
            })
        };
        assert_eq!(a.remove().unwrap().value, 'a');
        assert_eq!(t.join().unwrap(), 'b');
        assert_eq!(set.len(), 0);
    });
}
