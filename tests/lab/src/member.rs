//! Group members: real kernel sockets in a host namespace. Joining makes the
//! host's kernel send its reports; dropping the member makes it leave.

use std::{
    net::{Ipv4Addr, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{netns::in_netns, Host};

/// UDP port members listen on and senders send to.
pub const DATA_PORT: u16 = 5000;

pub struct Member {
    socket: UdpSocket,
    pub group: Ipv4Addr,
    /// The host's address, the interface the membership is on.
    interface: Ipv4Addr,
}

impl Member {
    pub(crate) fn join(host: &Host, group: Ipv4Addr, source: Option<SourceFilter>) -> Result<Self> {
        let address = host.address;
        let socket = in_netns(&host.netns, || {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, DATA_PORT)).or_else(|_| {
                // Another member on this host holds the port: any port will do for IGMP.
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            })?;
            only_joined_groups(&socket)?;
            roomy_receive_buffer(&socket)?;
            match source {
                None => socket
                    .join_multicast_v4(&group, &address)
                    .with_context(|| format!("{address}: joining {group}"))?,
                Some(SourceFilter::Include(source)) => source_option(
                    &socket,
                    libc::IP_ADD_SOURCE_MEMBERSHIP,
                    group,
                    address,
                    source,
                )?,
                Some(SourceFilter::Exclude(source)) => {
                    socket
                        .join_multicast_v4(&group, &address)
                        .with_context(|| format!("{address}: joining {group}"))?;
                    source_option(&socket, libc::IP_BLOCK_SOURCE, group, address, source)?
                }
            }
            Ok(socket)
        })?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Self {
            socket,
            group,
            interface: address,
        })
    }

    /// Stops receiving the group from `source` (IP_BLOCK_SOURCE on an
    /// any-source membership): the host's filter becomes EXCLUDE {.., source}
    /// and its kernel sends a BLOCK_OLD_SOURCES record (RFC 3376 §5.1).
    pub fn block(&self, source: Ipv4Addr) -> Result<()> {
        source_option(
            &self.socket,
            libc::IP_BLOCK_SOURCE,
            self.group,
            self.interface,
            source,
        )
    }

    /// Counts the datagrams received until none arrives for 200 ms.
    pub fn drain(&self) -> usize {
        let mut buffer = [0u8; 2048];
        let mut received = 0;
        while self.socket.recv(&mut buffer).is_ok() {
            received += 1;
        }
        received
    }
}

/// By default Linux hands a socket every group any socket of the host
/// joined (IP_MULTICAST_ALL); a member must count only its own group.
fn only_joined_groups(socket: &UdpSocket) -> Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket and an int option value.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_ALL,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!("IP_MULTICAST_ALL: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A datagram redirected by XDP into a veth lands in a page-sized buffer:
/// the default receive buffer holds only ~50 of them, fewer than a test
/// sends before it reads. Root may exceed rmem_max (SO_RCVBUFFORCE).
fn roomy_receive_buffer(socket: &UdpSocket) -> Result<()> {
    let bytes: libc::c_int = 8 << 20;
    // SAFETY: a valid socket and an int option value.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!("SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `count` datagrams of `size` bytes to `group` from `host`.
pub(crate) fn send(host: &Host, group: Ipv4Addr, count: usize, size: usize) -> Result<()> {
    let socket = in_netns(&host.netns, || {
        let socket = UdpSocket::bind((host.address, 0))?;
        socket.set_multicast_ttl_v4(8)?;
        socket.set_multicast_loop_v4(false)?;
        Ok(socket)
    })?;
    let payload = vec![0x5a; size];
    for _ in 0..count {
        socket.send_to(&payload, (group, DATA_PORT))?;
        // Paced so that no receive queue on the way overflows.
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// A source-specific membership (IGMPv3 INCLUDE or EXCLUDE, RFC 3678).
#[derive(Clone, Copy, Debug)]
pub enum SourceFilter {
    /// Receive the group from this source only.
    Include(Ipv4Addr),
    /// Receive the group from every source but this one.
    Exclude(Ipv4Addr),
}

/// IP_ADD_SOURCE_MEMBERSHIP or IP_BLOCK_SOURCE for (`source`, `group`).
fn source_option(
    socket: &UdpSocket,
    option: libc::c_int,
    group: Ipv4Addr,
    interface: Ipv4Addr,
    source: Ipv4Addr,
) -> Result<()> {
    let address = |ip: Ipv4Addr| libc::in_addr {
        s_addr: u32::from_ne_bytes(ip.octets()),
    };
    let request = libc::ip_mreq_source {
        imr_multiaddr: address(group),
        imr_interface: address(interface),
        imr_sourceaddr: address(source),
    };
    // SAFETY: a valid socket and a correctly sized ip_mreq_source.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            option,
            (&request as *const libc::ip_mreq_source).cast(),
            std::mem::size_of::<libc::ip_mreq_source>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!(
            "{interface}: ({source}, {group}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
