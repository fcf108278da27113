//! A STUN-like probe (RFC 5780's tests, our own wire format) that classifies what a
//! router does to UDP: mapping, filtering, hairpin, and whether a binding outlives an
//! idle period. `wow-bench probe server` runs [`serve`] on a public host with two
//! addresses; `wow-bench probe client` runs [`classify`] behind the router.
//!
//! Request: `WOWPROBE1 <txid> <same|port|addr-port> <delay-ms>`; the server answers
//! `WOWPROBE1 <txid> <mapped ip:port>` after the delay, from the address and port the
//! mode names (the one asked, another port, or the other address and other port).

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const MAGIC: &str = "WOWPROBE1";
const MAX_DELAYED: usize = 64;

/// Which source the server answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Same,
    Port,
    AddrPort,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Port => "port",
            Change::AddrPort => "addr-port",
        }
    }
}

/// Serves probes on every `(address, port)` pair until an I/O error. Needs two
/// addresses and two ports to answer every mode.
pub fn serve(addresses: &[std::net::Ipv4Addr], ports: &[u16]) -> io::Result<()> {
    if addresses.len() < 2 || ports.len() < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the probe server needs two addresses and two ports",
        ));
    }
    let mut sockets = Vec::new();
    for (ai, a) in addresses.iter().take(2).enumerate() {
        for (pi, p) in ports.iter().take(2).enumerate() {
            sockets.push((
                ai,
                pi,
                Arc::new(UdpSocket::bind(SocketAddrV4::new(*a, *p))?),
            ));
        }
    }
    let sockets = Arc::new(sockets);
    let delayed = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .iter()
            .map(|(ai, pi, sock)| {
                let (sockets, delayed) = (Arc::clone(&sockets), Arc::clone(&delayed));
                let (ai, pi, sock) = (*ai, *pi, Arc::clone(sock));
                scope.spawn(move || -> io::Result<()> {
                    let mut buf = [0u8; 512];
                    loop {
                        let (n, from) = sock.recv_from(&mut buf)?;
                        let Some((txid, change, delay)) = parse_request(&buf[..n]) else {
                            continue;
                        };
                        let (ra, rp) = match change {
                            Change::Same => (ai, pi),
                            Change::Port => (ai, 1 - pi),
                            Change::AddrPort => (1 - ai, 1 - pi),
                        };
                        let Some((_, _, out)) =
                            sockets.iter().find(|(a, p, _)| *a == ra && *p == rp)
                        else {
                            continue;
                        };
                        let reply = format!("{MAGIC} {txid} {from}");
                        if delay.is_zero() {
                            out.send_to(reply.as_bytes(), from)?;
                        } else if delayed.fetch_add(1, Ordering::SeqCst) < MAX_DELAYED {
                            let (out, delayed) = (Arc::clone(out), Arc::clone(&delayed));
                            std::thread::spawn(move || {
                                std::thread::sleep(delay);
                                let _ = out.send_to(reply.as_bytes(), from);
                                delayed.fetch_sub(1, Ordering::SeqCst);
                            });
                        } else {
                            delayed.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("probe thread panicked")))
        })
    })
}

fn parse_request(buf: &[u8]) -> Option<(u64, Change, Duration)> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut words = text.split_whitespace();
    if words.next()? != MAGIC {
        return None;
    }
    let txid = words.next()?.parse().ok()?;
    let change = match words.next()? {
        "same" => Change::Same,
        "port" => Change::Port,
        "addr-port" => Change::AddrPort,
        _ => return None,
    };
    let delay = Duration::from_millis(words.next()?.parse::<u64>().ok()?.min(60_000));
    Some((txid, change, delay))
}

/// How the router maps an inside socket to outside addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// No translation.
    NoNat,
    /// One mapping for every destination.
    EndpointIndependent,
    /// A mapping per destination address.
    AddressDependent,
    /// A mapping per destination address and port.
    AddressAndPortDependent,
}

/// Which outside sources may reach a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Anyone.
    EndpointIndependent,
    /// Any port of an address the inside host has sent to.
    AddressDependent,
    /// Only the address and port the inside host has sent to.
    AddressAndPortDependent,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// No answer at all: UDP does not pass.
    pub blocked: bool,
    /// The client's own address towards the server.
    pub local: Option<SocketAddr>,
    /// The address the server saw.
    pub mapped: Option<SocketAddr>,
    /// Mapping behaviour.
    pub mapping: Option<Mapping>,
    /// Filtering behaviour.
    pub filtering: Option<Filtering>,
    /// Whether a packet to its own mapping came back in (if asked).
    pub hairpin: Option<bool>,
    /// Whether an answer sent after the idle period still arrived (if asked).
    pub survives_idle: Option<bool>,
}

/// What to probe.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's primary address and port.
    pub primary: SocketAddrV4,
    /// The server's other address and other port.
    pub alternate: SocketAddrV4,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// Tries per question.
    pub tries: u32,
    /// Also test hairpin.
    pub hairpin: bool,
    /// Also test whether a binding survives this idle period.
    pub idle: Option<Duration>,
}

/// Runs the RFC 5780 style tests against a [`serve`]r.
pub fn classify(o: &ClientOptions) -> io::Result<Report> {
    let primary = SocketAddr::V4(o.primary);
    let alt_addr_primary_port =
        SocketAddr::V4(SocketAddrV4::new(*o.alternate.ip(), o.primary.port()));
    let alternate = SocketAddr::V4(o.alternate);
    let mut txid = 0u64;
    let mut ask = |sock: &UdpSocket,
                   to: SocketAddr,
                   change: Change,
                   delay: Duration|
     -> io::Result<Option<SocketAddr>> {
        txid += 1;
        request(sock, to, txid, change, delay, o)
    };
    let s1 = bind()?;
    let mut report = Report {
        blocked: false,
        local: None,
        mapped: None,
        mapping: None,
        filtering: None,
        hairpin: None,
        survives_idle: None,
    };
    let Some(x1) = ask(&s1, primary, Change::Same, Duration::ZERO)? else {
        report.blocked = true;
        return Ok(report);
    };
    let local = local_address(&s1, primary)?;
    report.local = Some(local);
    report.mapped = Some(x1);
    let x2 = ask(&s1, alt_addr_primary_port, Change::Same, Duration::ZERO)?;
    report.mapping = Some(if x1 == local {
        Mapping::NoNat
    } else if x2 == Some(x1) {
        Mapping::EndpointIndependent
    } else if x2.is_some() && ask(&s1, alternate, Change::Same, Duration::ZERO)? == x2 {
        Mapping::AddressDependent
    } else {
        Mapping::AddressAndPortDependent
    });
    // Filtering on a fresh socket, so no earlier flow opens the way.
    let s2 = bind()?;
    report.filtering = Some(
        if ask(&s2, primary, Change::AddrPort, Duration::ZERO)?.is_some() {
            Filtering::EndpointIndependent
        } else if ask(&s2, primary, Change::Port, Duration::ZERO)?.is_some() {
            Filtering::AddressDependent
        } else {
            Filtering::AddressAndPortDependent
        },
    );
    if o.hairpin {
        let s3 = bind()?;
        let s4 = bind()?;
        if let Some(mapped) = ask(&s3, primary, Change::Same, Duration::ZERO)? {
            let mut got = false;
            for _ in 0..o.tries {
                s4.send_to(format!("{MAGIC} hairpin").as_bytes(), mapped)?;
                if recv_matching(&s3, o.timeout, |text| text == format!("{MAGIC} hairpin"))?
                    .is_some()
                {
                    got = true;
                    break;
                }
            }
            report.hairpin = Some(got);
        }
    }
    if let Some(idle) = o.idle {
        let s5 = bind()?;
        txid += 1;
        s5.send_to(
            format!("{MAGIC} {txid} same {}", idle.as_millis()).as_bytes(),
            primary,
        )?;
        let want = format!("{MAGIC} {txid} ");
        report.survives_idle =
            Some(recv_matching(&s5, idle + o.timeout, |t| t.starts_with(&want))?.is_some());
    }
    Ok(report)
}

fn bind() -> io::Result<UdpSocket> {
    UdpSocket::bind("0.0.0.0:0")
}

/// The address this socket's packets to `to` leave from (before any NAT).
fn local_address(sock: &UdpSocket, to: SocketAddr) -> io::Result<SocketAddr> {
    let probe = UdpSocket::bind("0.0.0.0:0")?;
    probe.connect(to)?;
    let ip: IpAddr = probe.local_addr()?.ip();
    Ok(SocketAddr::new(ip, sock.local_addr()?.port()))
}

fn request(
    sock: &UdpSocket,
    to: SocketAddr,
    txid: u64,
    change: Change,
    delay: Duration,
    o: &ClientOptions,
) -> io::Result<Option<SocketAddr>> {
    let msg = format!("{MAGIC} {txid} {} {}", change.as_str(), delay.as_millis());
    let want = format!("{MAGIC} {txid} ");
    for _ in 0..o.tries {
        sock.send_to(msg.as_bytes(), to)?;
        if let Some(text) = recv_matching(sock, o.timeout + delay, |t| t.starts_with(&want))? {
            return Ok(text[want.len()..].trim().parse().ok());
        }
    }
    Ok(None)
}

fn recv_matching(
    sock: &UdpSocket,
    timeout: Duration,
    want: impl Fn(&str) -> bool,
) -> io::Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Ok(text) = std::str::from_utf8(&buf[..n]) {
                    if want(text) {
                        return Ok(Some(text.to_string()));
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn requests_parse_and_garbage_is_ignored() {
        assert_eq!(
            parse_request(b"WOWPROBE1 7 port 0"),
            Some((7, Change::Port, Duration::ZERO))
        );
        assert_eq!(
            parse_request(b"WOWPROBE1 7 addr-port 250").map(|r| r.2),
            Some(Duration::from_millis(250))
        );
        for bad in [
            &b""[..],
            b"WOWPROBE1",
            b"WOWPROBE1 x same 0",
            b"WOWPROBE1 1 sideways 0",
            b"\xff\xfe",
            b"STUN 1 same 0",
        ] {
            assert_eq!(parse_request(bad), None);
        }
    }

    #[test]
    fn loopback_server_classifies_as_no_nat_and_open() {
        let (a, b) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
        let ports = [free_port(), free_port()];
        std::thread::spawn(move || serve(&[a, b], &ports));
        std::thread::sleep(Duration::from_millis(100));
        let report = classify(&ClientOptions {
            primary: SocketAddrV4::new(a, ports[0]),
            alternate: SocketAddrV4::new(b, ports[1]),
            timeout: Duration::from_millis(300),
            tries: 3,
            hairpin: true,
            idle: Some(Duration::from_millis(50)),
        })
        .unwrap();
        assert!(!report.blocked);
        assert_eq!(report.mapping, Some(Mapping::NoNat));
        assert_eq!(report.filtering, Some(Filtering::EndpointIndependent));
        assert_eq!(report.hairpin, Some(true));
        assert_eq!(report.survives_idle, Some(true));
    }

    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap()
    }
}
