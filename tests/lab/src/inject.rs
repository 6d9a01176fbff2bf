//! Raw frames put on a host's wire (AF_PACKET), for what a kernel client
//! never sends: spoofed hosts, crafted and malformed packets.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{bail, Context as _, Result};

use crate::{netns::in_netns, Host};

/// Sends `frame` (a whole Ethernet frame) out of the host's interface.
pub fn inject(host: &Host, frame: &[u8]) -> Result<()> {
    Injector::open(host)?
        .send(frame)
        .context("sending a raw frame")
}

/// Sends every frame of `frames` out of the host's interface through one
/// socket, paced so that the veth ring on the way (256 frames) never
/// overflows: a frame lost there would never reach the XDP program.
/// Returns how many frames the kernel refused to send.
pub fn inject_all(host: &Host, frames: &[Vec<u8>]) -> Result<usize> {
    const BURST: usize = 32;
    let injector = Injector::open(host)?;
    let mut refused = 0;
    for (n, frame) in frames.iter().enumerate() {
        if injector.send(frame).is_err() {
            refused += 1;
        }
        if n % BURST == BURST - 1 {
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }
    Ok(refused)
}

/// An AF_PACKET socket on a host's interface, opened once: made in the
/// host's namespace, it sends there from whichever thread uses it.
pub struct Injector {
    socket: OwnedFd,
    ifindex: i32,
}

impl Injector {
    pub fn open(host: &Host) -> Result<Self> {
        let interface = host.interface.clone();
        in_netns(&host.netns, || {
            Ok(Self {
                socket: packet_socket()?,
                ifindex: ifindex(&interface)?,
            })
        })
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = self.ifindex;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: valid buffer and address of the stated lengths.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn ifindex(interface: &str) -> Result<i32> {
    let name = CString::new(interface)?;
    // SAFETY: if_nametoindex reads a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("{interface}: no such interface");
    }
    Ok(ifindex as i32)
}

/// An AF_PACKET socket, made in the calling thread's namespace.
fn packet_socket() -> Result<OwnedFd> {
    // SAFETY: a plain socket(2) call; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
