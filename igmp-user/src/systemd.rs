//! Tells systemd (`Type=notify`) where the daemon is in its life: `READY=1`
//! once every port is attached and the maps are published, `STOPPING=1`
//! when a stop signal arrived. Without `$NOTIFY_SOCKET` (not under systemd)
//! it does nothing. It must not decide anything: a failed notification is a
//! warning, never a reason to stop.

use sd_notify::NotifyState;
use tracing::warn;

/// Every port is attached: `systemctl start` returns and units ordered after this one start.
pub fn ready() {
    notify(NotifyState::Ready);
}

/// A stop signal arrived: the ports are being released.
pub fn stopping() {
    notify(NotifyState::Stopping);
}

fn notify(state: NotifyState) {
    if let Err(error) = sd_notify::notify(&[state]) {
        warn!(%error, "cannot notify systemd");
    }
}
