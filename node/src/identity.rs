//! The node's P2P address, kept in a file so that it survives restarts.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ipop_core::Address;
use rand::TryRng;

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
