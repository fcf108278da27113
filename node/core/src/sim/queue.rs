//! The simulator's event queue: a calendar queue that pops events in exactly the order
//! of a binary heap keyed by `(time, sequence number)`, at a cost that does not grow
//! with the number of pending events.
//!
//! Time is cut into buckets of [`BUCKET_NS`]. Events of the current bucket (and any
//! earlier one) sit in a small binary heap; events of the next [`HORIZON`] buckets are
//! appended unsorted to per-bucket vectors; anything later waits in an overflow heap.
//! When the current heap runs dry, the next non-empty bucket is heapified. A simulated
//! network schedules nearly everything within a few hundred milliseconds, so the heap
//! holds one bucket's worth of events and stays in cache, where one big heap of every
//! pending event would miss the cache at each level of every push and pop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Width of a bucket in nanoseconds of virtual time (about 1 ms).
const BUCKET_NS: u64 = 1 << 20;
/// Buckets kept as vectors beyond the current one (about 4.4 s).
const HORIZON: u64 = 1 << 12;

/// An event with its time (nanoseconds since the simulation began) and sequence number.
#[derive(Debug)]
struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Pending events, popped in `(at, seq)` order. Each push takes the next sequence
/// number, so events at the same time come out in the order they were pushed.
#[derive(Debug)]
pub(super) struct EventQueue<T> {
    /// Index of the current bucket: `heap` holds every event of buckets up to it.
    cur: u64,
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// `later[k]` holds the events of bucket `cur + 1 + k`.
    later: VecDeque<Vec<Entry<T>>>,
    /// Events of buckets past `cur + HORIZON`.
    overflow: BinaryHeap<Reverse<Entry<T>>>,
    /// Emptied bucket vectors, kept for their allocations.
    spare: Vec<Vec<Entry<T>>>,
    seq: u64,
    len: usize,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            cur: 0,
            heap: BinaryHeap::new(),
            later: VecDeque::new(),
            overflow: BinaryHeap::new(),
            spare: Vec::new(),
            seq: 0,
            len: 0,
        }
    }
}

impl<T> EventQueue<T> {
    /// Schedules `item` at `at` nanoseconds.
    pub(super) fn push(&mut self, at: u64, item: T) {
        self.seq += 1;
        self.len += 1;
        let entry = Entry {
            at,
            seq: self.seq,
            item,
        };
        let bucket = at / BUCKET_NS;
        if bucket <= self.cur {
            self.heap.push(Reverse(entry));
        } else if bucket - self.cur <= HORIZON {
            let k = (bucket - self.cur - 1) as usize;
            while self.later.len() <= k {
                let v = self.spare.pop().unwrap_or_default();
                self.later.push_back(v);
            }
            self.later[k].push(entry);
        } else {
            self.overflow.push(Reverse(entry));
        }
    }

    /// Removes and returns the earliest event if it is due at or before `until`.
    pub(super) fn pop_until(&mut self, until: u64) -> Option<(u64, T)> {
        if self.heap.is_empty() && !self.advance(until / BUCKET_NS) {
            return None;
        }
        if self.heap.peek()?.0.at > until {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        self.len -= 1;
        Some((e.at, e.item))
    }

    /// Events pending.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Moves the current bucket forward to the next one holding events, but not past
    /// `limit`; returns whether the heap now holds events.
    fn advance(&mut self, limit: u64) -> bool {
        while self.heap.is_empty() && self.cur < limit {
            let Some(next) = self.next_bucket() else {
                return false;
            };
            let target = next.min(limit);
            while self.cur < target {
                match self.later.pop_front() {
                    Some(mut v) => {
                        self.cur += 1;
                        self.heap.extend(v.drain(..).map(Reverse));
                        self.spare.push(v);
                    }
                    // No bucket vectors left: the buckets up to `target` are empty.
                    None => self.cur = target,
                }
            }
            while self
                .overflow
                .peek()
                .is_some_and(|e| e.0.at / BUCKET_NS <= self.cur)
            {
                if let Some(e) = self.overflow.pop() {
                    self.heap.push(e);
                }
            }
            // Keep overflow entries that now fall within the horizon in their buckets.
            while let Some(e) = self
                .overflow
                .peek()
                .filter(|e| e.0.at / BUCKET_NS - self.cur <= HORIZON)
            {
                let k = (e.0.at / BUCKET_NS - self.cur - 1) as usize;
                while self.later.len() <= k {
                    let v = self.spare.pop().unwrap_or_default();
                    self.later.push_back(v);
                }
                if let Some(Reverse(e)) = self.overflow.pop() {
                    self.later[k].push(e);
                }
            }
        }
        !self.heap.is_empty()
    }

    /// The index of the earliest bucket after `cur` that holds an event.
    fn next_bucket(&self) -> Option<u64> {
        let near = self
            .later
            .iter()
            .position(|v| !v.is_empty())
            .map(|k| self.cur + 1 + k as u64);
        let far = self.overflow.peek().map(|e| e.0.at / BUCKET_NS);
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pops everything due by `until` from both queues and compares.
    fn drain_both(
        q: &mut EventQueue<u32>,
        reference: &mut BinaryHeap<Reverse<(u64, u64, u32)>>,
        until: u64,
    ) {
        loop {
            let expected = match reference.peek() {
                Some(Reverse((at, _, _))) if *at <= until => {
                    reference.pop().map(|Reverse(e)| (e.0, e.2))
                }
                _ => None,
            };
            assert_eq!(q.pop_until(until), expected);
            if expected.is_none() {
                break;
            }
        }
        assert_eq!(q.len(), reference.len());
    }

    proptest! {
        /// Interleaved pushes (near, far and past the horizon, some at the same time)
        /// and partial drains pop in exactly the order of a heap keyed by (time, seq).
        #[test]
        fn pops_in_heap_order(ops in proptest::collection::vec((0u8..4, 0u64..(HORIZON * 3), 0u64..BUCKET_NS), 1..400)) {
            let mut q = EventQueue::default();
            let mut reference = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (i, (kind, buckets, ns)) in ops.into_iter().enumerate() {
                let item = i as u32;
                match kind {
                    0 => {
                        now += buckets * BUCKET_NS / 64 + ns;
                        drain_both(&mut q, &mut reference, now);
                    }
                    1 => {
                        // Same instant as the clock: ties broken by push order.
                        seq += 1;
                        q.push(now, item);
                        reference.push(Reverse((now, seq, item)));
                    }
                    _ => {
                        let at = now + buckets * BUCKET_NS / 8 + ns;
                        seq += 1;
                        q.push(at, item);
                        reference.push(Reverse((at, seq, item)));
                    }
                }
            }
            drain_both(&mut q, &mut reference, u64::MAX);
        }
    }

    #[test]
    fn waits_for_until() {
        let mut q = EventQueue::default();
        q.push(10 * BUCKET_NS, 'a');
        q.push(5, 'b');
        assert_eq!(q.pop_until(4), None);
        assert_eq!(q.pop_until(5), Some((5, 'b')));
        assert_eq!(q.pop_until(10 * BUCKET_NS - 1), None);
        // An event pushed behind the current bucket still comes out first.
        q.push(6, 'c');
        assert_eq!(q.pop_until(u64::MAX), Some((6, 'c')));
        assert_eq!(q.pop_until(u64::MAX), Some((10 * BUCKET_NS, 'a')));
        assert_eq!(q.pop_until(u64::MAX), None);
        assert_eq!(q.len(), 0);
    }
}
