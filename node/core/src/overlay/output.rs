//! The queue of datagrams waiting to be sent, with a pool of reusable buffers.

use std::collections::VecDeque;

use crate::transport::TransportAddr;
use crate::wire::Message;

/// Queued datagrams. Buffers cycle between the queue, the caller, and a free pool, so
/// steady-state sending allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<(TransportAddr, Vec<u8>)>,
    free: Vec<Vec<u8>>,
}

impl Outbox {
    /// A cleared buffer from the pool.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.free.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Returns a buffer to the pool.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < 64 {
            self.free.push(buf);
        }
    }

    /// Queues a filled buffer.
    pub(crate) fn push(&mut self, dst: TransportAddr, buf: Vec<u8>) {
        self.queue.push_back((dst, buf));
    }

    /// Encodes and queues `msg`; returns the encoded length (0 if it could not be encoded,
    /// which only a list longer than the protocol allows can cause).
    pub(crate) fn push_message(&mut self, dst: TransportAddr, msg: &Message<'_>) -> usize {
        let mut buf = self.buffer();
        buf.resize(msg.buffer_len(), 0);
        match msg.emit(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.push(dst, buf);
                n
            }
            Err(_) => {
                self.free.push(buf);
                0
            }
        }
    }

    /// Swaps the next datagram into `buf`, keeping `buf`'s old allocation.
    pub(crate) fn pop(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        let (dst, mut data) = self.queue.pop_front()?;
        std::mem::swap(buf, &mut data);
        if data.capacity() > 0 && self.free.len() < 64 {
            self.free.push(data);
        }
        Some(dst)
    }
}
