//! The configuration file: parsing, defaults, and refusals with file, line and reason.
use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("node.toml")).map_err(|e| e.to_string())
}

#[test]
fn the_example_documents_exactly_the_defaults() {
    assert_eq!(parse(EXAMPLE).unwrap(), Config::default());
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn fields_parse() {
    let c = parse(
        "overlay = \"grid\"\nudp_listen = \"198.18.0.2:4500\"\ntcp_listen = \"off\"\n\
         bootstrap = [\"udp://198.18.0.1:4000\", \"tcp://198.18.0.1:4000\"]\n\
         [protocol]\nkeepalive_s = 2\nedge_timeout_s = 6\n",
    )
    .unwrap();
    assert_eq!(c.overlay, "grid");
    assert_eq!(c.tcp_listen, Listen(None));
    assert_eq!(c.bootstrap.len(), 2);
    assert_eq!(c.overlay_config().edge_timeout, Duration::from_secs(6));
}

#[test]
fn bad_files_name_the_line_and_reason() {
    let e = parse("overlay = \"x\"\n\nbootstrap = [\"http://1.2.3.4:5\"]\n").unwrap_err();
    assert!(e.starts_with("node.toml:3:"), "{e}");
    assert!(e.contains("udp://"), "{e}");
    let e = parse("overlay = \"x\"\nlisten = \"1.2.3.4:5\"\n").unwrap_err();
    assert!(e.starts_with("node.toml:2:") && e.contains("listen"), "{e}");
    let e = parse("udp_listen = \"nowhere\"\n").unwrap_err();
    assert!(e.starts_with("node.toml:1:") && e.contains("off"), "{e}");
    let e = parse("log_level = \"loud[\"\n").unwrap_err();
    assert!(e.contains("log level"), "{e}");
    let e = parse("[ipop]\nnamespace = \"abc\"\n").unwrap_err();
    assert!(
        e.starts_with("node.toml:2:") && e.contains("32 hexadecimal"),
        "{e}"
    );
    let e = parse("[ipop]\nmapping = \"arp\"\n").unwrap_err();
    assert!(e.contains("\"dht\" or \"hash\""), "{e}");
}

#[test]
fn rejected_relations_name_the_line_of_the_key_at_fault() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "udp_listen = \"off\"\ntcp_listen = \"off\"\n",
            2,
            "needs one",
        ),
        (
            "tcp_listen = \"off\"\n# UDP too\n\nudp_listen = \"off\"\n",
            4,
            "needs one",
        ),
        ("log_level = \"info\"\noverlay = \" \"\n", 2, "overlay name"),
        ("control_socket = \"\"\n", 1, "control_socket"),
        ("[protocol]\nkeepalive_s = 20\n", 2, "edge_timeout_s"),
        (
            "[protocol]\nedge_timeout_s = 6\n\nkeepalive_s = 6\n",
            4,
            "above keepalive_s",
        ),
        ("[protocol]\nkeepalive_s = 0\n", 2, "keepalive_s = 0"),
        ("[protocol]\nedge_timeout_s = inf\n", 2, "at most 86400"),
        ("protocol.near_per_side = 9\n", 1, "between 1 and 8"),
        ("[protocol]\nnear_per_side = 0\n", 2, "between 1 and 8"),
        ("[protocol]\nmax_connections = 0\n", 2, "at least 5"),
        (
            "[protocol]\nmax_connections = 6\nnear_per_side = 3\n",
            3,
            "max_connections = 6: must be at least 7",
        ),
        ("\n[ipop]\ntap = \"a-much-too-long-name\"\n", 3, "1 to 15"),
        (
            "[ipop]\nmapping = \"hash\"\n",
            2,
            "exactly one static address",
        ),
        (
            "[ipop]\nmapping = \"hash\"\nstatic_addresses = [\"10.0.0.1\", \"10.0.0.2\"]\n",
            3,
            "exactly one static address",
        ),
        (
            "ipop = { static_addresses = [\"0.0.0.0\"] }\n",
            1,
            "not a unicast",
        ),
        ("[ipop]\nlease_file = \"\"\n", 2, "lease_file"),
        ("[ipop]\nshortcut_idle_s = -1\n", 2, "shortcut_idle_s = -1"),
        (
            "[dht]\nsub_keys = 5\nmajority = 2\n",
            3,
            "majority = 2 of 5",
        ),
        ("[dht]\nsub_keys = 0\n", 2, "sub_keys = 0"),
    ];
    for (text, line, reason) in cases {
        let e = parse(text).unwrap_err();
        assert!(
            e.starts_with(&format!("node.toml:{line}: ")) && e.contains(reason),
            "{text:?} gave {e:?}, wanted line {line} and {reason:?}"
        );
    }
}

#[test]
fn shortcut_idle_reaches_the_overlay() {
    let c = parse("[ipop]\nshortcut_idle_s = 7.5\n").unwrap();
    assert_eq!(
        c.overlay_config().shortcut_idle,
        Duration::from_millis(7500)
    );
    assert_eq!(
        Config::default().overlay_config().shortcut_idle,
        ipop_core::overlay::Config::default().shortcut_idle
    );
}

#[test]
fn hash_mode_with_one_static_address_is_accepted() {
    let c = parse("[ipop]\nmapping = \"hash\"\nstatic_addresses = [\"10.1.0.7\"]\n").unwrap();
    assert_eq!(c.ipop.mapping.0, ipop_core::ipop::Mapping::Hash);
}
