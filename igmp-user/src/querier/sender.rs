//! Sending whole frames out of a port (AF_PACKET), so that queries leave
//! from 0.0.0.0 or any configured address without a route or an IP on the port.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::interfaces::interface_name;

pub struct QuerySender {
    socket: OwnedFd,
}

impl QuerySender {
    /// A raw socket in the current network namespace.
    pub fn new() -> io::Result<Self> {
        // SAFETY: a plain socket(2) call; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Self {
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends `frame` (starting with its Ethernet header) out of port `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
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
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The MAC address of port `ifindex` (SIOCGIFHWADDR).
pub fn interface_mac(ifindex: u32) -> io::Result<[u8; 6]> {
    let name = CString::new(interface_name(ifindex)).map_err(io::Error::other)?;
    // SAFETY: ifreq is plain old data.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a datagram socket only used for the ioctl, owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCGIFHWADDR fills the ifreq we pass.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFHWADDR the union holds ifru_hwaddr.
    let hardware = unsafe { request.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (slot, byte) in mac.iter_mut().zip(hardware.sa_data.iter()) {
        *slot = *byte as u8;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_mac_and_a_query_can_be_sent_on_it() {
        assert_eq!(interface_mac(1).unwrap(), [0; 6]);
        let frame = crate::querier::general_query(
            crate::querier::QueryVersion::V2,
            std::net::Ipv4Addr::UNSPECIFIED,
            [0; 6],
            &crate::timers::Timers::default(),
        );
        QuerySender::new().unwrap().send(1, &frame).unwrap();
    }
}
