//! The driver's side of the virtual network: the TAP device, the lease file, and the
//! `ipop` part of the status. The IPOP logic itself lives in `ipop_core::ipop`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipop_core::ipop::{self, Event, Mapping, Namespace, NamespaceRecord};
use ipop_core::{Address, Stack};
use rand::TryRng;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::faults::IoFaults;
use crate::leasefile::{self, Held};
use crate::tap::Tap;

/// TAP MTU until the namespace record says otherwise: room for the overlay's headers
/// (and a relay tunnel's) inside a 1500-byte underlay packet.
pub const DEFAULT_MTU: u16 = 1280;
/// The MTU a keyed namespace hands out unless told otherwise: [`DEFAULT_MTU`] less the
/// seal on every packet (and a round number).
pub const DEFAULT_KEYED_MTU: u16 = 1240;
/// The underlay path MTU a namespace's MTU must fit: the Internet's usual 1500 bytes.
pub const UNDERLAY_MTU: usize = 1500;
/// The smallest MTU an IPv4 host must accept.
pub const MIN_MTU: u16 = 576;
/// The size of the buffer frames are read from and written to the TAP with.
pub const TAP_BUF: usize = 65_536;

/// The TAP device and what the driver keeps about it.
pub struct Vnet {
    /// The device.
    pub tap: Tap,
    name: String,
    held: Vec<Held>,
    /// Addresses the configuration gives the node (`--static-address`).
    statics: Vec<Ipv4Addr>,
    lease_file: std::path::PathBuf,
    mtu: u16,
    /// Frames read from the TAP.
    pub frames_in: u64,
    /// Frames written to the TAP.
    pub frames_out: u64,
}

impl std::fmt::Debug for Vnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vnet")
            .field("tap", &self.name)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// The P2P address a node must have in hash mode: SHA-1 of its one static address.
pub fn hashed_address(config: &Config) -> Option<Address> {
    let i = &config.ipop;
    (i.namespace.is_some() && i.mapping.0 == Mapping::Hash)
        .then(|| {
            i.static_addresses
                .first()
                .map(|ip| Address::sha1(&ip.octets()))
        })
        .flatten()
}

fn random_password() -> Result<Vec<u8>> {
    let mut pw = vec![0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut pw)
        .context("no operating-system randomness")?;
    Ok(pw)
}

impl Vnet {
    /// Creates the TAP device and the IPOP layer, and re-registers the addresses this
    /// node held before (lease file) and its static ones.
    pub fn start(config: &Config, stack: &mut Stack, now: Instant) -> Result<Option<Vnet>> {
        let Some(ns) = namespace(&config.ipop)? else {
            return Ok(None);
        };
        let c = &config.ipop;
        let tap = Tap::open(&c.tap, DEFAULT_MTU, c.offload)?;
        let (id, keyed) = (ns.id(), ns.is_keyed());
        let mut icfg = ipop::Config::new(ns);
        icfg.mapping = c.mapping.0;
        stack.enable_ipop(icfg, os_seed()?, now);
        let held = match c.mapping.0 {
            // No leases in hash mode: the node holds its one configured address, whose
            // hash is its P2P address, and nothing of it goes to the DHT.
            Mapping::Hash => c
                .static_addresses
                .iter()
                .map(|ip| Held {
                    ip: *ip,
                    mac: None,
                    password: Vec::new(),
                })
                .collect(),
            Mapping::Dht => {
                let mut held = leasefile::load(&c.lease_file)?;
                for ip in &c.static_addresses {
                    if !held.iter().any(|h| h.ip == *ip) {
                        held.push(Held {
                            ip: *ip,
                            mac: None,
                            password: random_password()?,
                        });
                    }
                }
                leasefile::save(&c.lease_file, &held)?;
                held
            }
        };
        if let Some(i) = stack.ipop.as_mut() {
            for h in &held {
                i.restore_lease(now, h.ip, h.mac, h.password.clone());
            }
        }
        info!(tap = %c.tap, namespace = %id, keyed, held = held.len(), "virtual network interface up");
        Ok(Some(Vnet {
            tap,
            name: c.tap.clone(),
            held,
            statics: c.static_addresses.clone(),
            lease_file: c.lease_file.clone(),
            mtu: DEFAULT_MTU,
            frames_in: 0,
            frames_out: 0,
        }))
    }

    /// Handles an IPOP event: persists leases. A configured static address the
    /// namespace refuses is a configuration error: the node stops, saying why.
    pub fn on_event(&mut self, e: Event) -> Result<()> {
        match e {
            Event::LeaseAcquired { ip, mac, password } => {
                info!(%ip, "leased");
                self.held.retain(|h| h.ip != ip);
                self.held.push(Held { ip, mac, password });
            }
            Event::LeaseLost { ip } => {
                warn!(%ip, "lease lost");
                self.held.retain(|h| h.ip != ip);
            }
            Event::NamespaceUnusable(why) => {
                warn!("{why}");
                return Ok(());
            }
            Event::AddressRefused { ip, reason } => {
                self.held.retain(|h| h.ip != ip);
                if let Err(e) = leasefile::save(&self.lease_file, &self.held) {
                    warn!("{e:#}");
                }
                if self.statics.contains(&ip) {
                    anyhow::bail!("--static-address {ip}: {reason}");
                }
                error!("restored address {ip} refused: {reason}");
                return Ok(());
            }
        }
        if let Err(e) = leasefile::save(&self.lease_file, &self.held) {
            warn!("{e:#}");
        }
        Ok(())
    }

    /// Applies the namespace's MTU to the TAP once the record is known.
    pub fn apply_mtu(&mut self, stack: &Stack) {
        let Some(mtu) = stack.ipop.as_ref().and_then(|i| i.record()).map(|r| r.mtu) else {
            return;
        };
        if mtu != self.mtu {
            match self.tap.set_mtu(mtu) {
                Ok(()) => self.mtu = mtu,
                Err(e) => warn!("cannot set the TAP MTU to {mtu}: {e}"),
            }
        }
    }

    /// The `ipop` part of the status (the stack has it once the node has a [`Vnet`]).
    pub fn status(
        &self,
        stack: &Stack,
        faults: &IoFaults,
        started: Instant,
    ) -> Option<ipop_api::status::Ipop> {
        stack.ipop.as_ref().map(|i| {
            crate::status::ipop(
                i,
                &crate::status::TapFacts {
                    name: &self.name,
                    mtu: self.mtu,
                    offload: self.tap.offloads(),
                    frames_in: self.frames_in,
                    frames_out: self.frames_out,
                    write_drops: faults.tap_write_drops,
                    errors: faults.tap_errors,
                },
                started,
            )
        })
    }
}

/// The namespace a node's `[ipop]` table names: keyed (its key file, whose key must name
/// `namespace` if that is given too), open (`namespace` alone), or none.
pub fn namespace(c: &crate::config::Ipop) -> Result<Option<Namespace>> {
    match (&c.namespace, &c.namespace_key) {
        (None, None) => Ok(None),
        (Some(id), None) => Ok(Some(Namespace::open(id.0))),
        (id, Some(path)) => {
            let key = crate::identity::read_namespace_key(path)?;
            if let Some(id) = id.filter(|id| id.0 != key.id()) {
                bail!(
                    "the namespace key {} is for namespace {}, not for {} (the configured \
                     namespace): leave `namespace` out, or give the key of {}",
                    path.display(),
                    key.id(),
                    id.0,
                    id.0
                );
            }
            Ok(Some(Namespace::keyed(&key)))
        }
    }
}

/// The namespace a control request names: keyed by `key` (64 hex digits; `id`, if
/// given too, must be the one it names), open under `id`, or none.
pub fn requested_namespace(
    id: Option<&str>,
    key: Option<&str>,
) -> Result<Option<Namespace>, String> {
    let id = id.map(str::parse::<ipop::NamespaceId>).transpose()?;
    match key {
        Some(key) => {
            let key: ipop::NamespaceKey = key.parse().map_err(|e| format!("{e}"))?;
            if id.is_some_and(|id| id != key.id()) {
                return Err(format!(
                    "the key is for namespace {}, not {}",
                    key.id(),
                    id.unwrap_or_default()
                ));
            }
            Ok(Some(Namespace::keyed(&key)))
        }
        None => Ok(id.map(Namespace::open)),
    }
}

/// A namespace record from command-line values.
pub fn record(
    name: &str,
    range: &str,
    lease_s: u64,
    mtu: u16,
    dns: Option<Ipv4Addr>,
    keyed: bool,
) -> Result<NamespaceRecord, String> {
    let seal = if keyed { ipop::keyed::SEAL_OVERHEAD } else { 0 };
    if !(MIN_MTU..=ipop::namespace::MAX_MTU).contains(&mtu) {
        return Err(format!(
            "mtu {mtu}: must be between {MIN_MTU} and {} (Ethernet's); up to {} a virtual packet crosses every edge of a {UNDERLAY_MTU}-byte underlay whole (it travels with {} bytes of overlay headers{}, {} more over a relay edge, in a UDP datagram with {} bytes of IPv6 and UDP headers); a larger one is cut into fragments, or answered with ICMP fragmentation-needed where it may not be cut",
            ipop::namespace::MAX_MTU,
            ipop::UNFRAGMENTED_MTU - seal,
            ipop::OVERHEAD,
            if keyed {
                format!(" and a {seal}-byte seal (keyed namespace)")
            } else {
                String::new()
            },
            ipop::RELAY_OVERHEAD,
            ipop::UNDERLAY_HEADERS
        ));
    }
    if lease_s < 60 {
        return Err(format!("lease {lease_s} s: must be at least 60 s"));
    }
    let record = NamespaceRecord {
        name: name.to_owned(),
        range: range.parse().map_err(|e: ipop::RangeError| e.to_string())?,
        lease: Duration::from_secs(lease_s),
        mtu,
        dns,
    };
    // The limits every member applies to the record it reads (a record it would refuse
    // is refused here, with the reason).
    record.check().map_err(|e| e.to_string())?;
    Ok(record)
}

/// 32 bytes from the operating system's random generator (seeds of the IPOP layer's
/// lease passwords and of namespace identifiers).
pub fn os_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut seed)
        .context("no operating-system randomness")?;
    Ok(seed)
}

/// Parses a duration like `12h`, `30m`, `90s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('s') => (&s[..s.len() - 1], 1),
        Some('d') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not a duration like 12h, 30m or 90s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_records_are_checked() {
        assert_eq!(parse_duration("12h"), Ok(43200));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("soon").is_err());
        assert!(record("x", "10.128.0.0/12", 43200, 1280, None, false).is_ok());
        let e = record("x", "10.128.0.0/12", 43200, 100, None, false).unwrap_err();
        assert!(
            e.starts_with("mtu 100: must be between 576 and 1500"),
            "{e}"
        );
        // Up to Ethernet's MTU; the error says what crosses every edge whole.
        assert!(record("x", "10.128.0.0/12", 43200, 1500, None, false).is_ok());
        let e = record("x", "10.128.0.0/12", 43200, 1501, None, false).unwrap_err();
        assert!(
            e.contains("1286") && e.contains("1500-byte underlay"),
            "{e}"
        );
        let e = record("x", "10.128.0.0/12", 43200, 100, None, true).unwrap_err();
        assert!(e.contains("1246") && e.contains("keyed namespace"), "{e}");
        // The defaults cross every edge whole; a keyed namespace's packets carry a seal.
        assert!(usize::from(DEFAULT_MTU) <= ipop::UNFRAGMENTED_MTU);
        assert!(
            usize::from(DEFAULT_KEYED_MTU) <= ipop::UNFRAGMENTED_MTU - ipop::keyed::SEAL_OVERHEAD
        );
        assert!(
            record("x", "10.128.0.1/12", 43200, 1280, None, false)
                .unwrap_err()
                .contains("host bits")
        );
    }

    /// An ARP request from the host for 10.1.0.9, which the virtual gateway answers.
    fn arp_request() -> Vec<u8> {
        let mac = [2, 0, 0, 0, 0, 5];
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[10, 1, 0, 5, 0, 0, 0, 0, 0, 0, 10, 1, 0, 9]);
        f
    }

    #[test]
    fn a_full_tap_drops_frames_instead_of_blocking_the_node() {
        let now = Instant::now();
        let mut stack = Stack::new(
            ipop_core::overlay::Config::default(),
            ipop_core::dht::Config::default(),
            Address::from_bytes([1; 20]),
            1,
            now,
            ipop_core::dht::WallClock::fixed(now),
        );
        stack.enable_ipop(ipop::Config::new(ipop::NamespaceId([1; 16])), [2; 32], now);
        let (mut buf, mut faults) = (vec![0u8; TAP_BUF], IoFaults::default());
        for _ in 0..3 {
            stack.handle_tap_frame(now, &arp_request());
        }
        let full = |_: &[u8]| Err(std::io::ErrorKind::WouldBlock.into());
        let written =
            crate::tap::write_frames(&mut stack, &mut buf, &mut faults, None, full).unwrap();
        assert_eq!((written, faults.tap_write_drops), (0, 3));
        // Room again: frames go out.
        stack.handle_tap_frame(now, &arp_request());
        let written =
            crate::tap::write_frames(&mut stack, &mut buf, &mut faults, None, |f| Ok(f.len()));
        assert_eq!(written.unwrap(), 1);
        // A TAP that vanished ends the node with a message that says so.
        stack.handle_tap_frame(now, &arp_request());
        let gone = |_: &[u8]| Err(std::io::Error::from(nix::errno::Errno::EBADFD));
        let e =
            crate::tap::write_frames(&mut stack, &mut buf, &mut faults, None, gone).unwrap_err();
        assert!(e.to_string().contains("TAP device is gone"), "{e}");
    }
}
