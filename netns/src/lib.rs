//! `wow-netns` turns a topology file into Linux network namespaces that behave like
//! sites on the Internet: LAN bridges, NAT routers with iptables rule sets, stateful
//! firewalls, and WAN links emulated by our own userspace link emulator.
//!
//! Nothing here is linked to the machine's root namespace, every underlay address comes
//! from 198.18.0.0/15, and every namespace, link and process it creates carries a per-run
//! prefix so that it can be removed on success, error, Ctrl-C, panic, or by `wow-bench clean`.
