//! IGMP and MLD wire headers. Read whole, never byte by byte: LLVM turns a one-byte
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

/// A group record header of an IGMPv3 report (RFC 3376 §4.2.4) or a
/// multicast address record header of an MLDv2 report (RFC 3810 §5.2.4):
/// the same fields, over the family's address.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RecordHeader<A> {
    pub kind: u8,
    /// Aux Data Len, in 32-bit words.
    pub aux_words: u8,
    pub sources: [u8; 2],
    pub group: A,
}

/// The first 24 octets of an MLDv1 message or an MLDv2 query (RFC 2710 §3,
/// RFC 3810 §5.1).
#[repr(C)]
pub struct MldHeader {
    pub kind: u8,
    pub code: u8,
    pub checksum: [u8; 2],
    /// Maximum Response Delay (v1, milliseconds) / Code (v2).
    pub max_response: [u8; 2],
    pub reserved: [u8; 2],
    pub group: [u8; 16],
}

impl MldHeader {
    #[inline(always)]
    pub fn max_response(&self) -> u16 {
        u16::from_be_bytes(self.max_response)
    }
}

/// Octets 24..28 of an MLDv2 query (RFC 3810 §5.1.7 – §5.1.10).
#[repr(C)]
pub struct MldQueryTail {
    /// Resv (4 bits), S flag (1 bit), QRV (3 bits).
    pub s_qrv: u8,
    pub qqic: u8,
    pub sources: [u8; 2],
}
