//! Replacing the daemon under a stream: what the restart and upgrade tests
//! (`lab_faults.rs`) and the bench's upgrade section share. The stream goes
//! from a real socket to a member's real socket, so a datagram counts as
//! delivered only where an application would see it.

use std::{
    net::{Ipv4Addr, UdpSocket},
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use igmp_lab::{Member, DATA_PORT};

/// Sends a datagram to `group` every 500 µs from `socket` while `replace`
/// runs (it starts half a second in), and until `after` more have gone out
/// once it returned: however long the new daemon's start takes (a guest
/// under TCG verifies for seconds), the stream spans it. Hands back the
/// datagrams sent and those `member` received.
pub fn stream_across(
    socket: &UdpSocket,
    group: Ipv4Addr,
    member: &Member,
    after: usize,
    replace: impl FnOnce(),
) -> (usize, usize) {
    let replaced = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let (mut sent, mut since) = (0u32, 0);
            while since < after {
                socket
                    .send_to(&sent.to_be_bytes(), (group, DATA_PORT))
                    .expect("sending the stream");
                sent += 1;
                if replaced.load(Ordering::SeqCst) {
                    since += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            sent as usize
        });
        let receiver = scope.spawn(|| member.drain());
        std::thread::sleep(Duration::from_millis(500));
        replace();
        replaced.store(true, Ordering::SeqCst);
        (
            sender.join().expect("sender thread"),
            receiver.join().expect("receiver thread"),
        )
    })
}

/// Makes the table pinned under `pin_dir` look like one of layout 0 (the
/// builds before the layout version) while the program runs on: the version
/// goes, and `COUNTERS` is pinned in its old size, without headroom (22 + 17
/// counters), and MLD's maps are not pinned at all; the running program
/// keeps the maps it has.
pub fn pin_layout_0(pin_dir: &Path) {
    std::fs::remove_file(pin_dir.join("LAYOUT_VERSION")).expect("LAYOUT_VERSION pinned");
    std::fs::remove_file(pin_dir.join("COUNTERS")).expect("COUNTERS pinned");
    crate::pin_map(&pin_dir.join("COUNTERS"), "percpu_hash", 4, 312, 16);
    // Builds of layout 0 had no MLD: none of its maps was pinned.
    use igmp_common::map_names;
    for name in [
        map_names::MEMBERSHIP6,
        map_names::SOURCES6,
        map_names::ROUTER_PORTS6,
        map_names::HOSTS6,
        map_names::V1_HOSTS6,
        map_names::GROUPS6,
        map_names::ROUTER_EPOCH6,
        map_names::EVENTS6,
    ] {
        std::fs::remove_file(pin_dir.join(name)).unwrap_or_else(|_| panic!("{name} pinned"));
    }
}

/// The layout version pinned beside the table (0 if maps are pinned without one).
pub fn pinned_layout(pin_dir: &Path) -> u32 {
    igmp_user::layout::pinned_version(pin_dir)
        .expect("reading LAYOUT_VERSION")
        .expect("a table pinned")
}
