//! OpenVPN 2.6 peer-to-peer tunnels over UDP, one per member other than the hub, each
//! from that member to the hub (OpenVPN's peer-to-peer mode joins exactly two hosts;
//! its server mode is not set up here). With TLS, each member makes its own
//! self-signed certificate (P-256) with `openssl`, and each end pins the other's by
//! its SHA-256 fingerprint (`--peer-fingerprint`); the data channel is AES-256-GCM.
//! `openvpn-none` runs the same tunnels with no encryption and no authentication, as a
//! reference for the cost of OpenVPN's userspace packet path alone.

use std::net::Ipv4Addr;

use anyhow::Context;
use wow_experiments::SubjectKind;
use wow_host::Cmd;

use super::{Peer, Plan, run};

/// The first tunnel's UDP port on the hub (tunnel `k` uses `BASE_PORT + k`).
const BASE_PORT: u16 = 1194;

/// One end of a tunnel.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct End {
    pub(super) dev: String,
    pub(super) local: Ipv4Addr,
    pub(super) peer: Ipv4Addr,
    pub(super) port: u16,
    /// The hub's underlay address, on the member's end (the hub's end waits).
    pub(super) remote: Option<Ipv4Addr>,
    /// TLS: this end's certificate and key files and the other end's fingerprint.
    pub(super) tls: Option<(String, String, String)>,
}

/// The `openvpn` arguments of one end.
pub(super) fn args(end: &End) -> Vec<String> {
    let mut a: Vec<String> = [
        "--dev",
        &end.dev,
        "--dev-type",
        "tun",
        "--proto",
        "udp",
        "--ifconfig",
        &end.local.to_string(),
        &end.peer.to_string(),
        "--disable-dco",
        "--verb",
        "3",
    ]
    .map(String::from)
    .to_vec();
    match end.remote {
        Some(hub) => a.extend(
            [
                "--remote",
                &hub.to_string(),
                &end.port.to_string(),
                "--nobind",
            ]
            .map(String::from),
        ),
        None => a.extend(["--lport", &end.port.to_string(), "--float"].map(String::from)),
    }
    match &end.tls {
        Some((cert, key, fingerprint)) => {
            let role = if end.remote.is_some() {
                "--tls-client"
            } else {
                "--tls-server"
            };
            a.extend(
                [
                    role,
                    "--dh",
                    "none",
                    "--cert",
                    cert,
                    "--key",
                    key,
                    "--peer-fingerprint",
                    fingerprint,
                    "--data-ciphers",
                    "AES-256-GCM",
                ]
                .map(String::from),
            );
        }
        None => a.extend(["--cipher", "none", "--auth", "none"].map(String::from)),
    }
    a
}

/// The fingerprint in `openssl x509 -fingerprint -sha256` output.
pub(super) fn fingerprint(openssl_output: &str) -> Option<String> {
    let value = openssl_output.trim().split_once('=')?.1.trim();
    (value.len() == 95).then(|| value.to_string())
}

/// Makes the certificates (with TLS) and starts both ends of every tunnel; the
/// interfaces to wait for.
pub(super) fn start(plan: &Plan<'_>, peer: &mut Peer<'_>) -> anyhow::Result<Vec<(usize, String)>> {
    let tls = plan.kind == SubjectKind::Openvpn;
    let (cert, key) = (plan.path("cert.pem"), plan.path("key.pem"));
    let mut fingerprints = Vec::new();
    for m in plan.members.iter().filter(|_| tls) {
        run(
            m.host,
            Cmd::new("openssl").args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={}", m.name),
            ]),
        )
        .with_context(|| format!("{}: openssl req (certificate)", m.name))?;
        let out = run(
            m.host,
            Cmd::new("openssl").args(["x509", "-in", &cert, "-noout", "-fingerprint", "-sha256"]),
        )?;
        fingerprints.push(
            fingerprint(&out).with_context(|| format!("{}: no fingerprint in {out:?}", m.name))?,
        );
    }
    let hub = plan.hub();
    let mut ready = Vec::new();
    for (k, (i, m)) in plan
        .members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != plan.hub)
        .enumerate()
    {
        let port = BASE_PORT + u16::try_from(k)?;
        let hub_dev = format!("ovpn{k}");
        let tls_of =
            |other: usize| tls.then(|| (cert.clone(), key.clone(), fingerprints[other].clone()));
        let hub_end = End {
            dev: hub_dev.clone(),
            local: hub.overlay,
            peer: m.overlay,
            port,
            remote: None,
            tls: tls_of(i),
        };
        let member_end = End {
            dev: "ovpn0".into(),
            local: m.overlay,
            peer: hub.overlay,
            port,
            remote: Some(hub.underlay),
            tls: tls_of(plan.hub),
        };
        peer.spawn(hub, &Cmd::new("openvpn").args(args(&hub_end)))?;
        peer.spawn(m, &Cmd::new("openvpn").args(args(&member_end)))?;
        ready.push((plan.hub, hub_dev));
        ready.push((i, "ovpn0".to_string()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_plain_ends() {
        let fp = "AB:".repeat(31) + "CD";
        assert_eq!(
            fingerprint(&format!("sha256 Fingerprint={fp}\n")),
            Some(fp.clone())
        );
        assert_eq!(fingerprint("garbage"), None);
        let member = End {
            dev: "ovpn0".into(),
            local: Ipv4Addr::new(10, 200, 0, 2),
            peer: Ipv4Addr::new(10, 200, 0, 1),
            port: 1194,
            remote: Some(Ipv4Addr::new(198, 19, 1, 10)),
            tls: Some(("c.pem".into(), "k.pem".into(), fp.clone())),
        };
        let line = args(&member).join(" ");
        assert!(line.contains("--ifconfig 10.200.0.2 10.200.0.1"), "{line}");
        assert!(
            line.contains("--remote 198.19.1.10 1194 --nobind --tls-client"),
            "{line}"
        );
        assert!(line.contains(&format!(
            "--peer-fingerprint {fp} --data-ciphers AES-256-GCM"
        )));
        let hub = End {
            remote: None,
            tls: None,
            ..member
        };
        let line = args(&hub).join(" ");
        assert!(
            line.contains("--lport 1194 --float --cipher none --auth none"),
            "{line}"
        );
    }
}
