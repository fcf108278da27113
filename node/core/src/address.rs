//! 160-bit ring addresses, ring distance, and Kleinberg far-target sampling.
//!
//! Addresses are positions on a ring of size 2^160. Clockwise ("right") is the direction
//! of increasing addresses, wrapping at 2^160. The ring distance between two addresses is
//! the shorter of the two ways around.

use std::fmt;

use rand::{Rng, RngExt};
use sha1::{Digest, Sha1};

/// A position on the 160-bit ring: a node's P2P address or a DHT key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address([u8; Address::LEN]);

/// An unsigned 160-bit distance along the ring (`0 ..= 2^160 - 1`).
///
/// Ordered numerically: the fields are compared high part first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Distance {
    hi: u32,
    lo: u128,
}

impl Distance {
    /// Half the ring, 2^159: no ring distance is larger.
    pub const HALF: Distance = Distance { hi: 1 << 31, lo: 0 };
    /// The largest representable distance, 2^160 - 1.
    pub const MAX: Distance = Distance {
        hi: u32::MAX,
        lo: u128::MAX,
    };

    /// The distance as a floating-point number (approximate; for estimates only).
    pub fn as_f64(self) -> f64 {
        f64::from(self.hi) * 2f64.powi(128) + self.lo as f64
    }

    /// 2^x for `0 <= x < 160`, rounded to the nearest representable distance.
    fn from_log2(x: f64) -> Distance {
        let x = x.clamp(0.0, 159.999_999);
        let int = x.floor() as u32;
        // 53 significant bits of 2^(x - int) in [1, 2): mantissa * 2^(int - 52).
        let mantissa = (2f64.powf(x - f64::from(int)) * (1u64 << 52) as f64) as u64;
        if int >= 52 {
            Distance::from_u64(mantissa).shl(int - 52)
        } else {
            Distance::from_u64(mantissa >> (52 - int))
        }
    }

    fn from_u64(v: u64) -> Distance {
        Distance {
            hi: 0,
            lo: u128::from(v),
        }
    }

    fn shl(self, n: u32) -> Distance {
        debug_assert!(n < 160);
        if n == 0 {
            self
        } else if n < 128 {
            Distance {
                hi: self.hi.checked_shl(n).unwrap_or(0) | (self.lo >> (128 - n)) as u32,
                lo: self.lo << n,
            }
        } else {
            Distance {
                hi: (self.lo << (n - 128)) as u32,
                lo: 0,
            }
        }
    }
}

impl Address {
    /// Length of an address in bytes.
    pub const LEN: usize = 20;

    /// An address from its big-endian bytes.
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Address(bytes)
    }

    /// The big-endian bytes of the address.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// A uniformly random address.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; Self::LEN];
        rng.fill_bytes(&mut bytes);
        Address(bytes)
    }

    /// The SHA-1 of `data` as an address (used for hash-mode addresses and DHT keys).
    pub fn sha1(data: &[u8]) -> Self {
        let digest = Sha1::digest(data);
        let mut bytes = [0u8; Self::LEN];
        bytes.copy_from_slice(&digest);
        Address(bytes)
    }

    fn parts(self) -> (u32, u128) {
        let b = self.0;
        let hi = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut lo = [0u8; 16];
        lo.copy_from_slice(&b[4..]);
        (hi, u128::from_be_bytes(lo))
    }

    fn from_parts(hi: u32, lo: u128) -> Self {
        let mut bytes = [0u8; Self::LEN];
        bytes[..4].copy_from_slice(&hi.to_be_bytes());
        bytes[4..].copy_from_slice(&lo.to_be_bytes());
        Address(bytes)
    }

    /// Clockwise distance from `self` to `other`: `(other - self) mod 2^160`.
    pub fn cw_distance(self, other: Address) -> Distance {
        let (ah, al) = self.parts();
        let (bh, bl) = other.parts();
        let (lo, borrow) = bl.overflowing_sub(al);
        let hi = bh.wrapping_sub(ah).wrapping_sub(u32::from(borrow));
        Distance { hi, lo }
    }

    /// Ring distance: the shorter way around between `self` and `other`.
    pub fn ring_distance(self, other: Address) -> Distance {
        self.cw_distance(other).min(other.cw_distance(self))
    }

    /// Whether `self` lies strictly inside the clockwise arc from `from` to `to`.
    pub fn in_cw_arc(self, from: Address, to: Address) -> bool {
        let d = from.cw_distance(self);
        d > Distance::default() && d < from.cw_distance(to)
    }

    /// A target for a structured far connection: `self ± d` with `d` drawn from
    /// Kleinberg's harmonic distribution, P(d) ∝ 1/d, between the expected spacing of
    /// `network_size` nodes and half the ring.
    pub fn kleinberg_target<R: Rng + ?Sized>(self, network_size: f64, rng: &mut R) -> Address {
        let n = network_size.max(2.0);
        let min_log2 = (160.0 - n.log2()).clamp(0.0, 158.0);
        let x: f64 = rng.random_range(min_log2..159.0);
        let d = Distance::from_log2(x);
        if rng.random_bool(0.5) {
            self + d
        } else {
            self - d
        }
    }

    /// The first 4 bytes in hex: short enough for logs and tables.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::ops::Add<Distance> for Address {
    type Output = Address;

    /// `self + d` (clockwise), wrapping around the ring.
    fn add(self, d: Distance) -> Address {
        let (h, l) = self.parts();
        let (lo, carry) = l.overflowing_add(d.lo);
        Address::from_parts(h.wrapping_add(d.hi).wrapping_add(u32::from(carry)), lo)
    }
}

impl std::ops::Sub<Distance> for Address {
    type Output = Address;

    /// `self - d` (counter-clockwise), wrapping around the ring.
    fn sub(self, d: Distance) -> Address {
        let (h, l) = self.parts();
        let (lo, borrow) = l.overflowing_sub(d.lo);
        Address::from_parts(h.wrapping_sub(d.hi).wrapping_sub(u32::from(borrow)), lo)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.short())
    }
}

/// Error parsing an address from hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an address is 40 hexadecimal digits")]
pub struct ParseAddressError;

impl std::str::FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::text::hex_bytes(s)
            .map(Address)
            .ok_or(ParseAddressError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn addr(hi: u32, lo: u128) -> Address {
        Address::from_parts(hi, lo)
    }

    #[test]
    fn clockwise_distance_wraps() {
        let a = addr(u32::MAX, u128::MAX); // 2^160 - 1
        let b = addr(0, 1);
        assert_eq!(a.cw_distance(b), Distance { hi: 0, lo: 2 });
        assert_eq!(
            b.cw_distance(a),
            Distance {
                hi: u32::MAX,
                lo: u128::MAX - 1
            }
        );
        assert_eq!(a.ring_distance(b), Distance { hi: 0, lo: 2 });
    }

    #[test]
    fn ring_distance_is_symmetric_and_at_most_half() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for _ in 0..1000 {
            let a = Address::random(&mut rng);
            let b = Address::random(&mut rng);
            assert_eq!(a.ring_distance(b), b.ring_distance(a));
            assert!(a.ring_distance(b) <= Distance::HALF);
            assert_eq!(a + a.cw_distance(b), b);
            assert_eq!(b - a.cw_distance(b), a);
        }
    }

    #[test]
    fn arc_membership() {
        let a = addr(0, 10);
        let b = addr(0, 20);
        assert!(addr(0, 15).in_cw_arc(a, b));
        assert!(!addr(0, 25).in_cw_arc(a, b));
        assert!(!a.in_cw_arc(a, b));
        // the arc that wraps around zero
        assert!(addr(0, 5).in_cw_arc(b, a));
    }

    #[test]
    fn from_log2_matches_powers_of_two() {
        for k in [0u32, 1, 51, 52, 53, 100, 127, 128, 129, 159] {
            let d = Distance::from_log2(f64::from(k));
            assert_eq!(d, Distance::from_u64(1).shl(k), "2^{k}");
        }
        let d = Distance::from_log2(150.5);
        let ratio = d.as_f64() / 2f64.powf(150.5);
        assert!((ratio - 1.0).abs() < 1e-9);
    }

    #[test]
    fn kleinberg_targets_follow_harmonic_distribution() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let me = Address::random(&mut rng);
        let n = 1024.0;
        let mut buckets = [0usize; 10];
        for _ in 0..20_000 {
            let t = me.kleinberg_target(n, &mut rng);
            let log = me.ring_distance(t).as_f64().log2();
            assert!((149.9..=159.0001).contains(&log), "log2 distance {log}");
            buckets[((log - 150.0).max(0.0) as usize).min(9)] += 1;
        }
        // log-uniform: each of the 9 octaves between 2^150 and 2^159 gets about 1/9.
        for &b in &buckets[..9] {
            assert!((1_800..2_700).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let a = Address::random(&mut rng);
        assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        assert!("xyz".parse::<Address>().is_err());
        assert!("é".repeat(20).parse::<Address>().is_err());
    }
}
