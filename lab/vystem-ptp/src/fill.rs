//! The innermost loop of range mapping: write `n` page-table entries `first, first + step, ...`.
//! It decides how close range mapping gets to the store-bandwidth limit, so it is written with
//! explicit vector stores: SSE2 (16 bytes a store, every x86-64 CPU) or AVX2 (32 bytes), which
//! needs the CPU to have AVX2 *and* the OS to save YMM state (XCR0). This crate asks no CPUID:
//! the caller, who knows the CPU and what its OS enabled, picks the path ([`Fill::avx2`]).

use core::arch::x86_64::*;

/// Which vector stores the leaf fill uses. SSE2 unless the caller vouches for AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fill(Path);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Path {
    #[default]
    Sse2,
    Avx2,
}

impl Fill {
    /// 16-byte stores: part of x86-64, always available.
    pub const SSE2: Fill = Fill(Path::Sse2);

    /// 32-byte stores.
    ///
    /// # Safety
    /// The CPU must have AVX2 (CPUID.7.0:EBX bit 5) and the OS must have enabled the SSE and
    /// AVX state components in XCR0 (bits 1 and 2): otherwise the fill raises #UD.
    pub const unsafe fn avx2() -> Fill {
        Fill(Path::Avx2)
    }

    /// Whether this is the AVX2 path.
    pub(crate) const fn is_avx2(self) -> bool {
        matches!(self.0, Path::Avx2)
    }

    /// "sse2" or "avx2", for run records.
    pub const fn name(self) -> &'static str {
        match self.0 {
            Path::Sse2 => "sse2",
            Path::Avx2 => "avx2",
        }
    }
}

/// # Safety
/// `dst .. dst + n` must be valid, 8-byte aligned `u64`s.
#[inline]
pub(crate) unsafe fn fill_entries(fill: Fill, dst: *mut u64, n: usize, first: u64, step: u64) {
    if n >= 16 && fill.0 == Path::Avx2 {
        // SAFETY: whoever built `Fill::avx2` vouched for AVX2; the range per the caller.
        unsafe { fill_avx2(dst, n, first, step) }
    } else {
        // SAFETY: SSE2 is part of x86-64; the range per the caller.
        unsafe { fill_sse2(dst, n, first, step) }
    }
}

#[inline]
unsafe fn fill_sse2(dst: *mut u64, n: usize, first: u64, step: u64) {
    let mut i = 0;
    // SAFETY (whole body): indices stay below n, per the caller's contract.
    unsafe {
        if n > 0 && !(dst as usize).is_multiple_of(16) {
            dst.write(first);
            i = 1;
        }
        let mut v = _mm_set_epi64x(
            (first + (i as u64 + 1) * step) as i64,
            (first + i as u64 * step) as i64,
        );
        let inc = _mm_set1_epi64x((2 * step) as i64);
        while i + 4 <= n {
            _mm_store_si128(dst.add(i) as *mut __m128i, v);
            v = _mm_add_epi64(v, inc);
            _mm_store_si128(dst.add(i + 2) as *mut __m128i, v);
            v = _mm_add_epi64(v, inc);
            i += 4;
        }
        while i < n {
            dst.add(i).write(first + i as u64 * step);
            i += 1;
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(dst: *mut u64, n: usize, first: u64, step: u64) {
    let mut i = 0;
    // SAFETY (whole body): indices stay below n, per the caller's contract.
    unsafe {
        while i < n && !(dst.add(i) as usize).is_multiple_of(32) {
            dst.add(i).write(first + i as u64 * step);
            i += 1;
        }
        let at = |k: usize| (first + (i + k) as u64 * step) as i64;
        let mut v = _mm256_set_epi64x(at(3), at(2), at(1), at(0));
        let inc = _mm256_set1_epi64x((4 * step) as i64);
        while i + 8 <= n {
            _mm256_store_si256(dst.add(i) as *mut __m256i, v);
            v = _mm256_add_epi64(v, inc);
            _mm256_store_si256(dst.add(i + 4) as *mut __m256i, v);
            v = _mm256_add_epi64(v, inc);
            i += 8;
        }
        while i < n {
            dst.add(i).write(first + i as u64 * step);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[repr(align(64))]
    struct Table([u64; 512]);

    #[test]
    fn every_path_writes_exactly_the_run() {
        let mut paths = std::vec![Fill::SSE2];
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: std checked both the CPU bit and the OS's XCR0.
            paths.push(unsafe { Fill::avx2() });
        }
        let mut t = Table([0xdead; 512]);
        for off in [0usize, 1, 2, 3, 5] {
            for n in [0usize, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 100, 507 - off] {
                for &fill in &paths {
                    t.0.fill(0xdead);
                    unsafe {
                        fill_entries(fill, t.0.as_mut_ptr().add(off), n, 0x1000_0003, 0x1000)
                    };
                    for (i, &e) in t.0.iter().enumerate() {
                        let want = if i >= off && i < off + n {
                            0x1000_0003 + (i - off) as u64 * 0x1000
                        } else {
                            0xdead
                        };
                        assert_eq!(e, want, "{} off {off} n {n} entry {i}", fill.name());
                    }
                }
            }
        }
    }
}
