//! The signals that stop the daemon: SIGINT, SIGTERM and SIGHUP (the
//! terminal it ran in closed). All three are caught from before `run`
//! changes anything, so that none kills the process halfway through its
//! start: one that arrives during the start is seen at its next step, which
//! undoes what the start did, and one that arrives later stops the daemon
//! the clean way (detaching, unless `--keep-attached`).

use std::task::{Context, Waker};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct StopSignals {
    caught: [(&'static str, Signal); 3],
}

impl StopSignals {
    pub fn install() -> Result<Self> {
        let catch = |name: &'static str, kind: SignalKind| -> Result<(&'static str, Signal)> {
            let caught = signal(kind).with_context(|| format!("installing the {name} handler"))?;
            Ok((name, caught))
        };
        Ok(Self {
            caught: [
                catch("SIGINT", SignalKind::interrupt())?,
                catch("SIGTERM", SignalKind::terminate())?,
                catch("SIGHUP", SignalKind::hangup())?,
            ],
        })
    }

    /// The signal that arrived since the last look, if one did. It waits only
    /// for the runtime to read what the kernel delivered: a signal reaches
    /// these streams when the runtime's driver runs, not while this task does.
    pub async fn arrived(&mut self) -> Option<&'static str> {
        tokio::task::yield_now().await;
        let mut context = Context::from_waker(Waker::noop());
        self.caught
            .iter_mut()
            .find_map(|(name, signal)| signal.poll_recv(&mut context).is_ready().then_some(*name))
    }

    /// Waits for the next one; returns its name.
    pub async fn next(mut self) -> &'static str {
        let [(int, interrupt), (term, terminate), (hup, hangup)] = &mut self.caught;
        tokio::select! {
            _ = interrupt.recv() => int,
            _ = terminate.recv() => term,
            _ = hangup.recv() => hup,
        }
    }
}
