//! A raw AF_PACKET socket bound to one interface: whole Ethernet frames in and out.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
        let cname = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        // SAFETY: plain system calls on a C string that outlives them and on structs
        // that are fully initialised before use.
        unsafe {
            let index = libc::if_nametoindex(cname.as_ptr());
            if index == 0 {
                return Err(io::Error::last_os_error());
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let raw = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            );
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let one: libc::c_int = 1;
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)?;
            let buf: libc::c_int = 8 << 20;
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf)?;
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buf)?;
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto;
            addr.sll_ifindex = index as i32;
            let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            if libc::bind(raw, (&raw const addr).cast(), len) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(PacketSocket {
                fd,
                name: name.to_string(),
            })
        }
    }

    /// Reads one frame; `WouldBlock` when none is waiting.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for writes of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Sends one frame out of the interface.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the frame is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// # Safety
/// `fd` must be an open socket.
unsafe fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to `len` readable bytes.
    if unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
