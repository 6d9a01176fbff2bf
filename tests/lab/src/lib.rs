//! A switched LAN of network namespaces: a switch namespace holding a Linux
//! bridge whose ports are veth pairs to one namespace per host, or NICs
//! cabled in pairs (`Lab::on_nics`, in a guest of the kernel matrix). Everything
//! is named after a unique prefix and removed on drop, so labs of parallel
//! tests never see each other.
//!
//! Hosts speak IPv6 too, with the kernel's defaults (`ipv6.rs`).
//!
//! This crate does not depend on the daemon: the demo (xtask) and the tests
//! both drive it, and xtask must build before the XDP toolchain exists.

mod capture;
mod flood;
mod inject;
mod ipv6;
mod member;
mod netns;

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

pub use capture::Capture;
pub use inject::Injector;
pub use ipv6::Member6;
pub use member::{Member, SourceFilter, DATA_PORT};
pub use netns::{in_netns, run, run_output};

/// How the bridge snoops: its own snooping off (igmp-snoop does it) or on
/// (the Linux bridge as the reference peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeSnooping {
    Off,
    On,
}

/// One host of the lab.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address on the LAN (10.0.0.<n>/24).
    pub address: Ipv4Addr,
    /// Its interface in its namespace.
    pub interface: String,
    /// The bridge port it is plugged into, in the switch namespace.
    pub port: String,
}

pub struct Lab {
    pub prefix: String,
    /// The switch namespace, holding `br0` and the ports.
    pub switch: String,
    pub hosts: Vec<Host>,
    /// Namespaces of the hubs (`add_hub`).
    hubs: Vec<String>,
    daemon: Option<Child>,
    log: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Held while a lab takes NICs, so that two labs never take the same one.
static TAKING_NICS: Mutex<()> = Mutex::new(());

/// How a host is cabled to its switch port.
enum Wire {
    /// A veth pair, made for it.
    Veth,
    /// Two NICs cabled to each other: the host takes the first, the switch
    /// the second, as its port.
    Nics(String, String),
}

impl Lab {
    /// A lab of `hosts` hosts on a bridge with the given snooping.
    pub fn new(hosts: usize, snooping: BridgeSnooping) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("igl{}x{n}", std::process::id());
        Self::with_prefix(&prefix, hosts, snooping)
    }

    pub fn with_prefix(prefix: &str, hosts: usize, snooping: BridgeSnooping) -> Result<Self> {
        let mut lab = Self::with_prefix_and_bridge(prefix, snooping)?;
        for index in 1..=hosts {
            lab.add_host(index, Wire::Veth)?;
        }
        ip(&lab.switch, "link set br0 up")?;
        Ok(lab)
    }

    /// A lab of `hosts` hosts whose wires are NICs rather than veths: each
    /// host and its switch port are two virtio_net NICs that qemu cables to
    /// each other (`cargo xtask vm --nics`: the 1st and 2nd, the 3rd and 4th,
    /// ...), so a frame redirected to a port leaves through a real driver
    /// (`ndo_xdp_xmit`). The NICs go back to the root namespace on drop,
    /// where the next such lab waits for them.
    pub fn on_nics(hosts: usize, snooping: BridgeSnooping) -> Result<Self> {
        let _taking = TAKING_NICS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut nics = Vec::new();
        // A deleted namespace gives its NICs back some time after the delete.
        wait_for(Duration::from_secs(60), || {
            nics = virtio_nics();
            nics.len() >= 2 * hosts
        });
        if nics.len() < 2 * hosts {
            bail!(
                "{hosts} hosts on NICs need {} virtio_net NICs, found {} (cargo xtask vm --nics)",
                2 * hosts,
                nics.len()
            );
        }
        let mut lab = Self::with_prefix_and_bridge(
            &format!(
                "igl{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            snooping,
        )?;
        for (index, pair) in (1..=hosts).zip(nics.chunks(2)) {
            lab.add_host(index, Wire::Nics(pair[0].clone(), pair[1].clone()))?;
        }
        ip(&lab.switch, "link set br0 up")?;
        Ok(lab)
    }

    fn with_prefix_and_bridge(prefix: &str, snooping: BridgeSnooping) -> Result<Self> {
        let lab = Self {
            prefix: prefix.to_string(),
            switch: format!("{prefix}-sw"),
            hosts: Vec::new(),
            hubs: Vec::new(),
            daemon: None,
            log: std::env::temp_dir().join(format!("{prefix}-daemon.log")),
        };
        netns::add(&lab.switch)?;
        let snooping = if snooping == BridgeSnooping::On { 1 } else { 0 };
        ip(
            &lab.switch,
            &format!("link add br0 type bridge mcast_snooping {snooping}"),
        )?;
        ip(&lab.switch, "link set lo up")?;
        Ok(lab)
    }

    fn add_host(&mut self, index: usize, wire: Wire) -> Result<()> {
        let host = Host {
            netns: format!("{}-h{index}", self.prefix),
            address: Ipv4Addr::new(10, 0, 0, index as u8),
            interface: "eth0".into(),
            port: format!("p{index}"),
        };
        netns::add(&host.netns)?;
        let (sw, ns, port, eth) = (&self.switch, &host.netns, &host.port, &host.interface);
        match wire {
            Wire::Veth => ip(
                sw,
                &format!("link add {port} type veth peer name {eth} netns {ns}"),
            )?,
            Wire::Nics(host_nic, switch_nic) => {
                for (nic, netns, name) in [(host_nic, ns, eth), (switch_nic, sw, port)] {
                    run(&["ip", "link", "set", "dev", &nic, "netns", netns])?;
                    ip(netns, &format!("link set {nic} name {name}"))?;
                }
            }
        }
        ip(sw, &format!("link set {port} master br0"))?;
        ip(sw, &format!("link set {port} up"))?;
        ip(ns, &format!("addr add {}/24 dev {eth}", host.address))?;
        ip(ns, &format!("link set {eth} up"))?;
        ip(ns, "link set lo up")?;
        // Multicast leaves through eth0 without a route lookup surprise.
        ip(ns, &format!("route add 224.0.0.0/4 dev {eth}"))?;
        // The host keeps veth's defaults (GRO off, checksum offload on), as a
        // container does: what the product delivers must not depend on them.
        self.hosts.push(host);
        Ok(())
    }

    /// Adds a hub on a new switch port with `hosts` hosts behind it: two
    /// hosts sharing one port, as on a shared segment. The hub is a bridge
    /// in its own namespace with snooping off, so it floods whatever it
    /// gets, reports included. The hosts are appended to `hosts`, all with
    /// the hub's port as `port`. Returns their indices.
    pub fn add_hub(&mut self, hosts: usize) -> Result<Vec<usize>> {
        let number = self.hosts.len() + 1;
        let hub = format!("{}-hub{number}", self.prefix);
        let port = format!("p{number}");
        netns::add(&hub)?;
        self.hubs.push(hub.clone());
        ip(&hub, "link add hub type bridge mcast_snooping 0")?;
        ip(&hub, "link set lo up")?;
        let sw = &self.switch;
        ip(
            sw,
            &format!("link add {port} type veth peer name up0 netns {hub}"),
        )?;
        ip(sw, &format!("link set {port} master br0"))?;
        ip(sw, &format!("link set {port} up"))?;
        ip(&hub, "link set up0 master hub")?;
        ip(&hub, "link set up0 up")?;
        let mut added = Vec::new();
        for n in 0..hosts {
            let index = self.hosts.len() + 1;
            let host = Host {
                netns: format!("{}-h{index}", self.prefix),
                address: Ipv4Addr::new(10, 0, 0, index as u8),
                interface: "eth0".into(),
                port: port.clone(),
            };
            netns::add(&host.netns)?;
            let (ns, eth) = (&host.netns, &host.interface);
            let down = format!("d{n}");
            ip(
                &hub,
                &format!("link add {down} type veth peer name {eth} netns {ns}"),
            )?;
            ip(&hub, &format!("link set {down} master hub"))?;
            ip(&hub, &format!("link set {down} up"))?;
            ip(ns, &format!("addr add {}/24 dev {eth}", host.address))?;
            ip(ns, &format!("link set {eth} up"))?;
            ip(ns, "link set lo up")?;
            ip(ns, &format!("route add 224.0.0.0/4 dev {eth}"))?;
            added.push(self.hosts.len());
            self.hosts.push(host);
        }
        ip(&hub, "link set hub up")?;
        Ok(added)
    }

    /// Adds a VLAN device for VLAN `vid` on host `index`'s interface
    /// (`eth0.<vid>`, 10.<vid>.0.<n>/24), with the kernel's defaults: its tag
    /// travels in skb metadata (transmit VLAN offload), not in the frame. The
    /// device is appended to `hosts` as a host of its own on the same port;
    /// returns its index. Needs 8021q, which the guest kernels have.
    pub fn add_vlan(&mut self, index: usize, vid: u16) -> Result<usize> {
        let parent = &self.hosts[index];
        let host = Host {
            netns: parent.netns.clone(),
            address: Ipv4Addr::new(10, vid as u8, 0, index as u8 + 1),
            interface: format!("{}.{vid}", parent.interface),
            port: parent.port.clone(),
        };
        let (ns, eth) = (&host.netns, &host.interface);
        ip(
            ns,
            &format!(
                "link add link {} name {eth} type vlan id {vid}",
                parent.interface
            ),
        )?;
        ip(ns, &format!("addr add {}/24 dev {eth}", host.address))?;
        ip(ns, &format!("link set {eth} up"))?;
        self.hosts.push(host);
        Ok(self.hosts.len() - 1)
    }

    /// Forces the IGMP version host `index` (0-based) speaks (RFC 3376 §7.2.1 compatibility).
    pub fn force_igmp_version(&self, index: usize, version: u8) -> Result<()> {
        let host = &self.hosts[index];
        let key = format!(
            "net.ipv4.conf.{}.force_igmp_version={version}",
            host.interface
        );
        run(&["ip", "netns", "exec", &host.netns, "sysctl", "-qw", &key])
    }

    /// Makes host `index` a real IGMP querier: a Linux bridge in its namespace
    /// with `mcast_querier 1`, querying from the host's own address every
    /// `interval_cs` centiseconds with IGMP `version`.
    pub fn start_bridge_querier(&self, index: usize, version: u8, interval_cs: u32) -> Result<()> {
        let host = &self.hosts[index];
        let (ns, eth, address) = (&host.netns, &host.interface, format!("{}/24", host.address));
        ip(
            ns,
            &format!(
                "link add brq type bridge mcast_snooping 1 mcast_querier 1 mcast_query_use_ifaddr 1 \
                 mcast_igmp_version {version} mcast_query_interval {interval_cs} \
                 mcast_startup_query_interval {interval_cs}"
            ),
        )?;
        ip(ns, &format!("addr del {address} dev {eth}"))?;
        ip(ns, &format!("link set {eth} master brq"))?;
        ip(ns, &format!("addr add {address} dev brq"))?;
        ip(ns, "link set brq up")
    }

    /// Silences the querier started by [`Lab::start_bridge_querier`].
    pub fn stop_bridge_querier(&self, index: usize) -> Result<()> {
        ip(
            &self.hosts[index].netns,
            "link set brq type bridge mcast_querier 0",
        )
    }

    /// Starts recording every frame on host `index`'s wire.
    pub fn capture(&self, index: usize) -> Result<Capture> {
        Capture::start(&self.hosts[index])
    }

    /// Sends `count` UDP datagrams of `size` bytes to `group` from host `index`.
    pub fn send(&self, index: usize, group: Ipv4Addr, count: usize, size: usize) -> Result<()> {
        member::send(&self.hosts[index], group, count, size)
    }

    /// Puts a raw Ethernet frame on host `index`'s wire.
    pub fn inject(&self, index: usize, frame: &[u8]) -> Result<()> {
        inject::inject(&self.hosts[index], frame)
    }

    /// A raw socket on host `index`'s wire, for many frames without reopening it.
    pub fn injector(&self, index: usize) -> Result<Injector> {
        Injector::open(&self.hosts[index])
    }

    /// Puts every frame of `frames` on host `index`'s wire, paced; returns how many were refused.
    pub fn inject_all(&self, index: usize, frames: &[Vec<u8>]) -> Result<usize> {
        inject::inject_all(&self.hosts[index], frames)
    }

    /// Joins `group` from host `index` with a real kernel socket (IP_ADD_MEMBERSHIP).
    pub fn join(&self, index: usize, group: Ipv4Addr) -> Result<Member> {
        Member::join(&self.hosts[index], group, None)
    }

    /// Joins (`source`, `group`) from host `index` (IP_ADD_SOURCE_MEMBERSHIP, an IGMPv3 INCLUDE join).
    pub fn join_source(&self, index: usize, group: Ipv4Addr, source: Ipv4Addr) -> Result<Member> {
        Member::join(
            &self.hosts[index],
            group,
            Some(SourceFilter::Include(source)),
        )
    }

    /// Joins `group` from host `index` for every source but `source` (IGMPv3 EXCLUDE {source}).
    pub fn join_excluding(
        &self,
        index: usize,
        group: Ipv4Addr,
        source: Ipv4Addr,
    ) -> Result<Member> {
        Member::join(
            &self.hosts[index],
            group,
            Some(SourceFilter::Exclude(source)),
        )
    }

    /// The ifindex of a switch port in the switch namespace.
    pub fn port_ifindex(&self, port: &str) -> Result<u32> {
        let output = run_output(&["ip", "-n", &self.switch, "-j", "link", "show", port])?;
        let links: serde_json::Value = serde_json::from_str(&output)?;
        links[0]["ifindex"]
            .as_u64()
            .map(|index| index as u32)
            .with_context(|| format!("{port}: no ifindex in `ip -j link show`"))
    }

    /// Starts `binary run` on every port, in the switch namespace, and waits until it is up.
    pub fn start_daemon(&mut self, binary: &Path, pin_dir: &Path, extra: &[&str]) -> Result<()> {
        let mut ports: Vec<String> = Vec::new();
        // Hosts behind a hub, and a host's VLAN devices, share a port.
        for host in &self.hosts {
            if !ports.contains(&host.port) {
                ports.push(host.port.clone());
            }
        }
        let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
        self.start_daemon_on(binary, pin_dir, &ports, extra)
    }

    /// As `start_daemon`, on the switch ports `ports` only.
    pub fn start_daemon_on(
        &mut self,
        binary: &Path,
        pin_dir: &Path,
        ports: &[&str],
        extra: &[&str],
    ) -> Result<()> {
        let mut command = self.command_in_switch(binary);
        command.arg("run");
        for port in ports {
            command.args(["--iface", port]);
        }
        command.arg("--pin-dir").arg(pin_dir).args(extra);
        // The tests read per-entry lines (joins, expiries), logged at debug.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,igmp_user=debug");
        }
        let log = fs::File::create(&self.log)?;
        command
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null());
        self.daemon = Some(command.spawn().context("starting igmp-snoop")?);
        let ready = wait_for(Duration::from_secs(60), || {
            fs::read_to_string(&self.log).is_ok_and(|log| log.contains("adopting"))
                || self.daemon_exited()
        });
        if !ready || self.daemon_exited() {
            bail!("igmp-snoop did not start:\n{}", self.daemon_log());
        }
        Ok(())
    }

    /// A command that runs `binary` in the switch namespace (network only:
    /// bpffs and the pins stay visible, unlike with `ip netns exec`).
    pub fn command_in_switch(&self, binary: &Path) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.switch))
            .arg(binary);
        command
    }

    /// The running daemon's process id (to read its /proc, or signal it without waiting).
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Sends raw frames from host `index` as fast as it can for `duration`.
    pub fn flood(
        &self,
        index: usize,
        duration: Duration,
        frame_for: impl FnMut(u64) -> Vec<u8>,
    ) -> Result<u64> {
        flood::flood(&self.hosts[index], duration, frame_for)
    }

    pub fn daemon_exited(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` to the daemon and waits for it to exit.
    pub fn stop_daemon(&mut self, signal: i32) -> Result<()> {
        let Some(mut child) = self.daemon.take() else {
            return Ok(());
        };
        // SAFETY: plain kill(2) on a child we own.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait()?;
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.stop_daemon(libc::SIGTERM);
        for host in &self.hosts {
            netns::delete(&host.netns);
        }
        for hub in &self.hubs {
            netns::delete(hub);
        }
        netns::delete(&self.switch);
        let _ = fs::remove_file(&self.log);
    }
}

/// The virtio_net NICs of this namespace, in the order of their MAC
/// addresses, which is the order qemu cables them in.
fn virtio_nics() -> Vec<String> {
    let mut nics: Vec<(String, String)> = fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            fs::read_link(entry.path().join("device/driver"))
                .is_ok_and(|driver| driver.ends_with("virtio_net"))
        })
        .map(|entry| {
            let mac = fs::read_to_string(entry.path().join("address")).unwrap_or_default();
            (mac, entry.file_name().to_string_lossy().into_owned())
        })
        .collect();
    nics.sort();
    nics.into_iter().map(|(_, name)| name).collect()
}

/// Runs `ip -n <netns> <command>` (the command split on white space).
pub fn ip(netns: &str, command: &str) -> Result<()> {
    let mut args = vec!["ip", "-n", netns];
    args.extend(command.split_whitespace());
    run(&args)
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}
