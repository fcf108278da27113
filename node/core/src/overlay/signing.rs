//! End-to-end signatures of routed messages (PROTOCOL.md, "Signed routed messages").
//!
//! Secure edges protect hop by hop; a forwarder could still rewrite a routed message's
//! `src` or payload before sealing it for the next hop. A node with a [`Signer`] appends
//! to every routed message it originates (but tunnels and bulk IP packets) its Ed25519
//! public key and a signature over the fields no forwarder changes; the destination
//! checks that the key is the one of `src` and that the signature verifies.

use super::{Node, Source};
use crate::secure::{self, Identity, SIGNATURE_LEN};
use crate::wire::{self, RoutedFlags, RoutedHeader, SIGNATURE_TRAILER, kind};

/// A node's signing key, and a buffer for what it signs and verifies.
#[derive(Debug)]
pub(super) struct Signer {
    identity: Identity,
    scratch: Vec<u8>,
}

/// `payload` followed by `identity`'s signature trailer for header `h`, which gets the
/// `SIGNED` flag: the payload of a signed routed message (`scratch` holds what is
/// signed). Whatever `h.src` says: the receiver checks that the key is `src`'s.
pub fn sign_payload(
    identity: &Identity,
    h: &mut RoutedHeader,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> Vec<u8> {
    h.flags = h.flags.with(RoutedFlags::SIGNED);
    wire::signing_input(h, payload, scratch);
    let signature = identity.sign(scratch);
    let mut out = Vec::with_capacity(payload.len() + SIGNATURE_TRAILER);
    out.extend_from_slice(payload);
    out.extend_from_slice(&identity.signing_public());
    out.extend_from_slice(&signature);
    out
}

impl Node {
    /// From now on, signs the routed messages this node originates (all but tunnels and
    /// what [`Node::send_routed_unsigned`] sends), and drops overlay control messages
    /// that are neither signed nor received straight from their source over a secure
    /// edge (counted as `unsigned`). `identity` must be the key of this node's address.
    pub fn enable_signatures(&mut self, identity: Identity) {
        assert_eq!(
            identity.address(),
            self.address,
            "a node signs with the key of its own address"
        );
        self.signer = Some(Signer {
            identity,
            scratch: Vec::new(),
        });
    }

    /// Whether this node signs what it originates.
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    /// `payload` followed by the signature trailer for header `h` (which gets the
    /// `SIGNED` flag), or `None` if this node does not sign.
    pub(super) fn sign(&mut self, h: &mut RoutedHeader, payload: &[u8]) -> Option<Vec<u8>> {
        let signer = self.signer.as_mut()?;
        Some(sign_payload(
            &signer.identity,
            h,
            payload,
            &mut signer.scratch,
        ))
    }

    /// Checks the source of a message delivered here, whose payload starts at `offset`
    /// in `buf`: returns where the payload ends (before a signature trailer) and
    /// whether its `src` is verified — by its signature, or because it came straight
    /// from `src` over a secure edge, or because this node originated it. `None` (and
    /// counted) for a trailer that is cut short or does not verify, and, on a node that
    /// signs, for an overlay control message whose source is not verified.
    pub(super) fn check_source(
        &mut self,
        src: Option<Source>,
        h: &RoutedHeader,
        buf: &[u8],
        offset: usize,
    ) -> Option<(usize, bool)> {
        let own = src.is_none() && h.src == self.address;
        let mut verified = own || src.and_then(|s| s.authenticated) == Some(h.src);
        let mut end = buf.len();
        if h.flags.contains(RoutedFlags::SIGNED) {
            let Some(at) = buf
                .len()
                .checked_sub(SIGNATURE_TRAILER)
                .filter(|at| *at >= offset)
            else {
                self.stats.bad_signature += 1;
                return None;
            };
            end = at;
            if !own {
                if !self.verify(h, &buf[offset..at], &buf[at..]) {
                    self.stats.bad_signature += 1;
                    return None;
                }
                verified = true;
            }
        }
        if self.signer.is_some() && !verified && h.kind < kind::FIRST_APP && h.kind != kind::TUNNEL
        {
            self.stats.unsigned += 1;
            return None;
        }
        Some((end, verified))
    }

    /// Whether `trailer` (key, signature) is `h.src`'s signature of `h` and `payload`.
    fn verify(&mut self, h: &RoutedHeader, payload: &[u8], trailer: &[u8]) -> bool {
        let (key, signature) = trailer.split_at(32);
        let (Ok(key), Ok(signature)) = (
            <[u8; 32]>::try_from(key),
            <[u8; SIGNATURE_LEN]>::try_from(signature),
        ) else {
            return false;
        };
        let mut scratch = self
            .signer
            .as_mut()
            .map(|s| std::mem::take(&mut s.scratch))
            .unwrap_or_default();
        wire::signing_input(h, payload, &mut scratch);
        let ok = secure::verify(&h.src, &key, &scratch, &signature);
        if let Some(s) = self.signer.as_mut() {
            s.scratch = scratch;
        }
        ok
    }
}
