//! Each NAT and firewall profile, observed with the STUN-like probe.

use std::time::Duration;

use wow_harness::{Cmd, Host, Process};
use wow_netns::probe::{Filtering, Mapping, Report};
use wow_netns::topology::{MatrixProfile, nat_matrix};
use wow_netns::{Testbed, topology::NatProfile};

use super::{WOW_BENCH, check, host, parse, up};

/// Starts the probe server on `public-0` (two addresses, ports 3478 and 3479).
fn server(bed: &Testbed) -> (Box<dyn Process>, [String; 2]) {
    let public = host(bed, "public-0");
    let [a1, a2] = [
        public.addresses()[0].to_string(),
        public.addresses()[1].to_string(),
    ];
    let cmd = Cmd::new(WOW_BENCH).args([
        "probe", "server", "--addr", &a1, &a2, "--port", "3478", "3479",
    ]);
    let process = public.spawn(&cmd).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    (process, [format!("{a1}:3478"), format!("{a2}:3479")])
}

fn probe(bed: &Testbed, client: &str, servers: &[String; 2], extra: &[&str]) -> Report {
    let mut cmd = Cmd::new(WOW_BENCH).args([
        "probe",
        "client",
        "--server",
        &servers[0],
        "--alternate",
        &servers[1],
    ]);
    cmd = cmd.args(extra.iter().copied());
    let out = check(&host(bed, client), cmd, Duration::from_secs(30));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe printed {out:?}: {e}"))
}

fn classify(profile: MatrixProfile) -> Report {
    let bed = up(&nat_matrix(profile, profile));
    let (_server, servers) = server(&bed);
    let report = probe(&bed, "a-0", &servers, &["--hairpin"]);
    eprintln!("{profile}: {report:?}");
    report
}

fn assert_class(r: &Report, mapping: Mapping, filtering: Filtering) {
    assert!(!r.blocked, "{r:?}");
    assert_eq!(r.mapping, Some(mapping), "{r:?}");
    assert_eq!(r.filtering, Some(filtering), "{r:?}");
}

#[test]
fn netns_nat_none_is_open() {
    let r = classify(MatrixProfile::Nat(NatProfile::None));
    assert_class(&r, Mapping::NoNat, Filtering::EndpointIndependent);
    assert_eq!(r.mapped, r.local);
}

#[test]
fn netns_nat_full_cone() {
    let r = classify(MatrixProfile::Nat(NatProfile::FullCone));
    assert_class(
        &r,
        Mapping::EndpointIndependent,
        Filtering::EndpointIndependent,
    );
    assert_eq!(r.hairpin, Some(false), "hairpin is off unless asked for");
    assert_ne!(r.mapped, r.local);
}

#[test]
fn netns_nat_address_restricted() {
    let r = classify(MatrixProfile::Nat(NatProfile::AddressRestricted));
    assert_class(
        &r,
        Mapping::EndpointIndependent,
        Filtering::AddressDependent,
    );
    assert_eq!(r.hairpin, Some(false));
}

#[test]
fn netns_nat_port_restricted() {
    let r = classify(MatrixProfile::Nat(NatProfile::PortRestricted));
    assert_class(
        &r,
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
    );
    assert_eq!(r.hairpin, Some(false));
}

#[test]
fn netns_nat_symmetric() {
    let r = classify(MatrixProfile::Nat(NatProfile::Symmetric));
    assert_class(
        &r,
        Mapping::AddressAndPortDependent,
        Filtering::AddressAndPortDependent,
    );
    assert_eq!(r.hairpin, Some(false));
}

#[test]
fn netns_firewall_outbound_only() {
    let r = classify(MatrixProfile::Firewall);
    assert_class(&r, Mapping::NoNat, Filtering::AddressAndPortDependent);
}

#[test]
fn netns_firewall_udp_blocked() {
    let r = classify(MatrixProfile::UdpBlocked);
    assert!(r.blocked, "{r:?}");
}

#[test]
fn netns_nat_hairpin_when_enabled() {
    let bed = up(&parse(
        "name = \"hairpin\"\n\
         [[site]]\nname = \"pr\"\nhosts = 1\nnat = \"port-restricted\"\nhairpin = true\n\
         [[site]]\nname = \"fc\"\nhosts = 1\nnat = \"full-cone\"\nhairpin = true\n\
         [[public]]\nname = \"public\"\naddresses = 2\n",
    ));
    let (_server, servers) = server(&bed);
    for client in ["pr-0", "fc-0"] {
        let r = probe(&bed, client, &servers, &["--hairpin"]);
        assert_eq!(r.hairpin, Some(true), "{client}: {r:?}");
    }
}

#[test]
fn netns_nat_binding_timeout() {
    let bed = up(&parse(
        "name = \"timeout\"\n\
         [[site]]\nname = \"pr\"\nhosts = 1\nnat = \"port-restricted\"\nbinding_timeout_s = 2\n\
         [[site]]\nname = \"fc\"\nhosts = 1\nnat = \"full-cone\"\nbinding_timeout_s = 2\n\
         [[public]]\nname = \"public\"\naddresses = 2\n",
    ));
    let (_server, servers) = server(&bed);
    std::thread::scope(|s| {
        for client in ["pr-0", "fc-0"] {
            let (bed, servers) = (&bed, &servers);
            s.spawn(move || {
                let short = probe(bed, client, servers, &["--idle-ms", "1000"]);
                assert_eq!(
                    short.survives_idle,
                    Some(true),
                    "{client} after 1 s idle: {short:?}"
                );
                let long = probe(bed, client, servers, &["--idle-ms", "3500"]);
                assert_eq!(
                    long.survives_idle,
                    Some(false),
                    "{client} after 3.5 s idle: {long:?}"
                );
            });
        }
    });
}
