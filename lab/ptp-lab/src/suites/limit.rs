//! The limits the map suite measures beside ours: what any mapper must at least do to the
//! bytes of the entries, on flat memory with no table structure. Each is a plain loop the
//! compiler vectorises, built for AVX2 where the CPU has it (the path the mapper takes, as
//! [`vystem_ptp::Fill`] says), else SSE2.
//!
//! - the store limit: a memset of the bytes written (mapping into fresh tables);
//! - read + memset: every entry read before any is written (mapping into tables that exist
//!   must find them free first: all or nothing), then the memset;
//! - read + clear: every entry read as it is cleared (an unmap counts the pages it unmaps and
//!   tells leaves from tables), after a read of all of them first where huge pages could be
//!   cut through (the check before anything changes).

use vystem_ptp::Fill;

/// Memset of `entries`.
pub fn store(entries: &mut [u64]) {
    // SAFETY: a slice's own bytes; write_bytes is the memset the limit measures.
    unsafe { core::ptr::write_bytes(entries.as_mut_ptr(), 0, entries.len()) }
}

/// Read all of `entries` (an OR over them), then memset them; the OR is returned so the read
/// cannot be left out.
pub fn read_then_store(fill: Fill, entries: &mut [u64]) -> u64 {
    let seen = read(fill, entries);
    store(entries);
    seen
}

/// Read and clear each of `entries`, counting those not zero; with `check`, after a read of
/// all of them first.
pub fn read_clear(fill: Fill, entries: &mut [u64], check: bool) -> u64 {
    let seen = if check { read(fill, entries) } else { 0 };
    let n = if avx2(fill) {
        // SAFETY: `avx2` checked the CPU's path.
        unsafe { count_clear_avx2(entries) }
    } else {
        count_clear(entries)
    };
    n + (seen & 1)
}

fn avx2(fill: Fill) -> bool {
    fill.name() == "avx2"
}

fn read(fill: Fill, entries: &[u64]) -> u64 {
    if avx2(fill) {
        // SAFETY: as above.
        unsafe { or_avx2(entries) }
    } else {
        or(entries)
    }
}

#[inline(always)]
fn or(entries: &[u64]) -> u64 {
    entries.iter().fold(0, |a, &e| a | e)
}

#[inline(always)]
fn count_clear(entries: &mut [u64]) -> u64 {
    let mut n = 0;
    for e in entries.iter_mut() {
        n += (*e != 0) as u64;
        *e = 0;
    }
    n
}

#[target_feature(enable = "avx2")]
unsafe fn or_avx2(entries: &[u64]) -> u64 {
    or(entries)
}

#[target_feature(enable = "avx2")]
unsafe fn count_clear_avx2(entries: &mut [u64]) -> u64 {
    count_clear(entries)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn each_limit_does_what_it_stands_for() {
        let mut v: std::vec::Vec<u64> = (0..100u64).map(|i| i % 4).collect();
        assert_eq!(read_clear(Fill::SSE2, &mut v, true), 75 + 1);
        assert!(v.iter().all(|&e| e == 0));
        let mut w = std::vec![0u64, 8, 0];
        assert_eq!(read_then_store(Fill::SSE2, &mut w), 8);
        assert_eq!(w, [0, 0, 0]);
    }
}
