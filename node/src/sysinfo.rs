//! Facts about this process that benchmarks report.

/// Peak resident set size of this process in MiB (`VmHWM` in /proc/self/status), if the
/// platform reports it.
pub fn peak_rss_mib() -> Option<f64> {
    proc_status_mib("VmHWM:")
}

/// Resident set size of this process now, in MiB (`VmRSS`), if the platform reports it.
pub fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_reported_on_linux() {
        let rss = super::peak_rss_mib().expect("Linux reports VmHWM");
        assert!(rss > 0.1 && rss < 100_000.0, "{rss}");
        // (The peak is updated lazily: VmRSS may read a little above VmHWM.)
        let now = super::rss_mib().expect("Linux reports VmRSS");
        assert!(now > 0.1 && now < 100_000.0, "{now}");
    }
}
