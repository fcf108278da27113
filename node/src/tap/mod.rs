//! The TAP device: a layer-2 virtual interface the host's IP stack and DHCP client use.
//!
//! Where the kernel allows, the device runs with offloads (`IFF_VNET_HDR`, TSO, checksum
//! offload): the host's TCP stack hands over super-frames of up to 64 KiB and takes
//! coalesced ones, and the node cuts and merges them around the protocol core, which
//! only ever sees MTU-sized frames ([`offload`], [`coalesce`]).

pub mod coalesce;
pub mod offload;

use std::io;

use anyhow::{Context, Result};
use ipop_core::Stack;
use tracing::info;
use tun_rs::{AsyncDevice, DeviceBuilder, Layer};

use crate::faults::{IoFaults, Op};
use coalesce::Coalescer;
use offload::Splitter;

/// The TAP device, and its offload state when it has offloads.
pub struct Tap {
    dev: AsyncDevice,
    offload: Option<Box<(Splitter, Coalescer)>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("offload", &self.offload.is_some())
            .finish_non_exhaustive()
    }
}

fn build(name: &str, mtu: u16, offload: bool) -> io::Result<AsyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .layer(Layer::L2)
        .mtu(mtu)
        .offload(offload)
        .enable(true)
        .build_async()
}

impl Tap {
    /// Creates TAP device `name` with `mtu`, up; with offloads unless the kernel
    /// refuses them or `offload` is false.
    pub fn open(name: &str, mtu: u16, offload: bool) -> Result<Tap> {
        let with = if offload {
            build(name, mtu, true).ok()
        } else {
            None
        };
        let offloads = with.is_some();
        let dev = match with {
            Some(dev) => dev,
            None => build(name, mtu, false).with_context(|| {
                format!(
                    "cannot create TAP device {name:?} (/dev/net/tun): run as root or grant CAP_NET_ADMIN (setcap cap_net_admin+ep ipop-node)"
                )
            })?,
        };
        info!(tap = name, offloads, "TAP device created");
        Ok(Tap {
            dev,
            offload: offloads.then(Box::default),
        })
    }

    /// Whether the device runs with offloads.
    pub fn offloads(&self) -> bool {
        self.offload.is_some()
    }

    /// Waits until a frame can be read.
    pub async fn readable(&self) -> io::Result<()> {
        self.dev.readable().await
    }

    /// Sets the device's MTU.
    pub fn set_mtu(&self, mtu: u16) -> io::Result<()> {
        self.dev.set_mtu(mtu)
    }

    /// Reads one frame without blocking (`buf` is used when there are no offloads) and
    /// calls `each` with the frames it stands for. Returns how many there were.
    pub fn read(&mut self, buf: &mut [u8], mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        match self.offload.as_deref_mut() {
            None => {
                let n = self.dev.try_recv(buf)?;
                each(&buf[..n]);
                Ok(1)
            }
            Some((split, _)) => {
                let n = self.dev.try_recv(&mut split.raw)?;
                split
                    .split(n, each)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// Writes the frames the stack has for the TAP (see [`write_frames`]).
    pub fn write_frames(
        &mut self,
        stack: &mut Stack,
        buf: &mut Vec<u8>,
        faults: &mut IoFaults,
    ) -> Result<u64> {
        let dev = &self.dev;
        let coalescer = self.offload.as_deref_mut().map(|(_, c)| c);
        write_frames(stack, buf, faults, coalescer, |f| dev.try_send(f))
    }
}

/// Writes the frames the stack has for the TAP with `write`, which must not block: a
/// full TAP (`WouldBlock`) drops the frame, counted in `faults` like any other failed
/// write. With a `coalescer` (a TAP with offloads), frames are merged and get the virtio
/// header. Returns the frames written; an error only if the TAP is gone.
pub fn write_frames(
    stack: &mut Stack,
    buf: &mut Vec<u8>,
    faults: &mut IoFaults,
    coalescer: Option<&mut Coalescer>,
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> Result<u64> {
    let mut written = 0;
    let mut out = |bytes: &[u8], frames: usize| match write(bytes) {
        Ok(_) => {
            written += frames as u64;
            Ok(())
        }
        Err(e) => faults.handle(Op::TapWrite, &e),
    };
    match coalescer {
        None => {
            while stack.poll_tap(buf) {
                out(buf, 1)?;
            }
        }
        Some(c) => {
            while stack.poll_tap(buf) {
                c.push(buf, &mut out)?;
            }
            c.flush(&mut out)?;
        }
    }
    buf.resize(crate::vnet::TAP_BUF, 0);
    Ok(written)
}

#[cfg(test)]
mod tests;
