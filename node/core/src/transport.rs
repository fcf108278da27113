//! Transport addresses: where an edge's datagrams go on the underlay network.
//!
//! Written as URIs, as in Brunet: `udp://198.18.0.1:4000`, `tcp://[2001:db8::1]:4000`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The underlay transport of an edge.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Proto {
    /// One overlay datagram per UDP datagram.
    Udp,
    /// Overlay datagrams framed by length on a TCP stream.
    Tcp,
}

impl Proto {
    /// The URI scheme of the transport.
    pub fn scheme(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// A transport endpoint: protocol plus socket address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TransportAddr {
    /// UDP or TCP.
    pub proto: Proto,
    /// IP address and port.
    pub addr: SocketAddr,
}

impl TransportAddr {
    /// A UDP endpoint.
    pub fn udp(addr: SocketAddr) -> Self {
        TransportAddr {
            proto: Proto::Udp,
            addr,
        }
    }

    /// A TCP endpoint.
    pub fn tcp(addr: SocketAddr) -> Self {
        TransportAddr {
            proto: Proto::Tcp,
            addr,
        }
    }
}

impl fmt::Display for TransportAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.proto.scheme(), self.addr)
    }
}

/// Error parsing a transport URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseTransportError {
    /// The scheme is not `udp://` or `tcp://`.
    #[error("unknown transport scheme in {0:?}: expected udp://IP:PORT or tcp://IP:PORT")]
    Scheme(String),
    /// The part after the scheme is not `IP:PORT`.
    #[error("bad socket address in {0:?}: expected IP:PORT (IPv6 as [ADDR]:PORT)")]
    Address(String),
}

impl FromStr for TransportAddr {
    type Err = ParseTransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (proto, rest) = if let Some(rest) = s.strip_prefix("udp://") {
            (Proto::Udp, rest)
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            (Proto::Tcp, rest)
        } else {
            return Err(ParseTransportError::Scheme(s.to_owned()));
        };
        let addr = rest
            .trim_end_matches('/')
            .parse::<SocketAddr>()
            .map_err(|_| ParseTransportError::Address(s.to_owned()))?;
        Ok(TransportAddr { proto, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for s in ["udp://198.18.0.1:4000", "tcp://[2001:db8::1]:4001"] {
            let t: TransportAddr = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "tcp://198.18.0.1:1/"
                .parse::<TransportAddr>()
                .unwrap()
                .proto,
            Proto::Tcp
        );
    }

    #[test]
    fn bad_uris_are_rejected_with_reason() {
        assert!(matches!(
            "http://1.2.3.4:5".parse::<TransportAddr>(),
            Err(ParseTransportError::Scheme(_))
        ));
        assert!(matches!(
            "udp://1.2.3.4".parse::<TransportAddr>(),
            Err(ParseTransportError::Address(_))
        ));
    }
}
