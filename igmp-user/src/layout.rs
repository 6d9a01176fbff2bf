//! The version of the table's layout, pinned beside the maps
//! (`LAYOUT_VERSION`, a one-entry array), and the way from every earlier
//! version to this build's (`registry::TABLE_LAYOUT`). A start reads the
//! pinned version before the program is loaded on the pinned maps:
//!
//! - no version and no map pinned: a fresh table; this version is pinned
//!   once the load made the maps;
//! - no version but maps pinned: version 0, a table of a build from before
//!   versions were pinned;
//! - an older version: every step from it to this one runs in turn, each
//!   reading the state maps with the layouts of the version it starts from
//!   (kept below for every released version) and writing them in the next;
//! - a newer version: refused in one line. An older build cannot know what
//!   a newer one's table means; the operator runs the newer build or drops
//!   the table with `igmp-snoop detach`.
//!
//! Derived maps and statistics never need a step: `loader.rs` makes them
//! anew when their layout changed.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use aya::maps::{Array, Map, MapData, MapInfo};
use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_ARRAY;
use igmp_common::{map_names, registry};

/// The state maps' (key, value) sizes in version 0, as the builds before
/// the version was pinned left them. Version 1 changed none of them (it
/// gave the counters headroom, which are statistics).
const VERSION_0_STATE: [(&str, usize, usize); 9] = [
    (map_names::MEMBERSHIP, 12, 32),
    (map_names::SOURCES, 16, 24),
    (map_names::ROUTER_PORTS, 8, 24),
    (map_names::HOSTS, 16, 8),
    (map_names::V1_HOSTS, 12, 8),
    (map_names::GROUPS_ADDED, 4, 8),
    (map_names::GROUPS_REMOVED, 4, 8),
    (map_names::REPORT_RATE, 4, 8),
    (map_names::ROUTER_EPOCH, 4, 4),
];

/// One step: the table of version `from` becomes one of version `from + 1`.
struct Step {
    from: u32,
    /// What the step does, for the log.
    what: &'static str,
    run: fn(&Path) -> Result<()>,
}

/// Every step, oldest first.
const STEPS: [Step; 1] = [Step {
    from: 0,
    what: "the state maps keep their layout",
    run: version_0_to_1,
}];

/// Brings the table pinned under `pin_dir` to this build's layout, before
/// the program is loaded on it; refuses a newer table.
pub fn migrate(pin_dir: &Path) -> Result<()> {
    let Some(pinned) = pinned_version(pin_dir)? else {
        return Ok(());
    };
    let current = registry::TABLE_LAYOUT;
    if pinned > current {
        bail!(
            "{}: the table was pinned by a newer igmp-snoop (table layout {pinned}, this one \
             reads up to {current}): run that version, or drop the table with \
             `igmp-snoop detach --pin-dir {}`",
            pin_dir.display(),
            pin_dir.display()
        );
    }
    for step in STEPS.iter().filter(|step| step.from >= pinned) {
        (step.run)(pin_dir).with_context(|| {
            format!(
                "{}: carrying the table from layout {} to {}",
                pin_dir.display(),
                step.from,
                step.from + 1
            )
        })?;
        tracing::info!(
            from = step.from,
            to = step.from + 1,
            "table layout migrated: {}",
            step.what
        );
    }
    Ok(())
}

/// Pins this build's version beside the maps the load pinned.
pub fn pin_current(pin_dir: &Path) -> Result<()> {
    let path = pin_dir.join(map_names::LAYOUT_VERSION);
    let data = match MapData::from_pin(&path) {
        Ok(data) => data,
        Err(_) => {
            let definition = aya_obj::Map::new_from_params(BPF_MAP_TYPE_ARRAY as u32, 4, 4, 1, 0);
            let data = MapData::create(definition, map_names::LAYOUT_VERSION, None)
                .context("creating the LAYOUT_VERSION map")?;
            data.pin(&path)
                .with_context(|| format!("pinning {}", path.display()))?;
            data
        }
    };
    let mut version: Array<MapData, u32> = Array::try_from(Map::Array(data))?;
    version
        .set(0, registry::TABLE_LAYOUT, 0)
        .context("writing the LAYOUT_VERSION map")
}

/// The version pinned under `pin_dir`: `None` for a directory without a
/// table, 0 for a table pinned before versions were.
pub fn pinned_version(pin_dir: &Path) -> Result<Option<u32>> {
    let path = pin_dir.join(map_names::LAYOUT_VERSION);
    if path.exists() {
        let data = MapData::from_pin(&path)
            .with_context(|| format!("{}: cannot open this pinned map", path.display()))?;
        let version: Array<MapData, u32> = Array::try_from(Map::Array(data))
            .with_context(|| format!("{}: not a one-u32 array", path.display()))?;
        return Ok(Some(version.get(&0, 0)?));
    }
    let any_map = map_names::ALL
        .iter()
        .any(|name| pin_dir.join(name).exists());
    Ok(any_map.then_some(0))
}

/// 0 → 1: no state map changed layout. The step checks that the table is
/// version 0's indeed: a state map of another layout is no table this
/// build knows, and is refused rather than read as something it is not.
fn version_0_to_1(pin_dir: &Path) -> Result<()> {
    for (name, key, value) in VERSION_0_STATE {
        let path = pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path)
            .with_context(|| format!("{}: not a BPF map", path.display()))?;
        if (info.key_size() as usize, info.value_size() as usize) != (key, value) {
            bail!(
                "{}: pinned by an incompatible version (key {} / value {} bytes, layout 0 has \
                 {key} / {value}); remove the old table with `igmp-snoop detach --pin-dir {}`",
                path.display(),
                info.key_size(),
                info.value_size(),
                pin_dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1 kept version 0's state layouts: the step that carries a
    /// version-0 table over reads it as it is, which holds only while this does.
    #[test]
    fn version_1_state_layouts_are_version_0s() {
        for (name, key, value) in VERSION_0_STATE {
            let spec = registry::MAPS
                .iter()
                .find(|map| map.name == name)
                .unwrap_or_else(|| panic!("{name} not registered"));
            assert_eq!(spec.kind, registry::MapKind::State, "{name}");
            assert_eq!(spec.layout, Some((key, value)), "{name}");
        }
    }

    #[test]
    fn every_version_has_its_step() {
        let froms: Vec<u32> = STEPS.iter().map(|step| step.from).collect();
        let expected: Vec<u32> = (0..registry::TABLE_LAYOUT).collect();
        assert_eq!(froms, expected);
    }
}
