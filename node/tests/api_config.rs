//! The configuration a deployer writes with `ipop_api::config::NodeConfig` is a
//! `node.toml` the node accepts, and means what its fields say.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipop_api::config::NodeConfig;
use ipop_node::config::{Config, Listen};

fn written(config: &NodeConfig) -> Config {
    let text = toml::to_string(config).unwrap();
    Config::parse(&text, Path::new("node.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_node_reads_what_a_deployer_writes() {
    let boot = ipop_api::uris("198.18.0.1", 4000, 4001);
    let mut config = NodeConfig {
        overlay: "grid".into(),
        udp_listen: "0.0.0.0:4500".into(),
        tcp_listen: "off".into(),
        bootstrap: boot.to_vec(),
        address_file: "/srv/ipop/address".into(),
        control_socket: "/srv/ipop/ipop.sock".into(),
        log_level: "debug".into(),
        overlay_secret: None,
        key_file: None,
    };
    let c = written(&config);
    assert_eq!(c.overlay, "grid");
    assert_eq!(
        c.udp_listen,
        Listen(Some("0.0.0.0:4500".parse::<SocketAddr>().unwrap()))
    );
    assert_eq!(c.tcp_listen, Listen(None));
    let uris: Vec<String> = c.bootstrap.iter().map(|u| u.0.to_string()).collect();
    assert_eq!(uris, boot);
    assert_eq!(c.address_file, PathBuf::from("/srv/ipop/address"));
    assert_eq!(c.control_socket, PathBuf::from("/srv/ipop/ipop.sock"));
    assert_eq!(c.log_level.0, "debug");
    assert_eq!(
        (c.overlay_secret, c.key_file),
        (None, Config::default().key_file)
    );

    config.overlay_secret = Some("/srv/ipop/overlay.secret".into());
    config.key_file = Some("/srv/ipop/key".into());
    let c = written(&config);
    assert_eq!(c.overlay_secret, config.overlay_secret);
    assert_eq!(c.key_file, PathBuf::from("/srv/ipop/key"));
}

#[test]
fn the_default_port_is_the_nodes() {
    let port = ipop_api::DEFAULT_PORT;
    let listen = Listen(Some(SocketAddr::from(([0, 0, 0, 0], port))));
    assert_eq!(Config::default().udp_listen, listen);
    assert_eq!(Config::default().tcp_listen, listen);
}
