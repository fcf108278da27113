//! The papers' figures that our experiments reproduce, as data, with their sources.
//!
//! IPOP paper (Ganguly et al., "IP over P2P", 2006), section IV-B:
//! - Table I: mean of 1000 ping RTTs. The TCP-edge and UDP-edge runs were made at
//!   different times, each with its own physical baseline, so each setting has two
//!   physical figures; we keep both as a range.
//! - Tables II and III: ttcp TCP throughput in KB/s (ttcp's K is 1024 bytes), converted
//!   here to Mbit/s with × 1024 × 8 / 10⁶. The paper's "IPOP-UDP" rows are TCP transfers
//!   over an overlay whose edges are UDP; it has no figure for UDP traffic itself.

use crate::experiment::{PaperFigure, Stat};
use crate::subject::SubjectKind;

/// ttcp KB/s to Mbit/s.
fn kbps_to_mbit(kbps: f64) -> f64 {
    (kbps * 1024.0 * 8.0 / 1e6 * 100.0).round() / 100.0
}

fn figure(stat: Stat, a: f64, b: f64, source: String) -> PaperFigure {
    PaperFigure {
        stat,
        low: a.min(b),
        high: a.max(b),
        source,
    }
}

/// Table I: mean ping RTT in ms for `subject` on a LAN or WAN path (none for the peer
/// VPNs, which the paper did not measure).
pub fn rtt(subject: SubjectKind, wan: bool) -> Option<PaperFigure> {
    let (setting, physical, overlay) = if wan {
        ("WAN F4 → V1", (38.801, 34.492), (48.539, 45.896))
    } else {
        ("LAN F2 → F4", (0.898, 0.625), (7.832, 6.859))
    };
    let (rows, (a, b)) = match subject {
        SubjectKind::Physical => ("physical, TCP-run and UDP-run rows", physical),
        SubjectKind::Ipop => ("IPOP-TCP and IPOP-UDP rows", overlay),
        _ => return None,
    };
    Some(figure(
        Stat::Mean,
        a,
        b,
        format!("IPOP paper Table I, {setting}, {rows} (mean of 1000 pings)"),
    ))
}

/// Tables II (LAN) and III (WAN): mean TCP throughput in Mbit/s (none for the peer VPNs).
pub fn tcp_throughput(subject: SubjectKind, wan: bool) -> Option<PaperFigure> {
    let (table, physical, overlay) = if wan {
        (
            "Table III, WAN F4 → V1, 13.09 and 92.97 MB",
            (1419.0, 1538.0),
            (673.0, 1239.0),
        )
    } else {
        (
            "Table II, LAN F2 → F4, 92.97 MB",
            (8255.0, 9416.0),
            (1905.0, 2389.0),
        )
    };
    let (rows, (a, b)) = match subject {
        SubjectKind::Physical => ("physical rows", physical),
        SubjectKind::Ipop => ("IPOP-TCP and IPOP-UDP rows", overlay),
        _ => return None,
    };
    Some(figure(
        Stat::Mean,
        kbps_to_mbit(a),
        kbps_to_mbit(b),
        format!("IPOP paper {table}, {rows} ({a}–{b} KB/s ttcp, K = 1024 B)"),
    ))
}

/// Table I as the paper prints it.
pub const TABLE_I: &str = "\
IPOP paper, Table I: mean and standard deviation of 1000 ping RTTs (ms). The TCP and
UDP columns are two runs at different times, each with its own physical baseline.

| setting | subject | mean | std. dev | subject | mean | std. dev |
|---|---|---|---|---|---|---|
| LAN (F2 → F4) | physical | 0.898 | 2.843 | physical | 0.625 | 0.214 |
| LAN (F2 → F4) | IPOP-TCP | 7.832 | 21.704 | IPOP-UDP | 6.859 | 3.180 |
| WAN (F4 → V1) | physical | 38.801 | 6.541 | physical | 34.492 | 0.702 |
| WAN (F4 → V1) | IPOP-TCP | 48.539 | 3.117 | IPOP-UDP | 45.896 | 9.782 |
";

/// Tables II and III as the paper prints them, with our Mbit/s conversion.
pub const TABLES_II_III: &str = "\
IPOP paper, Tables II (LAN, 92.97 MB) and III (WAN, 13.09 / 92.97 MB): ttcp TCP
throughput in KB/s (K = 1024 B; Mbit/s = KB/s × 0.008192). IPOP-TCP and IPOP-UDP name
the overlay's edge transport; the traffic measured is TCP in every row.

| setting | subject | KB/s | Mbit/s | IPOP / physical |
|---|---|---|---|---|
| LAN | physical | 8255 | 67.62 | |
| LAN | IPOP-TCP | 2389 | 19.57 | 29 % |
| LAN | physical | 9416 | 77.14 | |
| LAN | IPOP-UDP | 1905 | 15.61 | 20 % |
| WAN | physical | 1419 / 1419 | 11.62 | |
| WAN | IPOP-TCP | 673 / 688 | 5.51 / 5.64 | 47 % / 48 % |
| WAN | physical | 1538 / 1531 | 12.60 / 12.54 | |
| WAN | IPOP-UDP | 1239 / 1150 | 10.15 / 9.42 | 81 % / 75 % |
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_match_the_tables() {
        let lan = rtt(SubjectKind::Physical, false).unwrap();
        assert_eq!((lan.low, lan.high), (0.625, 0.898));
        let wan = rtt(SubjectKind::Ipop, true).unwrap();
        assert_eq!((wan.low, wan.high), (45.896, 48.539));
        let tcp = tcp_throughput(SubjectKind::Physical, false).unwrap();
        assert_eq!((tcp.low, tcp.high), (67.62, 77.14));
        let wan = tcp_throughput(SubjectKind::Physical, true).unwrap();
        assert_eq!((wan.low, wan.high), (11.62, 12.6));
        assert_eq!(rtt(SubjectKind::Tinc, false), None);
        assert!(TABLES_II_III.contains("| 67.62 |") && TABLE_I.contains("38.801"));
    }
}
