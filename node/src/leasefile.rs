//! The lease file: one line per virtual address this node holds, with the password of
//! its DHT key, so that a restarted or moved node keeps its addresses.
//!
//! Format: `IP MAC PASSWORD-HEX`, MAC as `aa:bb:cc:dd:ee:ff` or `-`.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Result, bail};

/// One held address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The virtual address.
    pub ip: Ipv4Addr,
    /// The host MAC that holds it (None for static addresses).
    pub mac: Option<[u8; 6]>,
    /// The DHT key's password.
    pub password: Vec<u8>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn parse_mac(s: &str) -> Option<Option<[u8; 6]>> {
    if s == "-" {
        return Some(None);
    }
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(parts).ok().map(Some)
}

/// Reads the file (a missing file holds nothing).
pub fn load(path: &Path) -> Result<Vec<Held>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let held = (f.len() == 3)
            .then(|| {
                Some(Held {
                    ip: f[0].parse().ok()?,
                    mac: parse_mac(f[1])?,
                    password: unhex(f[2])?,
                })
            })
            .flatten();
        match held {
            Some(h) => out.push(h),
            None => bail!(
                "{}:{}: expected `IP MAC PASSWORD-HEX`",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(out)
}

/// Writes the file atomically, owner-only (it holds the leases' passwords).
pub fn save(path: &Path, held: &[Held]) -> Result<()> {
    let mut text = String::new();
    for h in held {
        let mac = h.mac.map_or("-".to_owned(), |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        });
        text += &format!("{} {mac} {}\n", h.ip, ipop_core::text::to_hex(&h.password));
    }
    crate::private_file::write(path, &text, "lease file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn leases_round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        assert!(load(&path).unwrap().is_empty());
        let held = vec![
            Held {
                ip: "10.1.2.3".parse().unwrap(),
                mac: Some([2, 0, 0, 0, 0, 9]),
                password: vec![1, 2, 255],
            },
            Held {
                ip: "10.1.2.4".parse().unwrap(),
                mac: None,
                password: vec![7],
            },
        ];
        save(&path, &held).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "lease file mode {mode:o}");
        assert_eq!(load(&path).unwrap(), held);
        std::fs::write(&path, "10.1.2.3 - 0102\nnonsense\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.ends_with(":2: expected `IP MAC PASSWORD-HEX`"), "{e}");
    }
}
