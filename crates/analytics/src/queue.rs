//! The bounded queue between the request path and the writer task.
//!
//! `push` is one lock-free array-queue push (no syscall, no allocation): the writer task is not
//! woken per event (a tokio channel would wake it on every send) but drains the queue on a short
//! timer ([`DRAIN_PERIOD`]) and is woken early only when a batch's worth is waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::event::Event;

/// How often the writer drains the queue when it is not woken earlier.
///
/// Each drain wakes the writer's thread, which on a busy gateway shares a CPU with the proxy
/// workers: at 2 ms that was 500 wake-ups a second, busy or idle (1,954 context switches in a
/// 4-second `wrk` run; 207 at 50 ms). At 50 ms a queue of the default 65,536 events holds
/// 1.3 M events a second between drains, and a batch's worth waiting wakes the writer at once.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(50);

/// Bounded multi-producer queue of events.
#[derive(Debug)]
pub struct EventQueue {
    q: ArrayQueue<Event>,
    wake_at: usize,
    notify: Notify,
    closed: AtomicBool,
}

impl EventQueue {
    /// A queue of `capacity` events that wakes the consumer once `wake_at` events wait.
    pub fn new(capacity: usize, wake_at: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            q: ArrayQueue::new(capacity),
            wake_at: wake_at.clamp(1, capacity),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Adds an event; false when the queue is full or closed (the caller counts the drop).
    #[inline]
    pub fn push(&self, ev: Event) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        if self.q.push(ev).is_err() {
            return false;
        }
        if self.q.len() >= self.wake_at {
            self.notify.notify_one();
        }
        true
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.q.capacity()
    }

    /// Refuses further pushes (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until woken by a push past the threshold (a wake-up sent while nobody waited is
    /// kept, so none is lost).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Moves up to `max` events into `out`; returns how many.
    pub fn drain_into(&self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.q.pop() {
                Some(ev) => {
                    out.push(ev);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_closed_queues_refuse() {
        let q = EventQueue::new(2, 1);
        assert!(q.push(Event::default()));
        assert!(q.push(Event::default()));
        assert!(!q.push(Event::default()));
        let mut out = Vec::new();
        assert_eq!(q.drain_into(&mut out, 10), 2);
        q.close();
        assert!(!q.push(Event::default()));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_wake_up_before_waiting_is_not_lost() {
        let q = EventQueue::new(8, 2);
        q.push(Event::default());
        q.push(Event::default()); // reaches the threshold: stores a wake-up
        tokio::time::timeout(Duration::from_secs(5), q.woken())
            .await
            .ok();
        assert_eq!(q.len(), 2);
    }
}
