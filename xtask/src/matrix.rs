//! `cargo xtask test --kernel 6.1|6.12` and `cargo xtask test --matrix`: the
//! test executables built on the host, run inside guest kernels (vm.rs), one
//! boot per suite. GUEST_SUITES is the one place that says which tests the
//! guests run; everything else follows from it. The guests run no cargo: the
//! executables and the daemon are the host's build, at the host's paths.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{
    kernels::{self, Series},
    vm::{Guest, Outcome},
    workspace_root, Totals,
};

/// Tests of one file of tests/tests that the guests run.
pub struct Suite {
    /// The file's stem: tests/tests/<file>.rs.
    file: &'static str,
    /// Test names (exact, or an rstest function: every case of it); empty: every test of the file.
    tests: &'static [&'static str],
    /// Minutes the guest gets, boot included, before it is stopped and failed.
    minutes: u64,
    /// virtio_net NICs the guest gets, cabled in pairs (`Lab::on_nics`).
    nics: u8,
    /// Why the guests run it.
    why: &'static str,
}

/// What each guest kernel runs: TCG is slow, so the whole BPF_PROG_TEST_RUN
/// tier (the xdp_ files) and the lab tests (lab_ files) whose outcome depends
/// on the kernel, not timers.
pub const GUEST_SUITES: &[Suite] = &[
    Suite {
        file: "xdp_parse",
        tests: &[],
        // Two minutes alone; 138 program loads under TCG took over five on a
        // machine busy with builds.
        minutes: 10,
        nics: 0,
        why: "every parse branch through BPF_PROG_TEST_RUN: the verifier takes the program",
    },
    Suite {
        file: "xdp_sources",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "IGMPv3 source tables merged per port, and query sources handed to user space",
    },
    Suite {
        file: "xdp_fastpath",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "the per-frame forwarding decision: redirects and devmap broadcasts",
    },
    // Not the_rate_refills_with_time: it needs two BPF_PROG_TEST_RUNs within the
    // millisecond of one token, and under TCG one takes longer.
    Suite {
        file: "xdp_limits",
        tests: &[
            "a_port_at_its_limit_refuses_new_groups_and_keeps_the_old_ones",
            "a_removed_group_gives_its_place_back",
            "the_switch_limit_holds_whatever_the_port_allows",
            "without_limits_every_group_is_taken",
            "reports_past_the_burst_are_counted_and_dropped",
            "the_rate_limit_spares_queries_and_data",
        ],
        minutes: 5,
        nics: 0,
        why: "group limits and the report rate inside the program",
    },
    Suite {
        file: "xdp_ports",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "per-port options as the program applies them",
    },
    Suite {
        file: "xdp_corpus",
        tests: &[],
        minutes: 8,
        nics: 0,
        why: "the malformed-frame corpus through BPF_PROG_TEST_RUN in both hooks: no frame slips \
              past a bound",
    },
    Suite {
        file: "xdp_mld",
        // A selection: the whole file (241 cases, two program loads each)
        // takes over three minutes on the host, well past ten under TCG.
        // Each kind of message, walk and verdict once, in both hooks; every
        // drop reason's own frame runs on the host and in xdp_corpus here.
        tests: &[
            "mldv1_report_creates_an_exclude_entry_of_version_1",
            "done_marks_the_entry_leaving",
            "v2_exclude_records_join_and_list_excluded_sources",
            "v2_block_marks_known_sources_leaving_and_ignores_unknown_ones",
            "v2_sources_past_the_bound_are_cut_and_the_group_flagged",
            "queries_from_a_link_local_source_make_a_router_port",
            "a_group_and_source_query_names_its_sources_to_user_space",
            "extension_headers_within_the_bound_are_walked",
            "an_mldv2_report_cut_short_with_a_consistent_length_changes_nothing",
            "mld_membership_is_kept_per_vlan",
            "a_registered_ipv6_group_is_redirected",
            "a_registered_solicited_node_group_is_redirected",
            "unregistered_ipv6_groups_follow_their_own_policy",
            "an_ipv6_router_port_learned_since_brings_the_broadcast_back",
            "mld_reports_and_done_go_to_router_ports_once_an_mld_querier_is_known",
        ],
        minutes: 6,
        nics: 0,
        why: "the MLD programs through BPF_PROG_TEST_RUN: the verifier takes them (IPv6, MLD \
              and MLDv2 reports in programs of their own, reached by tail calls), each message \
              kind, the extension-header walk, IPv6 data verdicts",
    },
    Suite {
        file: "xdp_bpftool",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "the pinned maps' BTF as the kernel's bpftool support reads it",
    },
    Suite {
        file: "lab",
        tests: &[
            "kernel_clients_of_every_version_fill_the_table_with_exactly_their_joins",
            "v2_and_v3_leaves_remove_only_the_leaver_after_the_last_member_query_time",
            "v3_source_specific_join_records_an_include_source",
            "v3_include_and_exclude_changes_follow_the_host_filter",
        ],
        minutes: 5,
        nics: 0,
        why: "load, attach and learning from the kernel's own v1/v2/v3 clients",
    },
    Suite {
        file: "lab_corpus",
        tests: &[
            "the_corpus_on_the_wire_changes_no_table_and_the_daemon_keeps_running::attach_2___tc__",
        ],
        minutes: 8,
        nics: 0,
        why: "the malformed-frame corpus on a wire into tc, whose skbs the kernel has untagged: \
              no frame slips past a bound",
    },
    Suite {
        file: "lab_tc",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "the tc classifier's redirects and its clones along port lists, on real wires",
    },
    Suite {
        file: "lab_forwarding",
        tests: &[
            "the_fast_path_delivers_what_the_bridge_delivers_before_and_after_a_leave",
            "groups_go_to_their_sole_port_or_their_destination_set_only",
            "a_group_is_sent_to_without_per_port_checks_until_a_member_lists_a_source",
        ],
        minutes: 5,
        nics: 0,
        why: "who receives what, against the bridge's own snooping; sole port and destination \
              sets in XDP and tc",
    },
    Suite {
        file: "lab_containers",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "container ports at veth defaults: datagrams at real sockets and iperf2, checksums \
              whole, VLAN devices in the containers (8021q: not in the host kernel)",
    },
    Suite {
        file: "lab_vlan_bridge",
        tests: &[],
        minutes: 4,
        nics: 0,
        why: "a VLAN-filtering bridge: the same table as the bridge's per-VLAN snooping, and \
              the same deliveries, tags included, with the fast path (not in the host kernel)",
    },
    Suite {
        file: "lab_nics",
        tests: &[],
        minutes: 5,
        nics: 6,
        why: "native XDP on virtio_net NICs: a real driver's redirect (ndo_xdp_xmit), \
              tags kept, and the attach mode picked from the NICs' VLAN offloads",
    },
    Suite {
        file: "lab_differential",
        tests: &[],
        minutes: 5,
        nics: 0,
        why: "the table the kernel's clients give, against the bridge's own snooping",
    },
    Suite {
        file: "lab_mld",
        tests: &[
            "igmp_and_mld_joins_leaves_and_deliveries_match_the_linux_bridges_snooping",
            "neighbour_discovery_and_router_advertisements_work_with_snooping_on",
            "dhcpv6_to_all_agents_reaches_the_server_and_not_the_other_hosts",
            "with_an_mld_querier_known_reports_reach_router_ports_only_as_on_the_bridge",
        ],
        minutes: 6,
        nics: 0,
        why:
            "MLD beside IGMP from the kernel's own hosts against the bridge's snooping (table and \
              who receives, both families), neighbour discovery, router advertisements and DHCPv6 with snooping on",
    },
    Suite {
        file: "lab_lifecycle",
        tests: &[
            "sigkill_keeps_forwarding_state_and_a_restart_adopts_it",
            "keep_attached_survives_sigterm_and_detach_removes_everything",
            "a_restart_in_the_other_hook_moves_every_port_and_keeps_the_table",
            "a_group_first_joined_with_no_daemon_is_forwarded_from_its_first_report",
        ],
        minutes: 5,
        nics: 0,
        why: "pins, tc filters and XDP links kept across a crash, adopted by a restart, moved \
              from one hook to the other",
    },
    Suite {
        file: "lab_faults",
        tests: &[
            "multicast_keeps_flowing_through_the_fast_path_while_the_daemon_is_replaced",
            "a_table_of_a_newer_layout_is_refused_in_one_line",
        ],
        minutes: 7,
        nics: 0,
        why: "adoption while multicast flows through the fast path (a kill, a stop with \
              --keep-attached, an upgrade from a table of layout 0, a stop without it): no \
              datagram lost at the member's socket; a newer layout refused",
    },
    Suite {
        file: "lab_statics",
        tests: &["a_static_group_reaches_a_port_whose_host_never_reports_until_it_is_deleted"],
        minutes: 5,
        nics: 0,
        why:
            "a static group forwarded, kept through a leave and another querier's queries, deleted",
    },
    Suite {
        file: "lab_cli",
        tests: &["counters_and_derived_maps_of_another_layout_are_made_anew"],
        minutes: 5,
        nics: 0,
        why: "an upgrade's counters and derived maps of another layout made anew",
    },
];

/// One part of a run (the host suite, or one guest kernel): its counts and time.
pub struct Part {
    pub name: String,
    pub totals: Totals,
    pub success: bool,
    pub elapsed: Duration,
}

/// Builds the test executables and runs GUEST_SUITES in the series' kernel.
/// `extra`: words narrow the selection to tests whose name holds one of them;
/// options (`--nocapture`, `--test-threads=1`, ...) go to every executable.
pub fn run_kernel(series: Series, extra: &[String]) -> Result<Part> {
    let started = Instant::now();
    let kernel = kernels::ensure(series)?;
    let executables = build_tests()?;
    let (options, filters) = split_extra(extra);
    let mut totals = Totals::default();
    let mut success = true;
    for suite in GUEST_SUITES {
        let source = workspace_root().join(format!("tests/tests/{}.rs", suite.file));
        let exe = executables.get(&source).with_context(|| {
            format!(
                "GUEST_SUITES: {} is not a test target; update the table in xtask/src/matrix.rs",
                source.display()
            )
        })?;
        let tests = select(suite, &exe.path, &filters)?;
        if tests.is_empty() {
            continue;
        }
        eprintln!(
            "     Running tests/tests/{}.rs in {} ({} of its tests: {})",
            suite.file,
            kernel.version,
            tests.len(),
            suite.why
        );
        let guest = Guest {
            kernel: kernel.clone(),
            nics: suite.nics,
            memory: "4G".into(),
            cpus: 2,
            timeout: Duration::from_secs(suite.minutes * 60),
            console: false,
        };
        // Ignored tests named here are those the host kernel cannot run (8021q).
        let mut command = vec![
            exe.path.to_string_lossy().into_owned(),
            "--exact".into(),
            "--include-ignored".into(),
        ];
        command.extend(options.iter().cloned());
        command.extend(tests.iter().cloned());
        let suite_started = Instant::now();
        let mut attempt = 0;
        let (outcome, mut seen, summary, ok_lines) = loop {
            attempt += 1;
            let mut seen = Totals::default();
            let mut summary = false;
            let mut ok_lines = 0u64;
            let mut any_line = false;
            let mut stdout = std::io::stdout();
            let outcome = guest.run(&exe.manifest_dir, &command, &mut |line| {
                let _ = stdout.write_all(line);
                let _ = stdout.flush();
                any_line = true;
                let text = String::from_utf8_lossy(line);
                let text = text.trim_end();
                summary |= text.starts_with("test result: ");
                if text.starts_with("test ") && text.ends_with(" ... ok") {
                    ok_lines += 1;
                }
                seen.add(text);
            })?;
            // A kernel that dies while booting under TCG, before the tests
            // printed a line (seen once: an int3 in sched_clock_cpu in 6.12's
            // early boot), says nothing about the tests: boot once more.
            let died_booting = matches!(outcome, Outcome::Panicked(_) | Outcome::Lost(_));
            if died_booting && !any_line && attempt == 1 {
                eprintln!(
                    "test --kernel: tests/tests/{}.rs: the guest died before the tests started; booting again",
                    suite.file
                );
                continue;
            }
            break (outcome, seen, summary, ok_lines);
        };
        if matches!(outcome, Outcome::Interrupted) {
            bail!("interrupted");
        }
        if let Some(problem) = outcome.problem(&guest) {
            let hint = match outcome {
                Outcome::TimedOut(_) => {
                    "; raise its minutes in GUEST_SUITES (xtask/src/matrix.rs) if it was only slow"
                }
                _ => "",
            };
            eprintln!(
                "test --kernel: tests/tests/{}.rs: {problem}{hint}",
                suite.file
            );
        }
        if !summary {
            // The guest died under the suite: what did not pass has failed.
            seen.passed = ok_lines;
            seen.failed = tests.len() as u64 - ok_lines.min(tests.len() as u64);
        }
        eprintln!(
            "     tests/tests/{}.rs in {}: {} passed, {} failed, {}",
            suite.file,
            series,
            seen.passed,
            seen.failed,
            minutes_seconds(suite_started.elapsed())
        );
        success &= matches!(outcome, Outcome::Exited(0)) && seen.failed == 0;
        totals.passed += seen.passed;
        totals.failed += seen.failed;
    }
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(Part {
        name: series.name().into(),
        totals,
        success,
        elapsed: started.elapsed(),
    })
}

/// The host suite, then every guest kernel; one line per part and the totals.
pub fn run_matrix() -> Result<bool> {
    let started = Instant::now();
    let host_started = Instant::now();
    let host = crate::test(&[])?;
    let mut parts = vec![Part {
        name: "host".into(),
        totals: host.0,
        success: host.1,
        elapsed: host_started.elapsed(),
    }];
    for series in Series::ALL {
        parts.push(run_kernel(series, &[])?);
    }
    let mut totals = Totals::default();
    for part in &parts {
        println!(
            "matrix: {:<4} {:>9}  {} passed, {} failed",
            part.name,
            minutes_seconds(part.elapsed),
            part.totals.passed,
            part.totals.failed
        );
        totals.passed += part.totals.passed;
        totals.failed += part.totals.failed;
    }
    println!("matrix: all  {:>9}", minutes_seconds(started.elapsed()));
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(parts.iter().all(|part| part.success))
}

fn minutes_seconds(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{} min {:02} s", seconds / 60, seconds % 60)
}

/// A test executable and the directory cargo would run it in (its package's).
struct Executable {
    path: PathBuf,
    manifest_dir: PathBuf,
}

/// `cargo test --no-run`: the integration-test executables by source file.
fn build_tests() -> Result<BTreeMap<PathBuf, Executable>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(["test", "--workspace", "--no-run"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test --no-run")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut executables = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let is_test = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "test"));
        let (Some(path), Some(source), Some(manifest)) = (
            message["executable"].as_str(),
            message["target"]["src_path"].as_str(),
            message["manifest_path"].as_str(),
        ) else {
            continue;
        };
        if is_test {
            let manifest_dir = Path::new(manifest)
                .parent()
                .context("a manifest path without a directory")?
                .to_path_buf();
            executables.insert(
                PathBuf::from(source),
                Executable {
                    path: PathBuf::from(path),
                    manifest_dir,
                },
            );
        }
    }
    if !child.wait()?.success() {
        bail!("cargo test --no-run failed");
    }
    Ok(executables)
}

/// The suite's test names, checked against the executable's own list (run on
/// the host: listing loads nothing), narrowed to those holding a filter.
fn select(suite: &Suite, exe: &Path, filters: &[String]) -> Result<Vec<String>> {
    let output = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .with_context(|| format!("listing the tests of {}", exe.display()))?;
    if !output.status.success() {
        bail!("{} --list failed", exe.display());
    }
    let listed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    let mut chosen = Vec::new();
    if suite.tests.is_empty() {
        chosen = listed;
    } else {
        for name in suite.tests {
            // A name picks the test, or every case of an rstest function.
            let picked: Vec<String> = listed
                .iter()
                .filter(|listed| {
                    *listed == name
                        || listed
                            .strip_prefix(name)
                            .is_some_and(|case| case.starts_with("::"))
                })
                .cloned()
                .collect();
            if picked.is_empty() {
                bail!(
                    "GUEST_SUITES: tests/tests/{}.rs has no test {name}; update the table in xtask/src/matrix.rs",
                    suite.file
                );
            }
            chosen.extend(picked);
        }
    }
    if !filters.is_empty() {
        chosen.retain(|name| filters.iter().any(|filter| name.contains(filter.as_str())));
    }
    Ok(chosen)
}

/// Splits the extra arguments into libtest options and name filters.
fn split_extra(extra: &[String]) -> (Vec<String>, Vec<String>) {
    /// libtest options whose value may be the next argument.
    const WITH_VALUE: &[&str] = &["--test-threads", "--skip", "--color", "--format", "-Z"];
    let (mut options, mut filters) = (Vec::new(), Vec::new());
    let mut words = extra.iter().filter(|word| *word != "--");
    while let Some(word) = words.next() {
        if word.starts_with('-') {
            options.push(word.clone());
            if WITH_VALUE.contains(&word.as_str()) {
                options.extend(words.next().cloned());
            }
        } else {
            filters.push(word.clone());
        }
    }
    (options, filters)
}
