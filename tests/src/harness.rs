//! The program loaded on its own maps, for BPF_PROG_TEST_RUN, in either hook.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use aya::{
    maps::{HashMap, Map, MapData},
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp},
    Ebpf,
};
use igmp_common::{
    map_names, port_vlan_flags, Counter, DropReason, Event, GroupEntry, GroupKey, HostEntry,
    HostKey, Membership, MembershipKey, PortCounters, PortSettings, PortVlan, RouterKey,
    RouterPort, SourceEntry, SourceKey,
};
use igmp_user::{
    loader,
    tables::{self, FastPathPolicy, Tables},
};

/// An IPv6 address as the maps keep it.
pub type V6 = [u8; 16];

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;
/// tc actions (`TC_ACT_*`): the classifier's answers.
const TC_ACT_UNSPEC: i32 = -1;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;

/// Which of the program's two entry points frames run through: the same
/// parser and tables behind each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestHook {
    Xdp,
    Tc,
}
/// The no-op XDP_PASS program in the same object: the benchmarks' baseline.
pub const BASELINE_PROGRAM: &str = "igmp_snoop_baseline";
/// Frames run through BPF_PROG_TEST_RUN arrive on the loopback device.
pub const TEST_RUN_IFINDEX: u32 = 1;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A unique pin directory under bpffs for one test.
pub fn unique_pin_dir(tag: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(
        "/sys/fs/bpf/igmp-test-{tag}-{}-{n}",
        std::process::id()
    ))
}

/// One loaded instance of the program with its own pinned maps, removed on drop.
pub struct Harness {
    ebpf: Ebpf,
    pub tables: Tables,
    pin_dir: PathBuf,
    hook: TestHook,
}

impl Harness {
    /// Frames run through the XDP program.
    pub fn new() -> Self {
        Self::on(TestHook::Xdp)
    }

    /// Frames run through the program of `hook`.
    pub fn on(hook: TestHook) -> Self {
        let pin_dir = unique_pin_dir("run");
        let mode = match hook {
            TestHook::Xdp => loader::PortMode::Native,
            TestHook::Tc => loader::PortMode::Tc,
        };
        let ebpf = loader::load(&pin_dir, igmp_common::capacity::MEMBERSHIP, mode)
            .expect("loading the programs");
        let tables = Tables::open(&pin_dir).expect("opening the pinned maps");
        Self {
            ebpf,
            tables,
            pin_dir,
            hook,
        }
    }

    /// Gives the port frames arrive on (`TEST_RUN_IFINDEX`) `settings`, as
    /// the daemon writes a port's options to `PORTS`.
    pub fn set_port(&mut self, settings: PortSettings) {
        self.tables
            .ports
            .ports
            .insert(TEST_RUN_IFINDEX, settings, 0)
            .expect("writing PORTS");
    }

    /// Puts the port frames arrive on in a VLAN-filtering bridge with `pvid`
    /// and `vlans` (each VLAN, and whether it leaves the port untagged), as
    /// the daemon writes `PORTS` and `PORT_VLANS` for such a port.
    pub fn set_port_in_vlan_bridge(&mut self, pvid: u16, vlans: &[(u16, bool)]) {
        self.set_port(PortSettings {
            vlan_filtering: 1,
            pvid,
            ..PortSettings::default()
        });
        self.set_port_vlans(TEST_RUN_IFINDEX, vlans);
        let policy = FastPathPolicy {
            vlan_bridges: true,
            ..FastPathPolicy::of(&self.tables.settings())
        };
        self.tables
            .forwarding
            .write_forwarding(policy)
            .expect("writing SETTINGS");
    }

    /// Makes `port` a member of `vlans` (each VLAN, and whether it leaves the
    /// port untagged) in `PORT_VLANS`.
    pub fn set_port_vlans(&mut self, port: u32, vlans: &[(u16, bool)]) {
        let entries: Vec<(u16, PortVlan)> = vlans
            .iter()
            .map(|&(vlan, untagged)| {
                let flags = if untagged {
                    port_vlan_flags::UNTAGGED
                } else {
                    0
                };
                (
                    vlan,
                    PortVlan {
                        flags,
                        ..PortVlan::default()
                    },
                )
            })
            .collect();
        self.tables
            .ports
            .write_port_vlans(port, &entries)
            .expect("writing PORT_VLANS");
    }

    /// The loaded object, for programs the harness does not wrap (the bench baseline).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Loads the no-op baseline program (the daemon never loads it).
    pub fn load_baseline(&mut self) -> Result<(), ProgramError> {
        self.load_xdp(BASELINE_PROGRAM)
    }

    /// Loads the object's XDP program `name`, one the loader leaves alone
    /// (the baseline, the bench's yardsticks).
    pub fn load_xdp(&mut self, name: &str) -> Result<(), ProgramError> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("the object has no {name} program"))
            .try_into()?;
        program.load()
    }

    /// Groups port `ifindex` (0: the switch) holds against its limit.
    pub fn in_use(&self, ifindex: u32) -> u64 {
        self.tables
            .groups_in_use()
            .iter()
            .find(|(counted, _)| *counted == ifindex)
            .map_or(0, |(_, groups)| *groups)
    }

    pub fn pin_dir(&self) -> &std::path::Path {
        &self.pin_dir
    }

    /// Whether BPF_PROG_TEST_RUN takes `frame` in this hook: for tc the
    /// kernel builds no skb whose IPv4 or IPv6 header is cut short (EINVAL). Such
    /// frames still reach tc on a real port; the wire corpus sends them.
    pub fn test_run_takes(&self, frame: &[u8]) -> bool {
        const IPV4_HEADER_END: usize = 14 + 20;
        const IPV6_HEADER_END: usize = 14 + 40;
        let cut_ipv4 = frame.get(12..14) == Some(&[0x08, 0x00]) && frame.len() < IPV4_HEADER_END;
        let cut_ipv6 = frame.get(12..14) == Some(&[0x86, 0xdd]) && frame.len() < IPV6_HEADER_END;
        !(self.hook == TestHook::Tc && (cut_ipv4 || cut_ipv6))
    }

    /// Runs `frame` through the program once; returns the XDP action, or for
    /// tc the XDP action of the same meaning.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.try_run(frame, 1).expect("BPF_PROG_TEST_RUN")
    }

    pub fn try_run(&self, frame: &[u8], repeat: u32) -> Result<u32, ProgramError> {
        let returned = self.test_run(frame, repeat)?.return_value;
        Ok(match self.hook {
            TestHook::Xdp => returned,
            TestHook::Tc => match returned as i32 {
                TC_ACT_UNSPEC => XDP_PASS,
                TC_ACT_SHOT => XDP_DROP,
                TC_ACT_REDIRECT => XDP_REDIRECT,
                other => panic!("the classifier returned {other}, no action it has"),
            },
        })
    }

    /// Runs `frame` `repeat` times and returns the kernel's mean duration per run.
    pub fn time(&self, frame: &[u8], repeat: u32) -> std::time::Duration {
        self.test_run(frame, repeat)
            .expect("BPF_PROG_TEST_RUN")
            .duration
    }

    fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRunResult, ProgramError> {
        let mut out = vec![0u8; frame.len() + 256];
        let options = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        };
        match self.hook {
            TestHook::Xdp => {
                let program: &Xdp = self
                    .ebpf
                    .program(loader::PROGRAM)
                    .expect("program present")
                    .try_into()
                    .expect("an XDP program");
                program.test_run(options)
            }
            TestHook::Tc => {
                let program: &SchedClassifier = self
                    .ebpf
                    .program(loader::TC_PROGRAM)
                    .expect("program present")
                    .try_into()
                    .expect("a tc program");
                program.test_run(options)
            }
        }
    }

    /// The events the program queued since the last call, oldest first.
    pub fn events(&self) -> Vec<Event> {
        let mut ring = tables::open_events(&self.pin_dir).expect("the pinned ring buffer");
        let mut events = Vec::new();
        while let Some(item) = ring.next() {
            assert!(item.len() >= std::mem::size_of::<Event>(), "short event");
            // SAFETY: the program writes whole `Event`s; read_unaligned copes with any offset.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
        }
        events
    }

    pub fn memberships(&self) -> Vec<(MembershipKey, Membership)> {
        self.tables.memberships()
    }

    pub fn sources(&self) -> Vec<(SourceKey, SourceEntry)> {
        self.tables.source_entries()
    }

    pub fn routers(&self) -> Vec<(RouterKey, RouterPort)> {
        self.tables.router_ports()
    }

    pub fn hosts(&self) -> Vec<(HostKey, HostEntry)> {
        let mut rows: Vec<_> = self
            .tables
            .learned
            .hosts
            .iter()
            .filter_map(Result::ok)
            .collect();
        rows.sort_by_key(|(key, _)| *key);
        rows
    }

    /// MLD's learned tables (MEMBERSHIP6 and its twins), read through typed
    /// aya maps opened from their pins, sorted by key.
    pub fn memberships6(&self) -> Vec<(MembershipKey<V6>, Membership<V6>)> {
        sorted_rows(&self.map6(map_names::MEMBERSHIP6))
    }

    pub fn sources6(&self) -> Vec<(SourceKey<V6>, SourceEntry)> {
        sorted_rows(&self.map6(map_names::SOURCES6))
    }

    pub fn routers6(&self) -> Vec<(RouterKey, RouterPort<V6>)> {
        sorted_rows(&self.map6(map_names::ROUTER_PORTS6))
    }

    /// Fast-leave hosts (HOSTS6).
    pub fn hosts6(&self) -> Vec<(HostKey<V6>, HostEntry)> {
        sorted_rows(&self.map6(map_names::HOSTS6))
    }

    /// When each membership last heard an MLDv1 report (V1_HOSTS6).
    pub fn v1_hosts6(&self) -> Vec<(MembershipKey<V6>, u64)> {
        sorted_rows(&self.map6(map_names::V1_HOSTS6))
    }

    /// Registers an IPv6 group for the fast path (GROUPS6), as the daemon does.
    pub fn register6(&self, key: GroupKey<V6>, entry: GroupEntry) {
        let mut groups: HashMap<MapData, GroupKey<V6>, GroupEntry> = self.map6(map_names::GROUPS6);
        groups.insert(key, entry, 0).expect("writing GROUPS6");
    }

    /// Writes a membership entry into MEMBERSHIP6, as the daemon's statics do.
    pub fn insert_membership6(&self, key: MembershipKey<V6>, entry: Membership<V6>) {
        let mut map: HashMap<MapData, MembershipKey<V6>, Membership<V6>> =
            self.map6(map_names::MEMBERSHIP6);
        map.insert(key, entry, 0).expect("writing MEMBERSHIP6");
    }

    /// ROUTER_EPOCH6's one value.
    pub fn router_epoch6(&self) -> u32 {
        let data = MapData::from_pin(self.pin_dir.join(map_names::ROUTER_EPOCH6))
            .expect("ROUTER_EPOCH6 is pinned");
        let array: aya::maps::Array<MapData, u32> =
            aya::maps::Array::try_from(Map::from_map_data(data).expect("a map"))
                .expect("ROUTER_EPOCH6 is an array of u32");
        array.get(&0, 0).expect("ROUTER_EPOCH6[0]")
    }

    /// The MLD events the program queued since the last call, oldest first.
    pub fn events6(&self) -> Vec<Event<V6>> {
        let data =
            MapData::from_pin(self.pin_dir.join(map_names::EVENTS6)).expect("EVENTS6 is pinned");
        let mut ring = aya::maps::RingBuf::try_from(Map::from_map_data(data).expect("a map"))
            .expect("EVENTS6 is a ring buffer");
        let mut events = Vec::new();
        while let Some(item) = ring.next() {
            assert!(
                item.len() >= std::mem::size_of::<Event<V6>>(),
                "short event"
            );
            // SAFETY: the program writes whole `Event<V6>`s; read_unaligned copes with any offset.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event<V6>>()) });
        }
        events
    }

    fn map6<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> HashMap<MapData, K, V> {
        open_hash(&self.pin_dir, name)
    }

    /// Counters of the test-run port, summed over CPUs.
    pub fn counters(&self) -> PortCounters {
        self.tables
            .port_counters()
            .into_iter()
            .find(|(ifindex, _)| *ifindex == TEST_RUN_IFINDEX)
            .map(|(_, counters)| counters)
            .unwrap_or_default()
    }

    pub fn count(&self, counter: Counter) -> u64 {
        self.counters().messages[counter as usize]
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.counters().drops[reason as usize]
    }

    /// Every non-zero drop counter, by name.
    pub fn nonzero_drops(&self) -> Vec<(&'static str, u64)> {
        let counters = self.counters();
        DropReason::ALL
            .iter()
            .filter(|reason| counters.drops[**reason as usize] != 0)
            .map(|reason| (reason.name(), counters.drops[*reason as usize]))
            .collect()
    }
}

/// Map name → the bytes of each entry (key then value), sorted.
pub type TableSnapshot = Vec<(&'static str, Vec<Vec<u8>>)>;

/// The bytes of every entry of the maps the XDP program learns into
/// (memberships, sources, router ports, hosts), map by map, sorted: two
/// snapshots are equal only if the tables are byte for byte the same.
pub fn table_snapshot(tables: &Tables) -> TableSnapshot {
    fn entries<K: aya::Pod, V: aya::Pod>(
        rows: impl Iterator<Item = Result<(K, V), aya::maps::MapError>>,
    ) -> Vec<Vec<u8>> {
        let mut bytes: Vec<Vec<u8>> = rows
            .filter_map(Result::ok)
            .map(|(key, value)| [bytes_of(&key), bytes_of(&value)].concat())
            .collect();
        bytes.sort();
        bytes
    }
    vec![
        ("MEMBERSHIP", entries(tables.learned.membership.iter())),
        ("SOURCES", entries(tables.learned.sources.iter())),
        ("ROUTER_PORTS", entries(tables.learned.routers.iter())),
        ("HOSTS", entries(tables.learned.hosts.iter())),
    ]
}

/// The same for MLD's learned maps (MEMBERSHIP6, SOURCES6, ROUTER_PORTS6,
/// HOSTS6), read from the pins under `pin_dir`.
pub fn table_snapshot_v6(pin_dir: &std::path::Path) -> TableSnapshot {
    fn entries<K: aya::Pod, V: aya::Pod>(map: HashMap<MapData, K, V>) -> Vec<Vec<u8>> {
        let mut bytes: Vec<Vec<u8>> = map
            .iter()
            .filter_map(Result::ok)
            .map(|(key, value)| [bytes_of(&key), bytes_of(&value)].concat())
            .collect();
        bytes.sort();
        bytes
    }
    vec![
        (
            "MEMBERSHIP6",
            entries::<MembershipKey<V6>, Membership<V6>>(open_hash(
                pin_dir,
                map_names::MEMBERSHIP6,
            )),
        ),
        (
            "SOURCES6",
            entries::<SourceKey<V6>, SourceEntry>(open_hash(pin_dir, map_names::SOURCES6)),
        ),
        (
            "ROUTER_PORTS6",
            entries::<RouterKey, RouterPort<V6>>(open_hash(pin_dir, map_names::ROUTER_PORTS6)),
        ),
        (
            "HOSTS6",
            entries::<HostKey<V6>, HostEntry>(open_hash(pin_dir, map_names::HOSTS6)),
        ),
    ]
}

/// MEMBERSHIP6 as pinned under `pin_dir` (a daemon's), sorted.
pub fn memberships6_in(pin_dir: &std::path::Path) -> Vec<(MembershipKey<V6>, Membership<V6>)> {
    sorted_rows(&open_hash(pin_dir, map_names::MEMBERSHIP6))
}

/// ROUTER_PORTS6 as pinned under `pin_dir` (a daemon's), sorted.
pub fn routers6_in(pin_dir: &std::path::Path) -> Vec<(RouterKey, RouterPort<V6>)> {
    sorted_rows(&open_hash(pin_dir, map_names::ROUTER_PORTS6))
}

/// The pinned hash map `name` under `pin_dir`, typed.
fn open_hash<K: aya::Pod, V: aya::Pod>(
    pin_dir: &std::path::Path,
    name: &str,
) -> HashMap<MapData, K, V> {
    let data = MapData::from_pin(pin_dir.join(name))
        .unwrap_or_else(|error| panic!("{name} is pinned: {error}"));
    let map = Map::from_map_data(data).unwrap_or_else(|error| panic!("{name}: {error}"));
    HashMap::try_from(map).unwrap_or_else(|error| panic!("{name}: not the type expected: {error}"))
}

fn sorted_rows<K: aya::Pod + Ord, V: aya::Pod>(map: &HashMap<MapData, K, V>) -> Vec<(K, V)> {
    let mut rows: Vec<(K, V)> = map.iter().filter_map(Result::ok).collect();
    rows.sort_by_key(|(key, _)| *key);
    rows
}

fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
    // SAFETY: Pod types are plain old data with explicit padding: every byte is initialised.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .to_vec()
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = loader::remove_pins(&self.pin_dir);
    }
}
