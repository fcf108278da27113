//! Datagrams waiting for [`Secure::poll_transmit`](super::Secure::poll_transmit), with a
//! pool of reusable buffers and a bound.

use std::collections::VecDeque;

use crate::transport::TransportAddr;

/// Most buffers kept for reuse.
const POOL: usize = 64;

/// Queued datagrams. Buffers cycle between the queue, the caller and a free pool, so
/// steady-state sealing allocates nothing. At most `limit` datagrams wait: past that the
/// oldest is dropped (a driver that stops polling cannot grow memory without bound).
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<(TransportAddr, Vec<u8>)>,
    free: Vec<Vec<u8>>,
    limit: usize,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            queue: VecDeque::new(),
            free: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// A cleared buffer from the pool.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.free.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Returns an unused buffer to the pool.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > 0 && self.free.len() < POOL {
            self.free.push(buf);
        }
    }

    /// Queues a filled buffer; returns whether an older datagram had to be dropped.
    pub(crate) fn push(&mut self, to: TransportAddr, buf: Vec<u8>) -> bool {
        let dropped = if self.queue.len() >= self.limit {
            if let Some((_, old)) = self.queue.pop_front() {
                self.recycle(old);
            }
            true
        } else {
            false
        };
        self.queue.push_back((to, buf));
        dropped
    }

    /// Swaps the next datagram into `buf`, keeping `buf`'s old allocation for reuse.
    pub(crate) fn pop(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        let (to, mut data) = self.queue.pop_front()?;
        std::mem::swap(buf, &mut data);
        self.recycle(data);
        Some(to)
    }

    /// Datagrams waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
