//! An in-memory network for the secure layer's tests: nodes, virtual time, and a fate
//! for every datagram (delivered, lost, duplicated, or held back to reorder it).

use std::time::{Duration, Instant};

use rand::SeedableRng;

use super::{Address, Config, Identity, Opened, Secure, TransportAddr};

pub(super) const PSK: [u8; 32] = [7; 32];

/// The transport address of node `i` (they are all UDP).
pub(super) fn t(i: u8) -> TransportAddr {
    TransportAddr::udp(([198, 18, 0, i], 4000).into())
}

pub(super) fn identity(seed: u64) -> Identity {
    Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(seed))
}

pub(super) fn secure(seed: u64, psk: [u8; 32]) -> Secure {
    Secure::new(Config::new(psk), identity(seed), seed)
}

/// A datagram on the wire.
#[derive(Debug, Clone)]
pub(super) struct Flight {
    pub(super) at: Instant,
    pub(super) from: TransportAddr,
    pub(super) to: TransportAddr,
    pub(super) bytes: Vec<u8>,
}

impl Flight {
    pub(super) fn kind(&self) -> u8 {
        self.bytes[3]
    }
}

/// What the network does with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Delivered after the rest of its batch.
    Hold,
}

/// Nodes on an in-memory network.
pub(super) struct Net {
    pub(super) now: Instant,
    pub(super) nodes: Vec<(Secure, TransportAddr)>,
    /// Plaintext delivered to each node: (sender's address, bytes).
    pub(super) inbox: Vec<Vec<(Address, Vec<u8>)>>,
    /// Every datagram sent.
    pub(super) log: Vec<Flight>,
}

impl Net {
    pub(super) fn new(nodes: Vec<(Secure, TransportAddr)>) -> Net {
        Net {
            now: Instant::now(),
            inbox: vec![Vec::new(); nodes.len()],
            nodes,
            log: Vec::new(),
        }
    }

    /// Two nodes with the same psk, at `t(1)` and `t(2)`.
    pub(super) fn pair() -> Net {
        Net::new(vec![(secure(1, PSK), t(1)), (secure(2, PSK), t(2))])
    }

    pub(super) fn seal(&mut self, i: usize, to: usize, data: &[u8]) {
        let dst = self.nodes[to].1;
        self.nodes[i].0.seal(self.now, dst, data);
    }

    pub(super) fn peer(&self, i: usize, of: usize) -> Option<Address> {
        self.nodes[i].0.peer(self.nodes[of].1)
    }

    pub(super) fn address(&self, i: usize) -> Address {
        self.nodes[i].0.identity().address()
    }

    /// Everything the nodes want to send.
    pub(super) fn outgoing(&mut self) -> Vec<Flight> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (s, me) in &mut self.nodes {
            while let Some(to) = s.poll_transmit(&mut buf) {
                out.push(Flight {
                    at: self.now,
                    from: *me,
                    to,
                    bytes: buf.clone(),
                });
            }
        }
        self.log.extend(out.iter().cloned());
        out
    }

    /// Hands `f` to its receiver (if it exists).
    pub(super) fn deliver(&mut self, f: &Flight) -> Opened {
        let Some(i) = self.nodes.iter().position(|(_, t)| *t == f.to) else {
            return Opened::Dropped;
        };
        let mut out = Vec::new();
        let r = self.nodes[i].0.open(self.now, f.from, &f.bytes, &mut out);
        match r {
            Opened::Plain(a) => self.inbox[i].push((a, out)),
            _ => assert!(out.is_empty()),
        }
        self.check_wake();
        r
    }

    /// Delivers datagrams, through `fate`, until none is in flight.
    pub(super) fn shuttle(&mut self, fate: &mut impl FnMut(&Flight) -> Fate) {
        for _ in 0..1000 {
            let batch = self.outgoing();
            if batch.is_empty() {
                return;
            }
            let mut held = Vec::new();
            for f in batch {
                match fate(&f) {
                    Fate::Deliver => {
                        self.deliver(&f);
                    }
                    Fate::Drop => {}
                    Fate::Duplicate => {
                        self.deliver(&f);
                        self.deliver(&f);
                    }
                    Fate::Hold => held.push(f),
                }
            }
            for f in held {
                self.deliver(&f);
            }
        }
        panic!("the nodes never stop sending");
    }

    /// Lets `by` pass: every node's timers run at their deadlines, datagrams shuttled
    /// through `fate` after each.
    pub(super) fn advance(&mut self, by: Duration, fate: &mut impl FnMut(&Flight) -> Fate) {
        let end = self.now + by;
        self.shuttle(fate);
        for _ in 0..100_000 {
            let next = self
                .nodes
                .iter()
                .filter_map(|(s, _)| s.poll_timeout())
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    for (s, _) in &mut self.nodes {
                        s.handle_timeout(self.now);
                    }
                    self.check_wake();
                    self.shuttle(fate);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("timers keep firing without time passing");
    }

    /// `poll_timeout` is never later than a real deadline.
    fn check_wake(&self) {
        for (s, _) in &self.nodes {
            if let Some(d) = s.deadline() {
                assert!(
                    s.poll_timeout().is_some_and(|w| w <= d),
                    "a deadline was missed"
                );
            }
        }
    }

    /// The plaintexts node `i` received.
    pub(super) fn received(&self, i: usize) -> Vec<Vec<u8>> {
        self.inbox[i].iter().map(|(_, b)| b.clone()).collect()
    }

    /// Datagrams of `kind` sent by node `i`.
    pub(super) fn sent(&self, i: usize, kind: u8) -> Vec<&Flight> {
        let me = self.nodes[i].1;
        self.log
            .iter()
            .filter(|f| f.from == me && f.kind() == kind)
            .collect()
    }
}

pub(super) fn deliver_all(_: &Flight) -> Fate {
    Fate::Deliver
}

/// Establishes a session between nodes 0 and 1 (0 initiates).
pub(super) fn established() -> Net {
    let mut net = Net::pair();
    net.seal(0, 1, b"hello");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(1), [b"hello".to_vec()]);
    net
}
