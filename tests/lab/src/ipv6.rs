//! IPv6 on the lab's hosts, with the kernel's defaults: link-local addresses
//! that come out of DAD on their own (polled, never switched off), global
//! addresses an operator adds, group members on real sockets
//! (`IPV6_JOIN_GROUP`, `MCAST_JOIN_SOURCE_GROUP`), senders, and a router
//! advertisement sent from a raw ICMPv6 socket.

use std::{
    net::{Ipv6Addr, SocketAddrV6, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{netns::in_netns, run, run_output, wait_for, Host, Lab};

/// How long a fresh address may stay tentative: DAD takes one second
/// (`dad_transmits` 1, `retrans_timer` 1 s) after the link comes up.
const DAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A member of an IPv6 group: a real kernel socket. Joining makes the host's
/// kernel send its MLD reports; dropping the member makes it leave.
pub struct Member6 {
    socket: UdpSocket,
    pub group: Ipv6Addr,
}

impl Member6 {
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

/// `group_source_req` (RFC 3678 §5.2) for IPv6.
#[repr(C)]
struct GroupSourceReq {
    interface: u32,
    group: libc::sockaddr_storage,
    source: libc::sockaddr_storage,
}

fn storage(address: Ipv6Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data, zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in6.
    let in6 =
        unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    in6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    in6.sin6_addr.s6_addr = address.octets();
    storage
}

fn set_int(socket: &impl AsRawFd, level: i32, option: i32, value: i32, what: &str) -> Result<()> {
    // SAFETY: a valid socket and an int option value.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The ifindex of `host`'s interface, in its namespace.
fn ifindex(host: &Host) -> Result<u32> {
    let name = std::ffi::CString::new(host.interface.as_str())?;
    in_netns(&host.netns, || {
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            bail!("{}: no such interface", host.interface);
        }
        Ok(index)
    })
}

/// `IPV6_MULTICAST_ALL` (linux/in6.h): off, a socket gets only its own groups.
const IPV6_MULTICAST_ALL: i32 = 29;

impl Lab {
    /// Forces the MLD version host `index` speaks (1: an MLDv1 host, RFC
    /// 3810 §8.2.1), as an operator does with `force_mld_version`.
    pub fn force_mld_version(&self, index: usize, version: u8) -> Result<()> {
        let host = &self.hosts[index];
        let key = format!(
            "net.ipv6.conf.{}.force_mld_version={version}",
            host.interface
        );
        run(&["ip", "netns", "exec", &host.netns, "sysctl", "-qw", &key])
    }

    /// Makes host `index` a real MLDv2 querier: a Linux bridge in its
    /// namespace with `mcast_querier 1` and `mcast_mld_version 2`, querying
    /// from its own link-local address every `interval_cs` centiseconds.
    /// Its port becomes a router port for the switch, which from its first
    /// query on knows a querier (the bridge forwards by its table only then).
    /// It queries IGMP too, from 0.0.0.0 (it has no IPv4 address), in
    /// IGMPv3: IGMPv2 queries would put every host in IGMPv2, whose report
    /// suppression makes which host sends a Leave a matter of timing.
    pub fn start_mld_querier(&self, index: usize, interval_cs: u32) -> Result<()> {
        let host = &self.hosts[index];
        let (ns, eth) = (&host.netns, &host.interface);
        crate::ip(
            ns,
            &format!(
                "link add brq type bridge mcast_snooping 1 mcast_querier 1 mcast_mld_version 2 \
                 mcast_igmp_version 3 mcast_query_interval {interval_cs} mcast_startup_query_interval {interval_cs} \
                 mcast_query_response_interval 100"
            ),
        )?;
        crate::ip(ns, &format!("link set {eth} master brq"))?;
        crate::ip(ns, "link set brq up")
    }

    /// Host `index`'s IPv6 addresses of `scope` (`link`, `global`) that are
    /// out of DAD (not `tentative`), as `ip -6 -j addr` lists them.
    pub fn addresses6(&self, index: usize, scope: &str) -> Result<Vec<Ipv6Addr>> {
        let host = &self.hosts[index];
        let output = run_output(&[
            "ip",
            "-n",
            &host.netns,
            "-6",
            "-j",
            "addr",
            "show",
            "dev",
            &host.interface,
        ])?;
        let json: serde_json::Value = serde_json::from_str(&output)?;
        let mut addresses = Vec::new();
        for link in json.as_array().into_iter().flatten() {
            for info in link["addr_info"].as_array().into_iter().flatten() {
                let ready = info["tentative"].is_null() && info["dadfailed"].is_null();
                if info["scope"] == scope && ready {
                    if let Some(Ok(address)) = info["local"].as_str().map(str::parse) {
                        addresses.push(address);
                    }
                }
            }
        }
        Ok(addresses)
    }

    /// Host `index`'s link-local address, once DAD has let it go (polled).
    pub fn link_local(&self, index: usize) -> Result<Ipv6Addr> {
        let mut found = None;
        wait_for(DAD_TIMEOUT, || {
            found = self
                .addresses6(index, "link")
                .ok()
                .and_then(|all| all.first().copied());
            found.is_some()
        });
        found.with_context(|| {
            format!(
                "{}: no link-local address out of DAD after {DAD_TIMEOUT:?}",
                self.hosts[index].netns
            )
        })
    }

    /// Adds `address`/64 to host `index`, and waits until DAD lets it go.
    pub fn add_address6(&self, index: usize, address: Ipv6Addr) -> Result<()> {
        let host = &self.hosts[index];
        run(&[
            "ip",
            "-n",
            &host.netns,
            "-6",
            "addr",
            "add",
            &format!("{address}/64"),
            "dev",
            &host.interface,
        ])?;
        if !wait_for(DAD_TIMEOUT, || {
            self.addresses6(index, "global")
                .is_ok_and(|all| all.contains(&address))
        }) {
            bail!("{}: {address} still tentative", host.netns);
        }
        Ok(())
    }

    /// Joins IPv6 `group` from host `index` (IPV6_JOIN_GROUP), the socket
    /// bound to `port`.
    pub fn join6(&self, index: usize, group: Ipv6Addr, port: u16) -> Result<Member6> {
        self.join6_with(index, group, port, None)
    }

    /// Joins (`source`, `group`) from host `index` (MCAST_JOIN_SOURCE_GROUP,
    /// an MLDv2 INCLUDE join), the socket bound to `port`.
    pub fn join_source6(
        &self,
        index: usize,
        group: Ipv6Addr,
        source: Ipv6Addr,
        port: u16,
    ) -> Result<Member6> {
        self.join6_with(index, group, port, Some(source))
    }

    fn join6_with(
        &self,
        index: usize,
        group: Ipv6Addr,
        port: u16,
        source: Option<Ipv6Addr>,
    ) -> Result<Member6> {
        let host = &self.hosts[index];
        let interface = ifindex(host)?;
        let socket = in_netns(&host.netns, || {
            let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
                .with_context(|| format!("{}: binding [::]:{port}", host.netns))?;
            set_int(
                &socket,
                libc::IPPROTO_IPV6,
                IPV6_MULTICAST_ALL,
                0,
                "IPV6_MULTICAST_ALL",
            )?;
            set_int(
                &socket,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                8 << 20,
                "SO_RCVBUFFORCE",
            )?;
            match source {
                None => socket
                    .join_multicast_v6(&group, interface)
                    .with_context(|| format!("{}: joining {group}", host.netns))?,
                Some(source) => {
                    let request = GroupSourceReq {
                        interface,
                        group: storage(group),
                        source: storage(source),
                    };
                    // SAFETY: a valid socket and a correctly sized group_source_req.
                    let result = unsafe {
                        libc::setsockopt(
                            socket.as_raw_fd(),
                            libc::IPPROTO_IPV6,
                            libc::MCAST_JOIN_SOURCE_GROUP,
                            (&request as *const GroupSourceReq).cast(),
                            std::mem::size_of::<GroupSourceReq>() as libc::socklen_t,
                        )
                    };
                    if result != 0 {
                        bail!(
                            "{}: joining ({source}, {group}): {}",
                            host.netns,
                            std::io::Error::last_os_error()
                        );
                    }
                }
            }
            Ok(socket)
        })?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Member6 { socket, group })
    }

    /// Sends `count` UDP datagrams of `size` bytes to IPv6 `group` port
    /// `port` from host `index`, out of its interface.
    pub fn send6(
        &self,
        index: usize,
        group: Ipv6Addr,
        port: u16,
        count: usize,
        size: usize,
    ) -> Result<()> {
        let host = &self.hosts[index];
        let interface = ifindex(host)?;
        let socket = in_netns(&host.netns, || {
            let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
            set_int(
                &socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                interface as i32,
                "IPV6_MULTICAST_IF",
            )?;
            socket.set_multicast_loop_v6(false)?;
            set_int(
                &socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_HOPS,
                8,
                "IPV6_MULTICAST_HOPS",
            )?;
            Ok(socket)
        })?;
        let payload = vec![0x5a; size];
        let to = SocketAddrV6::new(group, port, 0, interface);
        for _ in 0..count {
            socket.send_to(&payload, to)?;
            // Paced so that no receive queue on the way overflows.
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Sends a router advertisement (RFC 4861 §4.2) to ff02::1 from host
    /// `index`, with a Prefix Information option for `prefix`/64 (on-link,
    /// autonomous): hosts with the default `accept_ra` autoconfigure an
    /// address in it. The kernel writes the ICMPv6 checksum (RFC 3542 §3.1).
    pub fn advertise_prefix(&self, index: usize, prefix: Ipv6Addr) -> Result<()> {
        let host = &self.hosts[index];
        let interface = ifindex(host)?;
        let socket = in_netns(&host.netns, || {
            // SAFETY: a plain socket(2) call; the fd is owned right away.
            let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("raw ICMPv6 socket");
            }
            // SAFETY: fd is fresh and ours.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            set_int(
                &socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_HOPS,
                255,
                "IPV6_MULTICAST_HOPS",
            )?;
            set_int(
                &socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                interface as i32,
                "IPV6_MULTICAST_IF",
            )?;
            Ok(socket)
        })?;
        // Type 134, code 0, checksum, cur hop limit 64, flags 0, router
        // lifetime 0 (not a default router), reachable time, retrans timer.
        let mut message = vec![134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // Prefix Information (§4.6.2): type 3, 4 × 8 octets, /64, L and A,
        // valid and preferred lifetimes of an hour and half of it.
        message.extend_from_slice(&[3, 4, 64, 0xc0]);
        message.extend_from_slice(&3600u32.to_be_bytes());
        message.extend_from_slice(&1800u32.to_be_bytes());
        message.extend_from_slice(&[0; 4]);
        message.extend_from_slice(&prefix.octets());
        let mut to: libc::sockaddr_in6 = {
            // SAFETY: sockaddr_in6 is plain old data.
            unsafe { std::mem::zeroed() }
        };
        to.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
        to.sin6_scope_id = interface;
        // SAFETY: a valid socket, buffer and sockaddr_in6 of the stated lengths.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&to as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error())
                .context("sending the router advertisement");
        }
        Ok(())
    }

    /// Runs `ping -6 -c <count>` to `target` (`fe80::…%eth0` for a
    /// link-local one) in host `index`'s namespace; whether every echo came back.
    pub fn ping6(&self, index: usize, target: &str, count: u32) -> Result<bool> {
        let host = &self.hosts[index];
        let status = std::process::Command::new("ip")
            .args(["netns", "exec", &host.netns, "ping", "-6", "-n", "-q", "-c"])
            .arg(count.to_string())
            .args(["-i", "0.2", "-W", "2", target])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running ping -6")?;
        Ok(status.success())
    }
}
