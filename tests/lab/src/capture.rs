//! Frames seen on a host's wire (AF_PACKET), to check what a switch sent.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{netns::in_netns, Host};

const ETH_P_ALL: u16 = 0x0003;
/// The capture's receive buffer.
const CAPTURE_BUFFER_BYTES: libc::c_int = 16 << 20;

/// A raw socket receiving every frame arriving at a host's interface.
pub struct Capture {
    socket: OwnedFd,
}

impl Capture {
    pub(crate) fn start(host: &Host) -> Result<Self> {
        let interface = host.interface.clone();
        let socket = in_netns(&host.netns, || {
            let name = std::ffi::CString::new(interface.as_str())?;
            // SAFETY: if_nametoindex reads a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            let protocol = ETH_P_ALL.to_be();
            // SAFETY: a plain socket(2) call; the fd is owned right away.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
            }
            // SAFETY: fd is fresh and ours.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain old data.
            let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_protocol = protocol;
            address.sll_ifindex = ifindex as i32;
            // SAFETY: a valid sockaddr_ll of the stated length.
            let bound = unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    (&address as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if bound != 0 {
                return Err(std::io::Error::last_os_error()).context("binding the capture");
            }
            Ok(socket)
        })?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        // Room for every frame of a test's burst: on 6.1 each frame a veth
        // received from an XDP redirect is charged a whole page, and the
        // default buffer (208 KiB) overflowed at a router port's 80 frames.
        let buffer: libc::c_int = CAPTURE_BUFFER_BYTES;
        // SAFETY: a valid int for SO_RCVBUFFORCE (the tests run as root).
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&buffer as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Ok(Self { socket })
    }

    /// Every frame received during `duration` (incoming and outgoing), and
    /// every frame still queued then: on a slow machine (a guest kernel under
    /// emulation) reading the queue takes longer than filling it did. A wire
    /// that never falls silent is read for ten times `duration` at most.
    pub fn frames_for(&self, duration: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut frames = Vec::new();
        let mut buffer = vec![0u8; 9216];
        while start.elapsed() < duration * 10 {
            match self.receive(&mut buffer, 0) {
                Some(read) => frames.push(buffer[..read].to_vec()),
                None if start.elapsed() >= duration => break,
                None => {}
            }
        }
        frames
    }

    /// Whether a frame `wanted` accepts arrives within `timeout`; returns
    /// as soon as one does.
    pub fn wait_for(&self, timeout: Duration, wanted: impl Fn(&[u8]) -> bool) -> bool {
        let until = Instant::now() + timeout;
        let mut buffer = vec![0u8; 9216];
        while Instant::now() < until {
            if self
                .receive(&mut buffer, 0)
                .is_some_and(|read| wanted(&buffer[..read]))
            {
                return true;
            }
        }
        false
    }

    /// Forgets every frame queued so far.
    pub fn drain(&self) {
        let mut buffer = vec![0u8; 9216];
        while self.receive(&mut buffer, libc::MSG_DONTWAIT).is_some() {}
    }

    /// One frame, or None once the receive timeout passes.
    fn receive(&self, buffer: &mut [u8], flags: libc::c_int) -> Option<usize> {
        // SAFETY: reading into a buffer we own, of the stated length.
        let read = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                flags,
            )
        };
        usize::try_from(read).ok().filter(|read| *read > 0)
    }
}
