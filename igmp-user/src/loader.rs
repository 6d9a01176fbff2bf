//! Loading the programs, pinning their maps and attaching them to ports:
//! XDP through bpf_links pinned per port, tc through clsact filters.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::MapInfo,
    programs::{
        links::{FdLink, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcAttachType, TcHandle},
        xdp::XdpLink,
        ProgramError, SchedClassifier, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use igmp_common::{
    map_names,
    registry::{self, MapKind},
};

use crate::{interfaces::interface_index, links::PortLink, options::AttachMode};

/// Where the maps are pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/igmp-snoop";
/// Name of the XDP function in the object.
pub const PROGRAM: &str = "igmp_snoop";
/// Name of the devmap egress filter in the object.
pub const EGRESS_PROGRAM: &str = "igmp_snoop_egress";
/// Name of the tc ingress classifier in the object; also the name its
/// clsact filters carry (`tc filter show dev <port> ingress`).
pub const TC_PROGRAM: &str = "igmp_snoop_tc";

/// The programs the IPv4 ones hand IPv6 frames on to by tail calls, in the
/// slots of their hook's program array (the program's `verdict::tail`):
/// IPv6 and its forwarding, learning from MLD messages, from MLDv2 reports.
pub const XDP_TAIL_PROGRAMS: [&str; 3] = ["igmp_snoop6", "igmp_mld", "igmp_mld_report"];
/// tc's have a fourth: a learned MLD report to router ports (XDP's
/// learning programs redirect it themselves).
pub const TC_TAIL_PROGRAMS: [&str; 4] = [
    "igmp_snoop6_tc",
    "igmp_mld_tc",
    "igmp_mld_report_tc",
    "igmp_mld_forward_tc",
];
/// Where the classifier sits among a port's ingress filters: first, so the
/// bridge sees no frame it forwards. Frames it does not forward it returns
/// as TC_ACT_UNSPEC, so the filters after it still see those.
const TC_PRIORITY: u16 = 1;
/// The filter's handle, fixed so that a restarted daemon finds and replaces it.
const TC_HANDLE: u32 = 0x16;

/// The XDP object, built by build.rs from igmp-ebpf.
pub static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/igmp-snoop.bpf.o"));

/// Subdirectory of the pin directory holding one XDP link per port.
const LINKS_DIR: &str = "links";
/// Subdirectory of the pin directory marking each port with a tc filter: the
/// classifier is pinned there under the port's name, as clsact filters
/// themselves cannot be pinned, so that `detach` knows where to remove them.
const TC_DIR: &str = "tc";

/// `statfs(2)` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How the program is attached to every port, once `auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMode {
    Native,
    Generic,
    Tc,
}

impl PortMode {
    /// The mode for `ports` (their rtnetlink link kinds: `None` for a device
    /// driver's NIC, physical or virtio; `Some("veth")`, `Some("tun")`, ...
    /// for a virtual port), and why.
    ///
    /// A virtual port cannot take a frame redirected by native XDP as its
    /// sender's stack left it: a veth drops it unless its peer runs NAPI (GRO
    /// or XDP on in the container), and a frame whose UDP checksum the sender
    /// left to offload arrives with the checksum never completed. The tc
    /// classifier redirects the skb itself, checksum state included, and
    /// skips the conversion to an XDP buffer and back that generic XDP pays,
    /// so `auto` takes it on every port of a set with a virtual one: one hook
    /// per set, so no frame crosses from one hook's redirect to the other's.
    /// The same on a VLAN-filtering bridge, where each copy must leave
    /// tagged or untagged as its port's VLAN says, and for a NIC that hides
    /// the tags of the VLANs it carries from native XDP
    /// ([`PortLink::hides_vlan_tags_from_xdp`]): tc reads and writes the tag
    /// in the skb.
    pub fn choose(asked: AttachMode, ports: &[PortLink]) -> (Self, String) {
        let virtual_ports: Vec<String> = ports
            .iter()
            .filter_map(|port| {
                port.kind
                    .as_ref()
                    .map(|kind| format!("{} ({kind})", port.name))
            })
            .collect();
        let vlan_bridges: Vec<String> = ports
            .iter()
            .filter_map(|port| port.bridge.as_ref())
            .filter(|bridge| bridge.vlan_filtering)
            .map(|bridge| bridge.name.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let hiding_tags: Vec<String> = ports
            .iter()
            .filter_map(PortLink::hides_vlan_tags_from_xdp)
            .collect();
        match asked {
            AttachMode::Native => (Self::Native, "asked for".into()),
            AttachMode::Generic => (Self::Generic, "asked for".into()),
            AttachMode::Tc => (Self::Tc, "asked for".into()),
            AttachMode::Auto if !virtual_ports.is_empty() => (
                Self::Tc,
                format!(
                    "auto: frames on virtual ports are skbs already: {}",
                    virtual_ports.join(", ")
                ),
            ),
            AttachMode::Auto if !vlan_bridges.is_empty() => (
                Self::Tc,
                format!(
                    "auto: VLAN-filtering bridges, where tc tags each copy as its port's VLAN says: {}",
                    vlan_bridges.join(", ")
                ),
            ),
            AttachMode::Auto if !hiding_tags.is_empty() => (
                Self::Tc,
                format!(
                    "auto: NICs strip VLAN tags native XDP cannot read, tc reads them in the skb: {}",
                    hiding_tags.join(", ")
                ),
            ),
            AttachMode::Auto => (Self::Native, "auto: every port is a NIC".into()),
        }
    }

    /// What the operator should know of `mode` on `ports`: native XDP on a
    /// NIC that hides its VLAN tags learns tagged reports in the wrong VLAN
    /// and forwards tagged data untagged.
    pub fn warnings(self, ports: &[PortLink]) -> Vec<String> {
        if self != Self::Native {
            return Vec::new();
        }
        ports
            .iter()
            .filter_map(|port| {
                let hidden = port.hides_vlan_tags_from_xdp()?;
                Some(format!(
                    "native XDP sees {hidden} untagged: its tagged reports are learned outside their VLAN and its tagged data leaves untagged; use --attach tc or auto, or `ethtool -K {} rxvlan off`",
                    port.name
                ))
            })
            .collect()
    }

    /// Refuses a bridge device as a port: what crosses a bridge goes through
    /// its ports, where the program must be.
    pub fn refuse_bridges(ports: &[PortLink]) -> Result<()> {
        if let Some(port) = ports
            .iter()
            .find(|port| port.kind.as_deref() == Some("bridge"))
        {
            let name = &port.name;
            bail!(
                "{name} is a bridge: snoop on its ports instead (`bridge link show master {name}` lists them)"
            );
        }
        Ok(())
    }

    /// As `--attach`, the configuration file and the start log spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Tc => "tc",
        }
    }

    /// What the start log says a port runs.
    pub fn hook(self) -> &'static str {
        match self {
            Self::Native => "native XDP",
            Self::Generic => "generic XDP",
            Self::Tc => "the tc ingress classifier",
        }
    }
}

/// The maps whose capacity is the table size: one entry per membership,
/// source, fast-leave host or group, of each family. A table pinned before
/// MLD has no IPv6 maps: the load makes them with its table size, which
/// `check_pinned_table_size` held to the pinned `MEMBERSHIP`'s.
const TABLE_MAPS: [&str; 10] = [
    map_names::MEMBERSHIP,
    map_names::SOURCES,
    map_names::HOSTS,
    map_names::GROUPS,
    map_names::V1_HOSTS,
    map_names::MEMBERSHIP6,
    map_names::SOURCES6,
    map_names::HOSTS6,
    map_names::GROUPS6,
    map_names::V1_HOSTS6,
];

/// Loads the programs `mode` runs with every map pinned under `pin_dir`.
/// Maps already pinned there are reused, so a restarted daemon keeps the
/// table; new ones get `table_size` entries. The egress filter is loaded in
/// every mode: destination sets carry it, whichever hook reads them.
pub fn load(pin_dir: &Path, table_size: u32, mode: PortMode) -> Result<Ebpf> {
    prepare_pin_dir(pin_dir)?;
    crate::layout::migrate(pin_dir)?;
    check_pinned_layout(pin_dir)?;
    check_pinned_table_size(pin_dir, table_size)?;
    let paths: Vec<(&str, PathBuf)> = map_names::ALL
        .iter()
        .map(|name| (*name, pin_dir.join(name)))
        .collect();
    let mut loader = EbpfLoader::new();
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    for name in TABLE_MAPS {
        loader.map_max_entries(name, table_size);
    }
    let mut ebpf = loader.load(OBJECT).with_context(|| {
        format!(
            "loading the XDP program with maps pinned in {} (maps of an older layout there? \
             remove them with `igmp-snoop detach --pin-dir {}`)",
            pin_dir.display(),
            pin_dir.display()
        )
    })?;
    let xdp: &[&str] = match mode {
        PortMode::Native | PortMode::Generic => &[PROGRAM, EGRESS_PROGRAM],
        PortMode::Tc => &[EGRESS_PROGRAM],
    };
    for &name in xdp {
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("the object has no {name} program"))?
            .try_into()?;
        program
            .load()
            .with_context(|| format!("the kernel refused the {name} program"))?;
        log_verifier_figures(name, program.info());
    }
    if mode == PortMode::Tc {
        let classifier = tc_program(&mut ebpf)?;
        classifier
            .load()
            .with_context(|| format!("the kernel refused the {TC_PROGRAM} program"))?;
        log_verifier_figures(TC_PROGRAM, classifier.info());
    }
    load_tail_programs(&mut ebpf, mode)?;
    crate::layout::pin_current(pin_dir)?;
    Ok(ebpf)
}

/// Loads the IPv6 programs of `mode`'s hook and puts each in its slot of
/// the hook's program array, where the IPv4 program finds it.
pub fn load_tail_programs(ebpf: &mut Ebpf, mode: PortMode) -> Result<()> {
    let (names, array): (&[&str], _) = match mode {
        PortMode::Native | PortMode::Generic => (&XDP_TAIL_PROGRAMS, map_names::MLD_XDP),
        PortMode::Tc => (&TC_TAIL_PROGRAMS, map_names::MLD_TC),
    };
    let mut fds = Vec::with_capacity(names.len());
    for name in names {
        let program = ebpf
            .program_mut(name)
            .with_context(|| format!("the object has no {name} program"))?;
        let refused = || format!("the kernel refused the {name} program");
        match program {
            aya::programs::Program::Xdp(xdp) => {
                xdp.load().with_context(refused)?;
                log_verifier_figures(name, xdp.info());
            }
            aya::programs::Program::SchedClassifier(classifier) => {
                classifier.load().with_context(refused)?;
                log_verifier_figures(name, classifier.info());
            }
            _ => anyhow::bail!("{name}: neither an XDP nor a tc program"),
        }
        let fd = ebpf
            .program(name)
            .context("a program just loaded")?
            .fd()?
            .try_clone()?;
        fds.push(fd);
    }
    let mut slots = aya::maps::ProgramArray::try_from(
        ebpf.map_mut(array)
            .with_context(|| format!("the object has no {array} map"))?,
    )?;
    for (slot, fd) in fds.iter().enumerate() {
        slots
            .set(slot as u32, fd, 0)
            .with_context(|| format!("putting {} in {array}", names[slot]))?;
    }
    Ok(())
}

/// How much work the kernel's verifier did: the figure that nears its
/// million-instruction budget first as the program grows or the kernel changes.
fn log_verifier_figures(
    name: &str,
    info: std::result::Result<aya::programs::ProgramInfo, ProgramError>,
) {
    let Ok(info) = info else {
        return;
    };
    tracing::debug!(
        program = name,
        verified_instructions = info.verified_instruction_count().unwrap_or(0),
        instructions = info.size_translated().unwrap_or(0) / 8,
        "verifier accepted the program"
    );
}

/// The egress filter's fd, for the `EGRESS_PORTS` devmap entries.
pub fn egress_program_fd(ebpf: &Ebpf) -> Result<&aya::programs::ProgramFd> {
    let program: &Xdp = ebpf
        .program(EGRESS_PROGRAM)
        .context("the object has no egress program")?
        .try_into()?;
    Ok(program.fd()?)
}

/// Attaches the loaded program to `interface` in `mode`. A previous
/// daemon's attachment in the same hook is adopted: its program is swapped
/// for this one atomically, and forwarding never stops. One in the other
/// hook is removed first (the bridge floods meanwhile), so that no frame is
/// forwarded twice.
pub fn attach(
    ebpf: &mut Ebpf,
    interface: &str,
    mode: PortMode,
    pin_dir: &Path,
) -> Result<Attachment> {
    interface_index(interface)?;
    match mode {
        PortMode::Tc => {
            remove_xdp_link(pin_dir, interface)?;
            attach_tc(ebpf, interface, pin_dir)
        }
        PortMode::Native | PortMode::Generic => {
            remove_tc_filter(pin_dir, interface)?;
            attach_xdp(ebpf, interface, mode, pin_dir)
        }
    }
}

/// XDP, through a bpf_link pinned under `<pin_dir>/links/`, so that the
/// program stays attached when the daemon dies.
fn attach_xdp(
    ebpf: &mut Ebpf,
    interface: &str,
    mode: PortMode,
    pin_dir: &Path,
) -> Result<Attachment> {
    let link_path = link_pin_path(pin_dir, interface);
    let program = xdp_program(ebpf)?;
    if link_path.exists() {
        let pinned = PinnedLink::from_pin(&link_path)
            .with_context(|| format!("{}: opening the pinned link", link_path.display()))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .with_context(|| format!("{}: not an XDP link", link_path.display()))?;
        program
            .attach_to_link(link)
            .with_context(|| format!("{interface}: replacing the program of the pinned link"))?;
        return Ok(Attachment {
            adopted: true,
            hook: Hook::Xdp {
                link_path,
                pinned: None,
            },
        });
    }
    let attach = if mode == PortMode::Native {
        XdpMode::Driver
    } else {
        XdpMode::Skb
    };
    let id = program
        .attach(interface, attach)
        .map_err(|error| attach_error(interface, mode, error))?;
    let link = FdLink::try_from(program.take_link(id)?).with_context(|| {
        format!("{interface}: the kernel gave no bpf_link for XDP (Linux 5.9 or later needed)")
    })?;
    fs::create_dir_all(link_path.parent().expect("links directory"))?;
    let pinned = link
        .pin(&link_path)
        .with_context(|| format!("{}: pinning the XDP link", link_path.display()))?;
    Ok(Attachment {
        adopted: false,
        hook: Hook::Xdp {
            link_path,
            pinned: Some(pinned),
        },
    })
}

/// The tc classifier, as a clsact ingress filter. Filters outlive the
/// daemon without a pin; the marker under `<pin_dir>/tc/` records the port.
/// Netlink filters rather than tcx links: Linux 6.1 has no tcx.
fn attach_tc(ebpf: &mut Ebpf, interface: &str, pin_dir: &Path) -> Result<Attachment> {
    let marker = tc_marker_path(pin_dir, interface);
    let program = tc_program(ebpf)?;
    // Fails when the port has one already; the attach below says what is wrong otherwise.
    let _ = tc::qdisc_add_clsact(interface);
    let options = NlOptions {
        priority: TC_PRIORITY,
        handle: TcHandle::from(TC_HANDLE),
        classid: None,
    };
    let (id, adopted) = match program.attach_with_options(
        interface,
        TcAttachType::Ingress,
        TcAttachOptions::Netlink(options),
    ) {
        Ok(id) => (id, false),
        Err(error) if is_os_error(&error, libc::EEXIST) && !marker.exists() => {
            return Err(anyhow::Error::new(error).context(format!(
                "{interface}: another tc filter of igmp-snoop is attached already (another \
                 igmp-snoop, with another --pin-dir? `tc filter show dev {interface} ingress` names it)"
            )))
        }
        Err(error) if is_os_error(&error, libc::EEXIST) => {
            let ours = SchedClassifierLink::attached(
                interface,
                TcAttachType::Ingress,
                TC_PRIORITY,
                TcHandle::from(TC_HANDLE),
                None,
            )?;
            let id = program
                .attach_to_link(ours)
                .with_context(|| format!("{interface}: replacing the program of the tc filter"))?;
            (id, true)
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "{interface}: attaching the tc ingress classifier failed"
            )))
        }
    };
    // Dropping the link would delete the filter: the filter is to stay.
    std::mem::forget(program.take_link(id)?);
    // A filter no marker records would outlive every command that removes
    // ours: a port is left attached only with its marker.
    let marked = fs::create_dir_all(marker.parent().expect("tc directory"))
        .context("creating the tc marker directory")
        .and_then(|()| {
            if marker.exists() {
                return Ok(());
            }
            program
                .pin(&marker)
                .with_context(|| format!("{}: pinning the tc marker", marker.display()))
        });
    if let Err(error) = marked {
        if !adopted {
            let _ = delete_tc_filter(interface);
        }
        return Err(error);
    }
    Ok(Attachment {
        adopted,
        hook: Hook::Tc {
            interface: interface.to_owned(),
            marker,
        },
    })
}

/// Whether `error` or one of its causes is the OS error `code`.
fn is_os_error(error: &(dyn std::error::Error + 'static), code: i32) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(code) {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// Says why the kernel refused to attach: a program already there (EBUSY for
/// the same mode, EEXIST for the other) is not the driver's fault.
fn attach_error(interface: &str, mode: PortMode, error: ProgramError) -> anyhow::Error {
    let busy = is_os_error(&error, libc::EBUSY) || is_os_error(&error, libc::EEXIST);
    let context = match mode {
        _ if busy => format!(
            "{interface}: another XDP program is attached already (another igmp-snoop, with another \
             --pin-dir? `ip link show {interface}` names it)"
        ),
        PortMode::Native => format!(
            "{interface}: the driver refused native XDP (use --attach tc for any interface)"
        ),
        PortMode::Generic | PortMode::Tc => format!("{interface}: attaching generic XDP failed"),
    };
    anyhow::Error::new(error).context(context)
}

/// An attached port. Dropping it closes this process's handle only: the
/// port keeps the program until [`Attachment::detach`].
pub struct Attachment {
    /// Whether a previous daemon's attachment was taken over.
    pub adopted: bool,
    hook: Hook,
}

enum Hook {
    Xdp {
        link_path: PathBuf,
        pinned: Option<PinnedLink>,
    },
    Tc {
        interface: String,
        marker: PathBuf,
    },
}

impl Attachment {
    /// Takes the program off the port (for XDP: once this process exits, or
    /// at once for a link this process created).
    pub fn detach(self) -> Result<()> {
        match self.hook {
            Hook::Xdp {
                pinned: Some(pinned),
                ..
            } => drop(pinned.unpin()?),
            Hook::Xdp { link_path, .. } => fs::remove_file(&link_path)?,
            Hook::Tc { interface, marker } => {
                delete_tc_filter(&interface)?;
                let _ = fs::remove_file(marker);
            }
        }
        Ok(())
    }
}

/// Takes a previous daemon's XDP link off `interface`, if there is one.
fn remove_xdp_link(pin_dir: &Path, interface: &str) -> Result<()> {
    let link_path = link_pin_path(pin_dir, interface);
    match fs::remove_file(&link_path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("{}: removing the XDP link", link_path.display()))
        }
        _ => Ok(()),
    }
}

/// Takes a previous daemon's tc filter off `interface`, if there is one.
fn remove_tc_filter(pin_dir: &Path, interface: &str) -> Result<()> {
    let marker = tc_marker_path(pin_dir, interface);
    if !marker.exists() {
        return Ok(());
    }
    // A port deleted since took its filter with it.
    if interface_index(interface).is_ok() {
        delete_tc_filter(interface)?;
    }
    fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))
}

/// Deletes the classifier's filters from `interface`; none there (the port
/// was deleted and made again, say) is no error.
fn delete_tc_filter(interface: &str) -> Result<()> {
    match tc::qdisc_detach_program(interface, TcAttachType::Ingress, TC_PROGRAM) {
        Ok(()) => Ok(()),
        Err(error) if is_os_error(&error, libc::ENOENT) || is_os_error(&error, libc::ENODEV) => {
            Ok(())
        }
        Err(tc::TcError::IoError(error)) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(anyhow::Error::new(error)
            .context(format!("{interface}: deleting the tc ingress filter"))),
    }
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    Ok(ebpf
        .program_mut(PROGRAM)
        .context("the object has no igmp_snoop program")?
        .try_into()?)
}

fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
    Ok(ebpf
        .program_mut(TC_PROGRAM)
        .with_context(|| format!("the object has no {TC_PROGRAM} program"))?
        .try_into()?)
}

fn link_pin_path(pin_dir: &Path, interface: &str) -> PathBuf {
    pin_dir.join(LINKS_DIR).join(interface)
}

fn tc_marker_path(pin_dir: &Path, interface: &str) -> PathBuf {
    pin_dir.join(TC_DIR).join(interface)
}

/// Pinned maps keep the capacity they were made with: a different table size
/// takes effect only on a fresh table, which the operator must ask for.
fn check_pinned_table_size(pin_dir: &Path, table_size: u32) -> Result<()> {
    let path = pin_dir.join(map_names::MEMBERSHIP);
    if !path.exists() {
        return Ok(());
    }
    let info =
        MapInfo::from_pin(&path).with_context(|| format!("{}: not a BPF map", path.display()))?;
    if info.max_entries() != table_size {
        bail!(
            "{}: pinned with {} entries, but the table size asked for is {table_size}; \
             keep --table-size {}, or start a new table with `igmp-snoop detach --pin-dir {}`",
            path.display(),
            info.max_entries(),
            info.max_entries(),
            pin_dir.display()
        );
    }
    Ok(())
}

/// Maps pinned by a build with another layout: reusing them would make the
/// program read garbage. State is refused (the operator decides whether to
/// drop the table); derived maps and statistics are removed here, so that
/// the load pins new ones, which the daemon fills at start.
fn check_pinned_layout(pin_dir: &Path) -> Result<()> {
    for map in &registry::MAPS {
        let Some((key_size, value_size)) = map.layout else {
            continue;
        };
        let path = pin_dir.join(map.name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path)
            .with_context(|| format!("{}: not a BPF map", path.display()))?;
        if info.key_size() as usize == key_size && info.value_size() as usize == value_size {
            continue;
        }
        if map.kind == MapKind::State {
            bail!(
                "{}: pinned by an incompatible version (key {} / value {} bytes, this version uses {key_size} / {value_size}); \
                 remove the old table with `igmp-snoop detach --pin-dir {}`",
                path.display(),
                info.key_size(),
                info.value_size(),
                pin_dir.display()
            );
        }
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        tracing::warn!(
            map = map.name,
            kind = ?map.kind,
            "pinned by another version with another layout: made anew{}",
            if map.kind == MapKind::Statistics {
                " (its counts restart at 0)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn prepare_pin_dir(pin_dir: &Path) -> Result<()> {
    let parent = pin_dir
        .parent()
        .with_context(|| format!("{}: not a directory under bpffs", pin_dir.display()))?;
    if !is_bpffs(parent) {
        bail!(
            "{}: not on a bpf filesystem (mount it with `mount -t bpf bpf /sys/fs/bpf`)",
            parent.display()
        );
    }
    fs::create_dir_all(pin_dir).with_context(|| format!("creating {}", pin_dir.display()))
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain old data; an all-zero value is valid.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stats` is a valid out-pointer.
    let ok = unsafe { libc::statfs(path.as_ptr(), &mut stats) } == 0;
    ok && stats.f_type as i64 == BPF_FS_MAGIC
}

/// The ports the program is attached to, as the pins under `pin_dir` record
/// them, with the hook of each (`xdp` or `tc`), sorted by port.
pub fn attachments(pin_dir: &Path) -> Vec<(String, &'static str)> {
    let mut ports = Vec::new();
    for (dir, hook) in [(LINKS_DIR, "xdp"), (TC_DIR, "tc")] {
        if let Ok(entries) = fs::read_dir(pin_dir.join(dir)) {
            for entry in entries.filter_map(Result::ok) {
                ports.push((entry.file_name().to_string_lossy().into_owned(), hook));
            }
        }
    }
    ports.sort();
    ports
}

/// Takes the program off every port a previous daemon attached it to under
/// `pin_dir` that is not among `ports` (a run with fewer ports than the one
/// before it); returns those ports. Without this they would go on learning
/// into the table with no daemon to age what they learn.
pub fn detach_unlisted(pin_dir: &Path, ports: &[String]) -> Result<Vec<String>> {
    let mut detached = Vec::new();
    for (port, hook) in attachments(pin_dir) {
        if ports.contains(&port) {
            continue;
        }
        match hook {
            "tc" => remove_tc_filter(pin_dir, &port)?,
            _ => remove_xdp_link(pin_dir, &port)?,
        }
        detached.push(port);
    }
    Ok(detached)
}

/// Removes every pin of the project under `pin_dir` (`igmp-snoop detach`):
/// the tc filters and XDP links first, which detaches the program from
/// every port, then the maps.
pub fn remove_pins(pin_dir: &Path) -> Result<usize> {
    // Only bpffs holds pins: elsewhere the names would be ordinary files.
    if pin_dir.exists() && !is_bpffs(pin_dir) {
        bail!(
            "{}: not on bpffs, so it holds no pins of igmp-snoop; nothing removed",
            pin_dir.display()
        );
    }
    let mut removed = 0;
    let markers = pin_dir.join(TC_DIR);
    if let Ok(entries) = fs::read_dir(&markers) {
        for entry in entries.filter_map(Result::ok) {
            let interface = entry.file_name().to_string_lossy().into_owned();
            // A port gone with its filter, or moved to another namespace, leaves only the marker.
            if interface_index(&interface).is_ok() {
                delete_tc_filter(&interface)?;
            }
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed += 1;
        }
        let _ = fs::remove_dir(&markers);
    }
    let links = pin_dir.join(LINKS_DIR);
    if let Ok(entries) = fs::read_dir(&links) {
        for entry in entries.filter_map(Result::ok) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed += 1;
        }
        let _ = fs::remove_dir(&links);
    }
    for name in map_names::ALL {
        let path = pin_dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("removing {}", path.display()))
            }
        }
    }
    let _ = fs::remove_dir(pin_dir);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_map_is_in_the_registry_once() {
        let mut registered: Vec<&str> = registry::MAPS.iter().map(|map| map.name).collect();
        let mut named = map_names::ALL.to_vec();
        registered.sort_unstable();
        named.sort_unstable();
        assert_eq!(registered, named);
    }

    /// Adding a counter, a drop reason or a fast-path decision fills a slot
    /// of the headroom (igmp-common asserts there is one at compile time):
    /// the pinned value sizes stay what earlier builds pinned.
    #[test]
    fn counters_have_the_layout_earlier_builds_pinned() {
        let value_size = |name: &str| {
            registry::MAPS
                .iter()
                .find(|map| map.name == name)
                .and_then(|map| map.layout)
                .map(|(_, value)| value)
        };
        assert_eq!(value_size(map_names::COUNTERS), Some(640));
        assert_eq!(value_size(map_names::DATA_COUNTERS), Some(256));
    }

    fn ports(kinds: &[(&str, Option<&str>)]) -> Vec<PortLink> {
        kinds
            .iter()
            .map(|(name, kind)| PortLink {
                name: name.to_string(),
                kind: kind.map(str::to_string),
                ..PortLink::default()
            })
            .collect()
    }

    #[test]
    fn auto_is_native_only_when_every_port_is_a_nic() {
        let nics = ports(&[("eth1", None), ("eth2", None)]);
        assert_eq!(
            PortMode::choose(AttachMode::Auto, &nics).0,
            PortMode::Native
        );
        let mixed = ports(&[("eth1", None), ("p1", Some("veth")), ("tap0", Some("tun"))]);
        let (mode, why) = PortMode::choose(AttachMode::Auto, &mixed);
        assert_eq!(mode, PortMode::Tc);
        assert!(why.contains("p1 (veth), tap0 (tun)"), "{why}");
    }

    #[test]
    fn auto_leaves_native_xdp_where_a_nic_strips_the_tags_of_vlans_it_carries() {
        let mut nics = ports(&[("eth1", None), ("eth2", None)]);
        // Carrying VLANs without stripping them, or stripping without
        // carrying any: native XDP sees every tag there is.
        nics[0].vlan_devices = vec!["eth1.10".into()];
        nics[1].strips_vlan_tags = true;
        assert_eq!(
            PortMode::choose(AttachMode::Auto, &nics).0,
            PortMode::Native
        );
        assert!(PortMode::Native.warnings(&nics).is_empty());

        nics[0].strips_vlan_tags = true;
        let (mode, why) = PortMode::choose(AttachMode::Auto, &nics);
        assert_eq!(mode, PortMode::Tc);
        assert!(
            why.contains("eth1 (rx-vlan-offload on, carries eth1.10)"),
            "{why}"
        );
        // In a VLAN-filtering bridge the bridge's VLANs are carried.
        nics[1].bridge = Some(crate::links::BridgeLink {
            name: "br0".into(),
            vlan_filtering: true,
            ..Default::default()
        });
        assert_eq!(
            nics[1].hides_vlan_tags_from_xdp().as_deref(),
            Some("eth2 (rx-vlan-offload on, carries the VLANs of br0)")
        );
        // A VLAN-filtering bridge wants tc whatever its NICs do.
        let (mode, why) = PortMode::choose(AttachMode::Auto, &nics[1..]);
        assert_eq!(mode, PortMode::Tc);
        assert!(why.contains("VLAN-filtering bridges"), "{why}");
        nics[1].strips_vlan_tags = false;
        let (mode, why) = PortMode::choose(AttachMode::Auto, &nics[1..]);
        assert_eq!(mode, PortMode::Tc);
        assert!(
            why.ends_with("tc tags each copy as its port's VLAN says: br0"),
            "{why}"
        );
        nics[1].strips_vlan_tags = true;

        // Asked for, native is kept, with a line per such NIC.
        assert_eq!(
            PortMode::choose(AttachMode::Native, &nics).0,
            PortMode::Native
        );
        let warnings = PortMode::Native.warnings(&nics);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("ethtool -K eth1 rxvlan off"),
            "{warnings:?}"
        );
        assert!(PortMode::Tc.warnings(&nics).is_empty());
        assert!(PortMode::Generic.warnings(&nics).is_empty());
    }

    #[test]
    fn an_explicit_mode_wins_over_the_port_kinds() {
        let veths = ports(&[("p1", Some("veth"))]);
        assert_eq!(
            PortMode::choose(AttachMode::Native, &veths).0,
            PortMode::Native
        );
        let nics = ports(&[("eth1", None)]);
        assert_eq!(
            PortMode::choose(AttachMode::Generic, &nics).0,
            PortMode::Generic
        );
        assert_eq!(PortMode::choose(AttachMode::Tc, &nics).0, PortMode::Tc);
    }

    #[test]
    fn a_bridge_device_is_refused_with_a_pointer_to_its_ports() {
        let kinds = ports(&[("p1", Some("veth")), ("br0", Some("bridge"))]);
        let error = PortMode::refuse_bridges(&kinds).unwrap_err().to_string();
        assert_eq!(
            error,
            "br0 is a bridge: snoop on its ports instead (`bridge link show master br0` lists them)"
        );
        assert!(PortMode::refuse_bridges(&kinds[..1]).is_ok());
    }
}
