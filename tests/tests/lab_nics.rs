//! NIC ports: the switch's ports are virtio_net NICs that qemu cables to the
//! hosts' NICs (`Lab::on_nics`), so `--attach auto` picks native XDP and
//! every forwarded frame leaves through a real driver's `ndo_xdp_xmit`, not
//! veth's. Delivery is counted at real sockets.
//! Only a guest of the kernel matrix has the NICs (`cargo xtask test
//! --kernel`, which boots this suite with six); the VLAN cases also need
//! 8021q, which the host kernel lacks.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{net::Ipv4Addr, time::Duration};

use igmp_common::DataCounter;
use igmp_lab::{in_netns, ip, run_output, BridgeSnooping, Lab};
use igmp_tests::snooped::Snooped;
use igmp_user::{
    links::{self, PortLink},
    loader::PortMode,
    options::AttachMode,
};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 6);
const OTHER: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 7);
const N: usize = 200;

fn on_nics(hosts: usize) -> Snooped {
    Snooped::on(
        Lab::on_nics(hosts, BridgeSnooping::Off).expect("a lab on NICs"),
        &[],
    )
}

fn assert_native(snooped: &Snooped) {
    let log = snooped.lab.daemon_log();
    assert!(
        log.contains(r#"mode="native""#) && log.contains("auto: every port is a NIC"),
        "{log}"
    );
}

#[test]
#[ignore = "needs virtio_net NICs: the guests run it"]
fn native_xdp_on_nics_forwards_registered_multicast_to_members_only() {
    let snooped = on_nics(3);
    assert_native(&snooped);
    let lab = &snooped.lab;
    let member = lab.join(1, GROUP).unwrap();
    let outsider = lab.join(2, OTHER).unwrap();
    snooped.wait_until("both joins", Duration::from_secs(5), || {
        snooped.memberships_on(snooped.port(1)) == 1 && snooped.memberships_on(snooped.port(2)) == 1
    });
    lab.send(0, GROUP, N, 1000).unwrap();
    assert_eq!(member.drain(), N, "the member's socket");
    assert_eq!(outsider.drain(), 0, "a member of another group");
    let counters = snooped.tables().data_counters().frames;
    assert!(
        counters[DataCounter::Forwarded as usize] >= N as u64,
        "the fast path forwarded them: {counters:?}"
    );
}

#[test]
#[ignore = "needs virtio_net NICs and 8021q: the guests run it"]
fn tagged_multicast_keeps_its_vlan_through_native_xdp_on_nics() {
    let mut snooped = on_nics(3);
    assert_native(&snooped);
    snooped.assert_vlans_kept_apart(GROUP, N);
}

/// ethtool's word for whether `port` strips received VLAN tags.
fn ethtool_says_it_strips(netns: &str, port: &str) -> bool {
    let features =
        run_output(&["ip", "netns", "exec", netns, "ethtool", "-k", port]).expect("ethtool -k");
    let line = features
        .lines()
        .find(|line| line.starts_with("rx-vlan-offload:"))
        .expect("rx-vlan-offload in ethtool -k");
    line.contains(": on")
}

#[test]
#[ignore = "needs virtio_net NICs and 8021q: the guests run it"]
fn the_attach_mode_follows_whether_a_port_strips_the_tags_of_the_vlans_it_carries() {
    let lab = Lab::on_nics(1, BridgeSnooping::Off).unwrap();
    let switch = lab.switch.clone();
    // The NIC port p1 and a veth port carry a VLAN each; a second veth none.
    ip(&switch, "link add link p1 name p1.10 type vlan id 10").unwrap();
    ip(&switch, "link add v1 type veth peer name v1peer").unwrap();
    ip(&switch, "link add link v1 name v1.20 type vlan id 20").unwrap();
    ip(&switch, "link add v2 type veth peer name v2peer").unwrap();
    let ports: Vec<PortLink> = in_netns(&switch, || {
        let named: Vec<(String, u32)> = ["p1", "v1", "v2"]
            .iter()
            .map(|name| {
                let index = igmp_user::interfaces::interface_index(name)?;
                Ok((name.to_string(), index))
            })
            .collect::<anyhow::Result<_>>()?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(links::port_links(&named))
    })
    .unwrap();
    let [nic, veth, plain] = ports.as_slice() else {
        panic!("{ports:?}")
    };
    assert_eq!(
        (nic.kind.as_deref(), veth.kind.as_deref()),
        (None, Some("veth"))
    );
    assert_eq!(nic.vlan_devices, ["p1.10"]);
    assert_eq!(veth.vlan_devices, ["v1.20"]);
    assert!(plain.vlan_devices.is_empty() && !plain.carries_vlans());
    // What is read agrees with ethtool: virtio_net leaves tags in the
    // frame, a veth strips them.
    assert_eq!(nic.strips_vlan_tags, ethtool_says_it_strips(&switch, "p1"));
    assert_eq!(veth.strips_vlan_tags, ethtool_says_it_strips(&switch, "v1"));
    assert!(!nic.strips_vlan_tags && veth.strips_vlan_tags);
    // A NIC that carries VLANs but leaves their tags in the frame keeps
    // native XDP, which reads them there.
    let (mode, why) = PortMode::choose(AttachMode::Auto, std::slice::from_ref(nic));
    assert_eq!(mode, PortMode::Native, "{why}");
    assert_eq!(nic.hides_vlan_tags_from_xdp(), None);
}
