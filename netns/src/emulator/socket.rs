//! A raw AF_PACKET socket bound to one interface: whole Ethernet frames in and out.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket,
    sockopt,
};

/// Frames the socket reads may be this long (a jumbo frame; offloads are off).
pub(crate) const MAX_FRAME: usize = 65_536;

#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
    name: String,
}

impl PacketSocket {
    /// Opens a non-blocking socket on interface `name` of the caller's namespace that
    /// sees every frame the interface receives, but not the ones it sends.
    pub(crate) fn open(name: &str) -> io::Result<PacketSocket> {
        let index = if_nametoindex(name)?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        ignore_outgoing(&fd)?;
        setsockopt(&fd, sockopt::RcvBufForce, &(8 << 20))?;
        setsockopt(&fd, sockopt::SndBufForce, &(8 << 20))?;
        bind_to(&fd, index)?;
        Ok(PacketSocket {
            fd,
            name: name.to_string(),
        })
    }

    /// Reads one frame; `WouldBlock` when none is waiting.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(recv(self.fd.as_raw_fd(), buf, MsgFlags::empty())?)
    }

    /// Sends one frame out of the interface.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        send(self.fd.as_raw_fd(), frame, MsgFlags::empty())?;
        Ok(())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sets `PACKET_IGNORE_OUTGOING`: raw libc, as nix has no option for it.
fn ignore_outgoing(fd: &OwnedFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `one` is a readable c_int of `len` bytes for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            (&raw const one).cast(),
            len,
        )
    };
    Errno::result(rc)?;
    Ok(())
}

/// Binds the socket to interface `index` for every protocol: raw libc, as nix cannot
/// build a `sockaddr_ll` (its `LinkAddr` has no constructor).
fn bind_to(fd: &OwnedFd, index: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a fully initialised sockaddr_ll of `len` bytes.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    Errno::result(rc)?;
    Ok(())
}
