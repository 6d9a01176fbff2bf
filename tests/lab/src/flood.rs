//! A host sending raw frames as fast as one socket can: a spoofed report
//! flood, or a batch of crafted reports.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{netns::in_netns, Host};

/// Sends `frame_for(0)`, `frame_for(1)`, ... out of the host's interface
/// for `duration`, back to back; returns how many frames went out.
pub fn flood(
    host: &Host,
    duration: Duration,
    mut frame_for: impl FnMut(u64) -> Vec<u8> + Send,
) -> Result<u64> {
    let interface = host.interface.clone();
    in_netns(&host.netns, move || {
        let socket = RawSocket::open(&interface)?;
        let end = Instant::now() + duration;
        let mut sent = 0u64;
        while Instant::now() < end {
            if socket.send(&frame_for(sent))? {
                sent += 1;
            }
        }
        Ok(sent)
    })
}

/// Sends every frame of `frames` out of the host's interface, back to back.
pub fn send_frames(host: &Host, frames: &[Vec<u8>]) -> Result<()> {
    let interface = host.interface.clone();
    in_netns(&host.netns, move || {
        let socket = RawSocket::open(&interface)?;
        for frame in frames {
            while !socket.send(frame)? {}
        }
        Ok(())
    })
}

/// An AF_PACKET socket sending whole Ethernet frames out of one interface.
struct RawSocket {
    socket: OwnedFd,
    address: libc::sockaddr_ll,
}

impl RawSocket {
    fn open(interface: &str) -> Result<Self> {
        let name = CString::new(interface)?;
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("{interface}: no such interface");
        }
        // SAFETY: a plain socket(2) call; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
        Ok(Self { socket, address })
    }

    /// Sends one frame; false when the interface had no room (ENOBUFS).
    fn send(&self, frame: &[u8]) -> Result<bool> {
        // SAFETY: valid buffer and address of the stated lengths.
        let result = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if result >= 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ENOBUFS) {
            return Ok(false);
        }
        Err(error).context("sending a raw frame")
    }
}
