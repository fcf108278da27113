//! The node's identity, kept in files so that it survives restarts: its P2P address
//! (plain edges), or its private key, from which the address derives, and the overlay's
//! admission secret (secure edges).

use std::path::Path;

use anyhow::{Context, Result, bail};
use ipop_core::Address;
use ipop_core::ipop::NamespaceKey;
use ipop_core::secure::Identity;
use ipop_core::text::to_hex;
use rand::TryRng;

/// Reads the node's private key from `path` (64 hexadecimal digits), or creates the file
/// with a new key.
pub fn load_or_create_key(path: &Path) -> Result<Identity> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let private = ipop_core::text::hex_bytes::<32>(&text).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: not a private key (64 hexadecimal digits); delete the file to get a new \
                     key (and with it a new P2P address)",
                    path.display()
                )
            })?;
            Ok(Identity::from_private(private))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::from_private(random32("a new key")?);
            let text = format!("{}\n", to_hex(&identity.private()));
            crate::private_file::write(path, &text, "key file")?;
            Ok(identity)
        }
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// The overlay's admission secrets, as a secret file holds them: the one the node
/// prefers, and those it also holds during a rotation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The first line's: preferred.
    pub preferred: [u8; 32],
    /// The further lines': also held (at most `MAX_SECRETS - 1`).
    pub also: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(<{} secrets>)", 1 + self.also.len())
    }
}

/// Reads the overlay's admission secrets from `path`: one secret (64 hexadecimal digits)
/// per line, the preferred first, at most [`MAX_SECRETS`](ipop_core::secure::MAX_SECRETS);
/// blank lines and lines starting with `#` are skipped.
pub fn read_secrets(path: &Path) -> Result<Secrets> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the overlay secret {}", path.display()))?;
    let mut secrets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let secret = ipop_core::text::hex_bytes::<32>(line).ok_or_else(|| {
            anyhow::anyhow!(
                "{}:{}: not an overlay secret (64 hexadecimal digits); make one with `ipop-node secret`",
                path.display(),
                n + 1
            )
        })?;
        if secrets.len() == ipop_core::secure::MAX_SECRETS {
            bail!(
                "{}:{}: more than {} secrets (a rotation needs two: the new one and the old)",
                path.display(),
                n + 1,
                ipop_core::secure::MAX_SECRETS
            );
        }
        secrets.push(secret);
    }
    let Some((&preferred, also)) = secrets.split_first() else {
        bail!(
            "{}: no overlay secret in it (64 hexadecimal digits); make one with `ipop-node secret`",
            path.display()
        );
    };
    Ok(Secrets {
        preferred,
        also: also.to_vec(),
    })
}

/// Reads a namespace key from `path` (64 hexadecimal digits).
pub fn read_namespace_key(path: &Path) -> Result<NamespaceKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the namespace key {}", path.display()))?;
    text.parse().with_context(|| {
        format!(
            "{}: not a namespace key (64 hexadecimal digits, written by `ipop-node namespace \
             create --key-file`)",
            path.display()
        )
    })
}

/// Reads the namespace key in `path`, or writes a new one there (owner-only); says
/// whether it was new.
pub fn load_or_create_namespace_key(path: &Path) -> Result<(NamespaceKey, bool)> {
    if path.exists() {
        return Ok((read_namespace_key(path)?, false));
    }
    let key = NamespaceKey::from_bytes(random32("a namespace key")?);
    crate::private_file::write(path, &format!("{}\n", key.to_hex()), "namespace key file")?;
    Ok((key, true))
}

/// A new overlay secret, as the 64 hexadecimal digits `read_secret` takes.
pub fn new_secret() -> Result<String> {
    Ok(to_hex(&random32("a new secret")?))
}

fn random32(what: &str) -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .with_context(|| format!("no operating-system randomness for {what}"))?;
    Ok(bytes)
}

/// Reads the address from `path`, or creates the file with a new random address.
pub fn load_or_create(path: &Path) -> Result<Address> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: not a P2P address (40 hexadecimal digits); delete the file to get a new one",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; Address::LEN];
            rand::rngs::SysRng
                .try_fill_bytes(&mut bytes)
                .context("no operating-system randomness for a new address")?;
            let address = Address::from_bytes(bytes);
            save(path, address)?;
            Ok(address)
        }
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// Writes the address atomically, owner-only.
fn save(path: &Path, address: Address) -> Result<()> {
    crate::private_file::write(path, &format!("{address}\n"), "address file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_survives_a_restart_and_gives_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/key");
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a.address(), b.address());
        assert_eq!(a.address(), Address::sha1(&a.public()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        std::fs::write(&path, "zz").unwrap();
        let e = load_or_create_key(&path).unwrap_err().to_string();
        assert!(e.contains("64 hexadecimal digits"), "{e}");
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let s = new_secret().unwrap();
        std::fs::write(&path, format!("{s}\n")).unwrap();
        let one = read_secrets(&path).unwrap();
        assert_eq!((to_hex(&one.preferred), one.also.len()), (s.clone(), 0));
        // A rotation's file: the new secret first, the old one kept, a comment.
        let new = new_secret().unwrap();
        std::fs::write(&path, format!("# rotating\n{new}\n\n{s}\n")).unwrap();
        let two = read_secrets(&path).unwrap();
        assert_eq!(to_hex(&two.preferred), new);
        assert_eq!(
            two.also.iter().map(|x| to_hex(x)).collect::<Vec<_>>(),
            std::slice::from_ref(&s)
        );
        std::fs::write(&path, format!("{s}\n{}\n", &s[..63])).unwrap();
        let e = read_secrets(&path).unwrap_err().to_string();
        assert!(
            e.contains(":2: not an overlay secret") && e.contains("ipop-node secret"),
            "{e}"
        );
        std::fs::write(&path, format!("{s}\n").repeat(5)).unwrap();
        let e = read_secrets(&path).unwrap_err().to_string();
        assert!(e.contains(":5: more than 4 secrets"), "{e}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(read_secrets(&path).is_err());
        assert!(read_secrets(&dir.path().join("missing")).is_err());
        assert_eq!(ipop_core::text::hex_bytes::<32>(&"é".repeat(32)), None);
    }

    #[test]
    fn the_address_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/address");
        let a = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), a);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "address file mode {mode:o}");
        std::fs::write(&path, "garbage").unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("40 hexadecimal digits"), "{e}");
    }
}
