//! IGMP wire headers. Read whole, never byte by byte: LLVM turns a one-byte
//! bounds check `at + 1 > end` into `at >= end`, which the verifier cannot
//! use to prove the access safe.

/// The first 8 octets of every IGMP message (RFC 2236 §2, RFC 3376 §4.1).
#[repr(C)]
pub struct IgmpHeader {
    pub kind: u8,
    /// Max Resp Time (v2) / Max Resp Code (v3); 0 in v1 queries.
    pub max_resp_code: u8,
    pub checksum: [u8; 2],
    /// Group Address (queries, v1/v2 reports and leaves); for v3 reports
    /// bytes 6..8 hold the Number of Group Records.
    pub group: [u8; 4],
}

impl IgmpHeader {
    /// Number of Group Records of a v3 report (RFC 3376 §4.2).
    #[inline(always)]
    pub fn v3_records(&self) -> usize {
        usize::from(u16::from_be_bytes([self.group[2], self.group[3]]))
    }
}

/// Octets 8..12 of a v3 query (RFC 3376 §4.1.5 – §4.1.8).
#[repr(C)]
pub struct V3QueryTail {
    /// Resv (4 bits), S flag (1 bit), QRV (3 bits).
    pub s_qrv: u8,
    pub qqic: u8,
    pub sources: [u8; 2],
}

/// A v3 group record header (RFC 3376 §4.2.4).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RecordHeader {
    pub kind: u8,
    /// Aux Data Len, in 32-bit words.
    pub aux_words: u8,
    pub sources: [u8; 2],
    pub group: [u8; 4],
}
