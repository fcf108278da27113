use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<HostsFile, HostsError> {
    HostsFile::parse(text, "hosts.toml", Path::new("/etc/wow"))
}

/// The error's `line:column: reason`, for matching.
fn error(text: &str) -> String {
    match parse(text) {
        Err(HostsError::Invalid(e)) => format!("{}:{}: {}", e.at.line, e.at.column, e.reason),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Fails with the actual message unless the error contains `needle`.
fn expect(text: &str, needle: &str) {
    let e = error(text);
    assert!(e.contains(needle), "{e:?} does not contain {needle:?}");
}

const MIN: &str = "[defaults]\nuser = \"wow\"\nkey = \"id\"\n[[host]]\nname = \"a\"\naddress = \"198.18.0.2\"\nroles = [\"bootstrap\"]\n";

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../hosts.example.toml");
    let file = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.hosts.len(), 3);
    assert_eq!(file.with_role(Role::Bootstrap).count(), 2);
    let lsu = &file.hosts[2];
    assert_eq!(lsu.target.auth, Auth::Agent);
    assert_eq!(lsu.target.user, "wowlsu");
    assert_eq!(lsu.work_dir, "/scratch/wow");
    assert_eq!(lsu.node_args, ["--log-level", "debug"]);
    let jump = lsu.target.jump.as_ref().expect("jump host");
    assert_eq!(
        (jump.address.as_str(), jump.port),
        ("gw.lsu.example.org", 2222)
    );
    assert_eq!(file.hosts[1].udp_port, 4500);
    assert_eq!(file.hosts[1].tcp_port, ipop_api::DEFAULT_PORT);
    assert_eq!(file.hosts[0].work_dir, ".wow-bench/ufl-1");
}

#[test]
fn defaults_apply_and_paths_resolve() {
    let file = parse(MIN).unwrap();
    let h = &file.hosts[0];
    assert_eq!(h.target.port, 22);
    assert_eq!(h.target.auth, Auth::KeyFile("/etc/wow/id".into()));
    assert_eq!(h.target.host_key.check, HostKeyCheck::AcceptNew);
    assert_eq!(h.target.connect_timeout, Duration::from_secs(10));
    let port = ipop_api::DEFAULT_PORT;
    assert_eq!((h.udp_port, h.tcp_port), (port, port));
    assert_eq!(h.work_dir, ".wow-bench/a");
    assert_eq!(file.overlay.name, "wow");
    assert!(h.target.jump.is_none());
}

#[test]
fn mistakes_are_refused_with_line_and_advice() {
    let with = |extra: &str| format!("{MIN}{extra}\n");
    expect(&with("colour = 1"), "unknown field `colour`");
    assert_eq!(
        error(
            "[defaults]\nkey = \"id\"\n[[host]]\nname = \"a\"\naddress = \"x\"\nroles = [\"bootstrap\"]\n"
        ),
        "4:8: no user: set `user` here or in [defaults]"
    );
    expect(
        "[[host]]\nname = \"a\"\naddress = \"x\"\nuser = \"u\"\nroles = [\"bootstrap\"]\n",
        "no credentials: set key",
    );
    expect(
        &with("[[host]]\nname = \"a\"\naddress = \"y\""),
        "9:8: duplicate name",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\nroles = [\"server\"]"),
        "11:10: unknown role \"server\"",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\njump = \"gw\""),
        "11:8: no [[jump]] named \"gw\"",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"u@y\""),
        "user and port are separate keys",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\nport = 70000"),
        "not in 1-65535",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\nagent = true\nkey = \"k\""),
        "either `key` or `agent = true`",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\nwork_dir = \"../x\""),
        "no '..'",
    );
    expect(
        &with(
            "[[host]]\nname = \"b\"\naddress = \"y\"\nnode_args = [\"--bootstrap=udp://1.2.3.4:1\"]",
        ),
        "must not set --bootstrap",
    );
    expect(
        &with("[[host]]\nname = \"b\"\naddress = \"y\"\nhost_key_check = \"yes\""),
        "accept-new",
    );
    expect(
        "[defaults]\nuser = \"wow\"\nkey = \"id\"\n[[host]]\nname = \"a\"\naddress = \"x\"\n",
        "no host has role \"bootstrap\"",
    );
    expect("", "no [[host]]");
}

#[test]
fn hosts_override_defaults_and_jumps_inherit_them() {
    let text = "[defaults]\nuser = \"wow\"\nagent = true\nconnect_timeout_s = 2.5\n\
        [[jump]]\nname = \"gw\"\naddress = \"gw.example\"\n\
        [[host]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"bootstrap\", \"client\"]\njump = \"gw\"\nkey = \"/k\"\nuser = \"me\"\n";
    let file = parse(text).unwrap();
    let h = &file.hosts[0];
    assert_eq!(h.target.auth, Auth::KeyFile("/k".into()));
    assert_eq!(h.target.user, "me");
    assert!(h.has(Role::Client) && !h.has(Role::Router));
    let jump = h.target.jump.as_ref().unwrap();
    assert_eq!((jump.user.as_str(), &jump.auth), ("wow", &Auth::Agent));
    assert_eq!(jump.connect_timeout, Duration::from_millis(2500));
}

#[test]
fn the_docs_show_the_example_file() {
    let doc = include_str!("../../FLEET.md");
    assert!(doc.contains(include_str!("../../hosts.example.toml")));
}

#[test]
fn the_overlay_secret_sits_beside_the_hosts_file_unless_insecure() {
    let file = parse(MIN).unwrap();
    assert_eq!(
        file.overlay.secret_file.as_deref(),
        Some(Path::new("/etc/wow/wow.secret"))
    );
    let named = format!("[overlay]\nname = \"lab\"\nsecret_file = \"keys/s\"\n{MIN}");
    assert_eq!(
        parse(&named).unwrap().overlay.secret_file.as_deref(),
        Some(Path::new("/etc/wow/keys/s"))
    );
    let plain = format!("[overlay]\ninsecure = true\n{MIN}");
    assert_eq!(parse(&plain).unwrap().overlay.secret_file, None);
    expect(
        &format!("[overlay]\ninsecure = true\nsecret_file = \"s\"\n{MIN}"),
        "3:15: secret_file and insecure = true exclude each other",
    );
}
