//! Shared helpers of igmp-snoop's tests and benchmarks: frame builders, the
//! BPF_PROG_TEST_RUN harness and the lab of network namespaces.

pub mod frames;
pub mod harness;

