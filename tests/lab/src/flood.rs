//! A host sending raw frames as fast as one socket can: a spoofed report flood.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::{inject::Injector, Host};

/// Sends `frame_for(0)`, `frame_for(1)`, ... out of the host's interface
/// for `duration`, back to back; returns how many frames went out. A frame
/// the interface has no room for (ENOBUFS) is not counted.
pub fn flood(
    host: &Host,
    duration: Duration,
    mut frame_for: impl FnMut(u64) -> Vec<u8>,
) -> Result<u64> {
    let injector = Injector::open(host)?;
    let end = Instant::now() + duration;
    let mut sent = 0u64;
    while Instant::now() < end {
        match injector.send(&frame_for(sent)) {
            Ok(()) => sent += 1,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(error) => return Err(error).context("flooding raw frames"),
        }
    }
    Ok(sent)
}
