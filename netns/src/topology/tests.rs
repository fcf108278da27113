use super::*;

fn parse(text: &str) -> Result<Topology, TopologyError> {
    Topology::parse(text, "t.toml")
}

fn error_at(text: &str) -> (usize, String) {
    match parse(text) {
        Err(TopologyError::Invalid(e)) => {
            assert_eq!(e.file, "t.toml");
            (e.at.line, e.reason)
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

const DESIGN_EXAMPLE: &str = r#"name = "wan-3site"
[[site]]
name = "ufl"
nat = "port-restricted"
firewall = "outbound-only"
hosts = 4
[[site]]
name = "lsu"
nat = "symmetric"
hosts = 2
[[public]]
name = "public"
[[wan]]
site = "lsu"
delay_ms = 17
jitter_ms = 1
loss = 0.001
rate_mbit = 100
[overlay]
bootstrap = ["public-0"]
namespaces = [{ range = "10.128.0.0/16", lease_s = 43200 }]
"#;

#[test]
fn design_example_parses_with_defaults() {
    let t = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(t.core, DEFAULT_CORE);
    assert_eq!(t.sites.len(), 2);
    assert_eq!(t.sites[0].subnet.to_string(), "198.19.1.0/24");
    assert_eq!(t.sites[1].subnet.to_string(), "198.19.2.0/24");
    assert_eq!(t.sites[0].nat, NatProfile::PortRestricted);
    assert_eq!(t.sites[0].firewall, Firewall::OutboundOnly);
    assert_eq!(t.sites[1].firewall, Firewall::Open);
    let wan = &t.wans[0];
    assert_eq!(wan.attach, Attachment::Site("lsu".into()));
    assert_eq!(wan.link.delay, Duration::from_millis(17));
    assert_eq!(wan.link.rate_mbit, Some(100.0));
    assert_eq!(t.overlay.bootstrap, ["public-0"]);
    assert_eq!(t.overlay.namespaces[0].lease, Duration::from_secs(43200));
    assert_eq!(
        t.host_names(),
        [
            "ufl-0", "ufl-1", "ufl-2", "ufl-3", "lsu-0", "lsu-1", "public-0"
        ]
    );
}

#[test]
fn unknown_key_is_reported_with_its_line() {
    let text = DESIGN_EXAMPLE.replace("hosts = 2", "hosts = 2\nhostz = 3");
    let (line, reason) = error_at(&text);
    assert_eq!(line, 11, "{reason}");
    assert!(reason.contains("hostz"), "{reason}");
}

#[test]
fn overlapping_subnets_are_refused() {
    let text = "name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 1\nsubnet = \"198.19.0.0/16\"\n\
                [[site]]\nname = \"b\"\nhosts = 1\nsubnet = \"198.19.7.0/24\"\n";
    let (line, reason) = error_at(text);
    assert_eq!(line, 9);
    assert!(
        reason.contains("overlaps 198.19.0.0/16 of site a"),
        "{reason}"
    );
    let (line, reason) =
        error_at("name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 1\nsubnet = \"198.18.4.0/24\"\n");
    assert_eq!(line, 5);
    assert!(reason.contains("the core"), "{reason}");
}

#[test]
fn impossible_values_are_refused() {
    let cases = [
        ("hosts = 0", "hosts = 0 is out of range"),
        ("hosts = 300\nsubnet = \"198.19.1.0/24\"", "do not fit"),
        (
            "hosts = 1\nsubnet = \"10.0.0.0/24\"",
            "outside the underlay",
        ),
        ("hosts = 1\nsubnet = \"198.19.1.1/24\"", "host bits"),
        ("hosts = 1\nnat = \"cone\"", "unknown nat profile"),
        ("hosts = 1\nfirewall = \"strict\"", "unknown firewall"),
        ("hosts = 1\nfirewall = \"custom\"", "needs firewall_rules"),
        (
            "hosts = 1\nfirewall = \"custom\"\nfirewall_rules = [\"-t nat -A X\"]",
            "not one filter-table line",
        ),
        ("hosts = 1\nhairpin = true", "hairpin needs a NAT"),
        (
            "hosts = 1\nnat = \"symmetric\"\nbinding_timeout_s = 0",
            "binding_timeout_s = 0",
        ),
        (
            "hosts = 1\nbinding_timeout_s = 30",
            "needs a NAT or a stateful firewall",
        ),
    ];
    for (keys, want) in cases {
        let text = format!("name = \"x\"\n[[site]]\nname = \"a\"\n{keys}\n");
        let (line, reason) = error_at(&text);
        assert!(reason.contains(want), "{keys}: {reason}");
        assert!(line >= 4, "{keys}: line {line}");
    }
    let wan_cases = [
        ("site = \"zz\"", "no site named"),
        ("host = \"a-0\"", "no public host"),
        ("site = \"a\"\ndelay_ms = -1", "delay_ms must be"),
        (
            "site = \"a\"\ndelay_ms = 1\njitter_ms = 2",
            "negative delays",
        ),
        ("site = \"a\"\nloss = 1.0", "loss is a probability"),
        ("site = \"a\"\nrate_mbit = 0", "rate_mbit"),
        ("site = \"a\"\nmtu = 100", "mtu must be within"),
    ];
    for (keys, want) in wan_cases {
        let text = format!("name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 1\n[[wan]]\n{keys}\n");
        let (line, reason) = error_at(&text);
        assert!(reason.contains(want), "{keys}: {reason}");
        assert!(line >= 6, "{keys}: line {line}");
    }
}

#[test]
fn names_must_be_unique_and_references_must_exist() {
    let (_, reason) = error_at(
        "name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 2\n[[public]]\nname = \"a\"\ncount = 1\n",
    );
    assert!(
        reason.contains("two nodes would be named \"a-0\""),
        "{reason}"
    );
    let (line, reason) = error_at(
        "name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 1\n[overlay]\nbootstrap = [\"a-gw\"]\n",
    );
    assert_eq!(line, 6);
    assert!(reason.contains("not a host"), "{reason}");
    let (_, reason) = error_at("name = \"Bad Name\"\n");
    assert!(reason.contains("must be 1-24 characters"), "{reason}");
}

#[test]
fn syntax_errors_carry_a_position() {
    let (line, _) = error_at("name = \"x\"\n[[site]\n");
    assert_eq!(line, 2);
}

#[test]
fn shipped_topologies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Some(t.name.as_str()),
                path.file_stem().and_then(|s| s.to_str())
            );
            seen.push(t);
        }
    }
    for name in ["lan", "wan-3site", "wow-6domain", "planetlab-118"] {
        assert!(
            seen.iter().any(|t| t.name == name),
            "{name}.toml is shipped"
        );
    }
    let pl = seen.iter().find(|t| t.name == "planetlab-118").unwrap();
    let public: u32 = pl.public.iter().map(|g| g.count).sum();
    assert_eq!(public, 118);
    assert!(
        pl.sites
            .iter()
            .all(|s| s.nat != NatProfile::None || s.firewall != Firewall::Open)
    );
}

#[test]
fn nat_matrix_is_valid_for_every_pair() {
    for a in MatrixProfile::ALL {
        assert_eq!(MatrixProfile::from_name(a.as_str()), Some(a));
        for b in MatrixProfile::ALL {
            let t = nat_matrix(a, b);
            assert_eq!(t.host_names(), ["a-0", "b-0", "public-0"]);
            assert_eq!(t.public[0].addresses, 2);
        }
    }
    let t = nat_matrix(MatrixProfile::Firewall, MatrixProfile::UdpBlocked);
    assert_eq!(t.sites[0].firewall, Firewall::OutboundOnly);
    assert_eq!(t.sites[1].firewall, Firewall::UdpBlocked);
    assert_eq!(t.sites[1].nat, NatProfile::None);
}
