//! The innermost loops that read entries: whether a run of entries is all free (mapping into
//! tables that exist), whether it holds a table, and clearing the leaves of a run while
//! counting them, its tables kept (unmapping). Written without branches so
//! the compiler vectorises them, with an AVX2 build of each that the mapper's [`Fill`] choice
//! selects (as [`crate::fill`] does for writing entries).

use crate::fill::Fill;

/// PageTableFlags::HUGE_PAGE's bit, shifted over PRESENT (bit 0).
const HUGE_SHIFT: u32 = 7;
const HUGE_SHIFT_I: i32 = HUGE_SHIFT as i32;

/// Whether any entry of `run` is in use (not zero).
#[inline]
pub(crate) fn any_used(fill: Fill, run: &[u64]) -> bool {
    if fill.is_avx2() && run.len() >= 16 {
        // SAFETY: whoever built `Fill::avx2` vouched for AVX2.
        unsafe { any_used_avx2(run) }
    } else {
        any_used_any(run)
    }
}

#[inline(always)]
fn any_used_any(run: &[u64]) -> bool {
    run.iter().fold(0, |acc, &e| acc | e) != 0
}

#[target_feature(enable = "avx2")]
unsafe fn any_used_avx2(run: &[u64]) -> bool {
    any_used_any(run)
}

/// Whether `run` holds a table entry: present and not a huge page (above level 1).
#[inline]
pub(crate) fn tables_among(fill: Fill, run: &[u64]) -> bool {
    if fill.is_avx2() && run.len() >= 16 {
        // SAFETY: whoever built `Fill::avx2` vouched for AVX2.
        unsafe { tables_among_avx2(run) }
    } else {
        tables_among_any(run)
    }
}

/// Clear the leaves of `run` (every entry at level 1; huge pages above), one read and one
/// write of each entry: how many there were, and whether tables remain among the entries.
/// `leaves_only`: the caller knows there is no table among them (level 1, or a check saw it).
#[inline]
pub(crate) fn clear_leaves(fill: Fill, run: &mut [u64], leaves_only: bool) -> (u64, bool) {
    // Leaves only (the common case above level 1 too): a read pass to know it, then the
    // plain loop, cheaper together than the loop that keeps tables.
    let level1 = leaves_only || !tables_among(fill, run);
    if fill.is_avx2() && run.len() >= 16 {
        // SAFETY: as above.
        unsafe { clear_leaves_avx2(run, level1) }
    } else {
        clear_leaves_any(run, level1)
    }
}

#[inline(always)]
fn tables_among_any(run: &[u64]) -> bool {
    run.iter()
        .fold(0u64, |acc, &e| acc | (e & !(e >> HUGE_SHIFT)))
        & 1
        != 0
}

#[inline(always)]
fn clear_leaves_any(run: &mut [u64], level1: bool) -> (u64, bool) {
    if level1 {
        // Every entry is a leaf: the plain loop, which vectorises best.
        let mut n = 0u64;
        for e in run.iter_mut() {
            n += (*e != 0) as u64;
            *e = 0;
        }
        return (n, false);
    }
    let (mut n, mut tables) = (0u64, 0u64);
    for e in run.iter_mut() {
        let v = *e;
        let leaf = (v >> HUGE_SHIFT) & 1;
        let keep = v & leaf.wrapping_sub(1); // a leaf goes, a table (or a hole) stays
        n += leaf; // a huge page is never zero
        tables |= keep;
        *e = keep;
    }
    (n, tables != 0)
}

#[target_feature(enable = "avx2")]
unsafe fn tables_among_avx2(run: &[u64]) -> bool {
    tables_among_any(run)
}

/// Above level 1 written with intrinsics: from the plain loop the compiler makes a masked
/// store (only the leaves written), which is slow on some CPUs; this writes every entry.
#[target_feature(enable = "avx2")]
unsafe fn clear_leaves_avx2(run: &mut [u64], level1: bool) -> (u64, bool) {
    use core::arch::x86_64::*;
    if level1 {
        return clear_leaves_any(run, true);
    }
    let (mut n, mut tables) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let one = _mm256_set1_epi64x(1);
    let mut chunks = run.chunks_exact_mut(4);
    for c in &mut chunks {
        let p = c.as_mut_ptr() as *mut __m256i;
        // SAFETY: `c` is 4 entries; unaligned loads and stores.
        unsafe {
            let v = _mm256_loadu_si256(p);
            let leaf = _mm256_and_si256(_mm256_srli_epi64::<HUGE_SHIFT_I>(v), one);
            let is_leaf = _mm256_cmpeq_epi64(leaf, one);
            let keep = _mm256_andnot_si256(is_leaf, v);
            n = _mm256_add_epi64(n, leaf);
            tables = _mm256_or_si256(tables, keep);
            _mm256_storeu_si256(p, keep);
        }
    }
    let (rn, rt) = clear_leaves_any(chunks.into_remainder(), false);
    let mut lanes = [0u64; 4];
    let mut tl = [0u64; 4];
    // SAFETY: 4 lanes each.
    unsafe {
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, n);
        _mm256_storeu_si256(tl.as_mut_ptr() as *mut __m256i, tables);
    }
    (
        lanes.iter().sum::<u64>() + rn,
        rt || tl.iter().any(|&t| t != 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_count_clear_and_find_tables_alike() {
        let huge = 1 << 7;
        let mut paths = [Fill::SSE2].to_vec();
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 and the test runs under an OS that saves YMM.
            paths.push(unsafe { Fill::avx2() });
        }
        for fill in paths {
            for len in [0usize, 1, 15, 16, 17, 512] {
                let mut run: std::vec::Vec<u64> = (0..len as u64)
                    .map(|i| {
                        if i % 3 == 0 {
                            0
                        } else {
                            (0x1000 * i) | 1 | huge
                        }
                    })
                    .collect();
                assert!(!tables_among(fill, &run), "{fill:?} {len}");
                assert_eq!(any_used(fill, &run), len > 1, "{fill:?} {len}");
                if len > 0 {
                    run[len - 1] = 0x5000 | 3; // a present entry without HUGE_PAGE: a table
                    assert!(tables_among(fill, &run), "{fill:?} {len}");
                }
                let before = run.clone();
                let leaves = run.iter().filter(|&&e| e & huge != 0).count() as u64;
                assert_eq!(
                    clear_leaves(fill, &mut run, false),
                    (leaves, len > 0),
                    "{fill:?} {len}"
                );
                // The table stays, every leaf is gone.
                assert!(run
                    .iter()
                    .zip(&before)
                    .all(|(&now, &was)| now == if was & huge != 0 { 0 } else { was }));
                let mut level1 = before.clone();
                let present = before.iter().filter(|&&e| e != 0).count() as u64;
                assert_eq!(
                    clear_leaves(fill, &mut level1, true),
                    (present, false),
                    "{fill:?} {len}"
                );
                assert!(level1.iter().all(|&e| e == 0));
            }
        }
    }
}
