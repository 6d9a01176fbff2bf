//! Interface names and indexes in this process's network namespace, and
//! the cache of names the daemon prints in every event it handles.

use std::{
    collections::BTreeMap,
    ffi::CString,
    sync::{Mutex, PoisonError},
};

use anyhow::{bail, Context as _, Result};

/// The ifindex of `interface` in this network namespace.
pub fn interface_index(interface: &str) -> Result<u32> {
    let name =
        CString::new(interface).with_context(|| format!("{interface:?}: not an interface name"))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("{interface}: no such interface");
    }
    Ok(index)
}

/// Names already looked up: `if_indextoname` costs a socket, an ioctl and a
/// close, and the daemon names a port in every event it handles. The daemon
/// forgets them on every link notification (a rename, a deletion).
static INTERFACE_NAMES: Mutex<BTreeMap<u32, String>> = Mutex::new(BTreeMap::new());

/// The name of interface `ifindex`, or `if<N>` when it is gone or in another namespace.
pub fn interface_name(ifindex: u32) -> String {
    let mut names = INTERFACE_NAMES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(name) = names.get(&ifindex) {
        return name.clone();
    }
    match look_up_interface_name(ifindex) {
        Some(name) => names.entry(ifindex).or_insert(name).clone(),
        None => format!("if{ifindex}"),
    }
}

/// Drops every remembered interface name: the links changed.
pub fn forget_interface_names() {
    INTERFACE_NAMES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

fn look_up_interface_name(ifindex: u32) -> Option<String> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buffer` holds IF_NAMESIZE bytes as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(ifindex, buffer.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    Some(name.to_string_lossy().into_owned())
}
