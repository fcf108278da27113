//! Turns a parsed file into a [`Topology`], refusing anything that cannot be built.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::raw;
use super::{
    Attachment, DEFAULT_CORE, Firewall, IpopNamespace, LinkParams, NatProfile, Overlay,
    PublicGroup, Site, Topology, UNDERLAY, Wan,
};

/// Offset of the first host address in a site subnet (the router takes the first).
pub(crate) const FIRST_HOST_OFFSET: u32 = 10;
const MAX_NAME: usize = 24;
const MAX_HOSTS_PER_SITE: i64 = 1000;
const MAX_PUBLIC_PER_GROUP: i64 = 1000;
const MAX_ADDRESSES: i64 = 4;
const MAX_DELAY_MS: f64 = 10_000.0;
const MAX_RATE_MBIT: f64 = 100_000.0;
/// A WAN link's MTU: at least IPv4's minimum datagram, at most a jumbo frame.
const MIN_LINK_MTU: i64 = 576;
const MAX_LINK_MTU: i64 = 9000;
const MAX_TIMEOUT_S: i64 = 7 * 24 * 3600;

pub(crate) struct Invalid {
    pub(crate) span: Range<usize>,
    pub(crate) reason: String,
}

fn err<T>(span: Range<usize>, reason: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        span,
        reason: reason.into(),
    })
}

pub(crate) fn validate(file: raw::File) -> Result<Topology, Invalid> {
    check_name(&file.name, "topology")?;
    let core = match &file.core {
        Some(c) => parse_subnet(&c.subnet)?,
        None => DEFAULT_CORE,
    };
    let mut names = Names::default();
    let sites = validate_sites(&file, core, &mut names)?;
    let public = validate_public(&file.public, &mut names)?;
    check_core_room(&file, core, &sites, &public)?;
    let wans = validate_wans(&file.wan, &sites, &names)?;
    let overlay = match &file.overlay {
        Some(o) => validate_overlay(o, &names)?,
        None => Overlay::default(),
    };
    Ok(Topology {
        name: file.name.into_inner(),
        description: file.description,
        core,
        sites,
        public,
        wans,
        overlay,
    })
}

/// The sites, their subnets clear of the `core` and of each other; their routers' and
/// hosts' names go into `names`.
fn validate_sites(
    file: &raw::File,
    core: Ipv4Net,
    names: &mut Names,
) -> Result<Vec<Site>, Invalid> {
    let mut taken: Vec<(Ipv4Net, Range<usize>, String)> = Vec::new();
    taken.push((
        core,
        file.core.as_ref().map_or(0..0, |c| c.subnet.span()),
        "the core".into(),
    ));
    let explicit: Vec<Ipv4Net> = file
        .site
        .iter()
        .filter_map(|s| s.subnet.as_ref().and_then(|n| n.get_ref().parse().ok()))
        .collect();
    let mut sites = Vec::new();
    for raw_site in &file.site {
        let site = validate_site(raw_site, &explicit, &taken)?;
        check_overlap(&site.subnet, site_subnet_span(raw_site), &taken)?;
        taken.push((
            site.subnet,
            site_subnet_span(raw_site),
            format!("site {}", site.name),
        ));
        names.add(
            format!("{}-gw", site.name),
            Kind::Router,
            raw_site.name.span(),
        )?;
        for i in 0..site.hosts {
            names.add(
                format!("{}-{i}", site.name),
                Kind::SiteHost,
                raw_site.name.span(),
            )?;
        }
        sites.push(site);
    }
    Ok(sites)
}

/// The groups of public hosts; their hosts' names go into `names`.
fn validate_public(groups: &[raw::Public], names: &mut Names) -> Result<Vec<PublicGroup>, Invalid> {
    let mut public = Vec::new();
    for group in groups {
        check_name(&group.name, "public group")?;
        let count = bounded(group.count.as_ref(), 1, 1, MAX_PUBLIC_PER_GROUP, "count")?;
        let addresses = bounded(group.addresses.as_ref(), 1, 1, MAX_ADDRESSES, "addresses")?;
        for i in 0..count {
            names.add(
                format!("{}-{i}", group.name.get_ref()),
                Kind::PublicHost,
                group.name.span(),
            )?;
        }
        public.push(PublicGroup {
            name: group.name.get_ref().clone(),
            count,
            addresses,
        });
    }
    Ok(public)
}

/// Refuses a `core` subnet without room for an address per site router and per public
/// host address.
fn check_core_room(
    file: &raw::File,
    core: Ipv4Net,
    sites: &[Site],
    public: &[PublicGroup],
) -> Result<(), Invalid> {
    let core_addresses = sites.len() as u64
        + public
            .iter()
            .map(|g| u64::from(g.count) * u64::from(g.addresses))
            .sum::<u64>();
    let core_room = (1u64 << (32 - core.prefix_len())).saturating_sub(2);
    if core_addresses > core_room {
        let span = file
            .core
            .as_ref()
            .map_or(file.name.span(), |c| c.subnet.span());
        return err(
            span,
            format!(
                "the core {core} has room for {core_room} addresses, the topology needs {core_addresses}"
            ),
        );
    }
    Ok(())
}

fn site_subnet_span(site: &raw::Site) -> Range<usize> {
    site.subnet.as_ref().map_or(site.name.span(), |s| s.span())
}

fn validate_site(
    site: &raw::Site,
    explicit: &[Ipv4Net],
    taken: &[(Ipv4Net, Range<usize>, String)],
) -> Result<Site, Invalid> {
    check_name(&site.name, "site")?;
    let hosts = bounded(Some(&site.hosts), 1, 1, MAX_HOSTS_PER_SITE, "hosts")?;
    let subnet = match &site.subnet {
        Some(s) => parse_subnet(s)?,
        None => default_subnet(explicit, taken).ok_or_else(|| Invalid {
            span: site.name.span(),
            reason: "no free /24 left in 198.19.0.0/16 for this site; give it a subnet".into(),
        })?,
    };
    let room =
        (1u64 << (32 - subnet.prefix_len())).saturating_sub(2 + u64::from(FIRST_HOST_OFFSET));
    if u64::from(hosts) > room {
        return err(
            site.hosts.span(),
            format!(
                "{hosts} hosts do not fit in {subnet} (room for {room} after the router's block)"
            ),
        );
    }
    let nat = match &site.nat {
        Some(n) => NatProfile::from_name(n.get_ref()).ok_or_else(|| Invalid {
            span: n.span(),
            reason: format!(
                "unknown nat profile {:?}; expected one of none, full-cone, address-restricted, port-restricted, symmetric",
                n.get_ref()
            ),
        })?,
        None => NatProfile::None,
    };
    let firewall = firewall(site)?;
    let hairpin = site.hairpin.as_ref().is_some_and(|h| *h.get_ref());
    if hairpin && nat == NatProfile::None {
        let span = site.hairpin.as_ref().map_or(0..0, |h| h.span());
        return err(span, "hairpin needs a NAT (nat is \"none\")");
    }
    let binding_timeout = match &site.binding_timeout_s {
        Some(t)
            if nat == NatProfile::None
                && !matches!(firewall, Firewall::OutboundOnly | Firewall::Custom(_)) =>
        {
            return err(
                t.span(),
                "binding_timeout_s needs a NAT or a stateful firewall (outbound-only or custom)",
            );
        }
        Some(t) => Some(Duration::from_secs(u64::from(bounded(
            Some(t),
            0,
            1,
            MAX_TIMEOUT_S,
            "binding_timeout_s",
        )?))),
        None => None,
    };
    Ok(Site {
        name: site.name.get_ref().clone(),
        hosts,
        subnet,
        nat,
        firewall,
        hairpin,
        binding_timeout,
    })
}

fn firewall(site: &raw::Site) -> Result<Firewall, Invalid> {
    let name = site
        .firewall
        .as_ref()
        .map_or("open", |f| f.get_ref().as_str());
    let span = site
        .firewall
        .as_ref()
        .map_or(site.name.span(), |f| f.span());
    let rules = site.firewall_rules.as_ref();
    if name != "custom" {
        if let Some(r) = rules {
            return err(r.span(), "firewall_rules needs firewall = \"custom\"");
        }
    }
    match name {
        "open" => Ok(Firewall::Open),
        "outbound-only" => Ok(Firewall::OutboundOnly),
        "udp-blocked" => Ok(Firewall::UdpBlocked),
        "custom" => {
            let Some(rules) = rules else {
                return err(
                    span,
                    "firewall = \"custom\" needs firewall_rules = [\"-A FORWARD ...\", ...]",
                );
            };
            if rules.get_ref().is_empty() {
                return err(rules.span(), "firewall_rules is empty");
            }
            for rule in rules.get_ref() {
                let rule = rule.trim();
                if !(rule.starts_with("-A ") || rule.starts_with("-I ") || rule.starts_with(':'))
                    || rule.contains('\n')
                    || rule.starts_with("-A POSTROUTING")
                {
                    return err(
                        rules.span(),
                        format!(
                            "firewall rule {rule:?} is not one filter-table line in iptables-restore syntax (\"-A CHAIN ...\", \"-I CHAIN ...\" or \":CHAIN POLICY\")"
                        ),
                    );
                }
            }
            Ok(Firewall::Custom(
                rules
                    .get_ref()
                    .iter()
                    .map(|r| r.trim().to_string())
                    .collect(),
            ))
        }
        other => err(
            span,
            format!(
                "unknown firewall {other:?}; expected open, outbound-only, udp-blocked or custom"
            ),
        ),
    }
}

fn validate_wans(wans: &[raw::Wan], sites: &[Site], names: &Names) -> Result<Vec<Wan>, Invalid> {
    let mut seen: HashSet<Attachment> = HashSet::new();
    let mut out = Vec::new();
    for wan in wans {
        let (attach, span) = wan_end(wan, sites, names)?;
        if !seen.insert(attach.clone()) {
            return err(span, "this end already has a WAN link");
        }
        let link = link_params(wan, span)?;
        out.push(Wan { attach, link });
    }
    Ok(out)
}

/// What a WAN link joins to the core (a site's router or a public host), and the span
/// that names it.
fn wan_end(
    wan: &raw::Wan,
    sites: &[Site],
    names: &Names,
) -> Result<(Attachment, Range<usize>), Invalid> {
    match (&wan.site, &wan.host) {
        (Some(s), None) => {
            if !sites.iter().any(|site| &site.name == s.get_ref()) {
                return err(s.span(), format!("no site named {:?}", s.get_ref()));
            }
            Ok((Attachment::Site(s.get_ref().clone()), s.span()))
        }
        (None, Some(h)) => {
            if !names.public_host(h.get_ref()) {
                return err(
                    h.span(),
                    format!(
                        "no public host named {:?} (a WAN link joins the core to a site router or a public host)",
                        h.get_ref()
                    ),
                );
            }
            Ok((Attachment::Host(h.get_ref().clone()), h.span()))
        }
        (Some(s), Some(_)) => err(s.span(), "a [[wan]] names either site or host, not both"),
        (None, None) => err(
            0..0,
            "a [[wan]] entry needs site = \"...\" or host = \"...\"",
        ),
    }
}

/// A WAN link's delay, jitter, loss, rate and MTU, each within bounds; `span` names the
/// link.
fn link_params(wan: &raw::Wan, span: Range<usize>) -> Result<LinkParams, Invalid> {
    let delay = millis(wan.delay_ms.as_ref(), "delay_ms")?;
    let jitter = millis(wan.jitter_ms.as_ref(), "jitter_ms")?;
    if jitter > delay {
        let span = wan.jitter_ms.as_ref().map_or(span, |j| j.span());
        return err(
            span,
            "jitter_ms larger than delay_ms would need negative delays",
        );
    }
    let loss = match &wan.loss {
        Some(l) if !(0.0..1.0).contains(l.get_ref()) => {
            return err(l.span(), "loss is a probability in [0, 1)");
        }
        Some(l) => *l.get_ref(),
        None => 0.0,
    };
    let rate_mbit = match &wan.rate_mbit {
        Some(r)
            if !(r.get_ref().is_finite()
                && *r.get_ref() >= 0.01
                && *r.get_ref() <= MAX_RATE_MBIT) =>
        {
            return err(
                r.span(),
                format!("rate_mbit must be within 0.01 ..= {MAX_RATE_MBIT}"),
            );
        }
        Some(r) => Some(*r.get_ref()),
        None => None,
    };
    let mtu = match &wan.mtu {
        Some(m) if !(MIN_LINK_MTU..=MAX_LINK_MTU).contains(m.get_ref()) => {
            return err(
                m.span(),
                format!("mtu must be within {MIN_LINK_MTU} ..= {MAX_LINK_MTU} bytes"),
            );
        }
        Some(m) => Some(*m.get_ref() as u16),
        None => None,
    };
    Ok(LinkParams {
        delay,
        jitter,
        loss,
        rate_mbit,
        mtu,
    })
}

fn millis(value: Option<&Spanned<f64>>, what: &str) -> Result<Duration, Invalid> {
    match value {
        None => Ok(Duration::ZERO),
        Some(v) if v.get_ref().is_finite() && (0.0..=MAX_DELAY_MS).contains(v.get_ref()) => {
            Ok(Duration::from_secs_f64(v.get_ref() / 1000.0))
        }
        Some(v) => err(
            v.span(),
            format!("{what} must be within 0 ..= {MAX_DELAY_MS}"),
        ),
    }
}

fn validate_overlay(overlay: &raw::Overlay, names: &Names) -> Result<Overlay, Invalid> {
    let mut bootstrap = Vec::new();
    for b in &overlay.bootstrap {
        if !names.host(b.get_ref()) {
            return err(
                b.span(),
                format!(
                    "bootstrap host {:?} is not a host of this topology",
                    b.get_ref()
                ),
            );
        }
        bootstrap.push(b.get_ref().clone());
    }
    let mut namespaces = Vec::new();
    for ns in &overlay.namespaces {
        let range: Ipv4Net = ns.get_ref().range.parse().map_err(|_| Invalid {
            span: ns.span(),
            reason: format!(
                "range {:?} is not an IPv4 CIDR like 10.128.0.0/16",
                ns.get_ref().range
            ),
        })?;
        if range.trunc() != range || range.prefix_len() > 30 {
            return err(
                ns.span(),
                format!("range {range} must be a network address with a prefix of /30 or shorter"),
            );
        }
        if range.contains(&UNDERLAY) || UNDERLAY.contains(&range) {
            return err(
                ns.span(),
                format!("range {range} overlaps the underlay {UNDERLAY}"),
            );
        }
        let lease = ns.get_ref().lease_s;
        if !(1..=MAX_TIMEOUT_S).contains(&lease) {
            return err(
                ns.span(),
                format!("lease_s must be within 1 ..= {MAX_TIMEOUT_S}"),
            );
        }
        namespaces.push(IpopNamespace {
            range,
            lease: Duration::from_secs(lease.unsigned_abs()),
        });
    }
    Ok(Overlay {
        bootstrap,
        namespaces,
    })
}

fn parse_subnet(s: &Spanned<String>) -> Result<Ipv4Net, Invalid> {
    let net: Ipv4Net = s.get_ref().parse().map_err(|_| Invalid {
        span: s.span(),
        reason: format!("{:?} is not an IPv4 CIDR like 198.19.1.0/24", s.get_ref()),
    })?;
    if net.trunc() != net {
        return err(
            s.span(),
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        );
    }
    if !UNDERLAY.contains(&net) {
        return err(
            s.span(),
            format!("{net} is outside the underlay block {UNDERLAY}"),
        );
    }
    if net.prefix_len() > 28 {
        return err(s.span(), format!("{net} is too small; use /28 or larger"));
    }
    Ok(net)
}

fn default_subnet(
    explicit: &[Ipv4Net],
    taken: &[(Ipv4Net, Range<usize>, String)],
) -> Option<Ipv4Net> {
    (1..=255u8)
        .map(|i| Ipv4Net::new_assert(Ipv4Addr::new(198, 19, i, 0), 24))
        .find(|cand| {
            !explicit.iter().any(|e| overlaps(e, cand))
                && !taken.iter().any(|(t, _, _)| overlaps(t, cand))
        })
}

fn check_overlap(
    net: &Ipv4Net,
    span: Range<usize>,
    taken: &[(Ipv4Net, Range<usize>, String)],
) -> Result<(), Invalid> {
    match taken.iter().find(|(t, _, _)| overlaps(t, net)) {
        Some((t, _, owner)) => err(span, format!("subnet {net} overlaps {t} of {owner}")),
        None => Ok(()),
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

fn check_name(name: &Spanned<String>, what: &str) -> Result<(), Invalid> {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.ends_with('-');
    if ok {
        Ok(())
    } else {
        err(
            name.span(),
            format!(
                "{what} name {n:?} must be 1-{MAX_NAME} characters of a-z, 0-9 and '-', starting with a letter"
            ),
        )
    }
}

fn bounded(
    value: Option<&Spanned<i64>>,
    default: i64,
    min: i64,
    max: i64,
    what: &str,
) -> Result<u32, Invalid> {
    let (v, span) = value.map_or((default, 0..0), |v| (*v.get_ref(), v.span()));
    if (min..=max).contains(&v) {
        u32::try_from(v).map_err(|_| Invalid {
            span,
            reason: format!("{what} is out of range"),
        })
    } else {
        err(
            span,
            format!("{what} = {v} is out of range {min} ..= {max}"),
        )
    }
}

/// Every node name of the topology, to catch collisions and dangling references.
#[derive(Default)]
struct Names {
    all: HashSet<String>,
    hosts: HashSet<String>,
    public: HashSet<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Router,
    SiteHost,
    PublicHost,
}

impl Names {
    fn add(&mut self, name: String, kind: Kind, span: Range<usize>) -> Result<(), Invalid> {
        if !self.all.insert(name.clone()) {
            return err(
                span,
                format!("two nodes would be named {name:?}; rename a site or public group"),
            );
        }
        if kind != Kind::Router {
            self.hosts.insert(name.clone());
        }
        if kind == Kind::PublicHost {
            self.public.insert(name);
        }
        Ok(())
    }

    fn host(&self, name: &str) -> bool {
        self.hosts.contains(name)
    }

    fn public_host(&self, name: &str) -> bool {
        self.public.contains(name)
    }
}
