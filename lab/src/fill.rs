//! The innermost loop of range mapping: write `n` page-table entries `first, first + step, ...`.
//! It decides how close range mapping gets to the store-bandwidth limit, so it is written with
//! explicit vector stores: AVX2 (32 bytes a store) where the CPU has it *and* the OS saves YMM
//! state (XCR0; our bench kernel does not enable it, so it gets SSE2), else SSE2 (16 bytes).

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const SSE2: u8 = 1;
const AVX2: u8 = 2;
static PATH: AtomicU8 = AtomicU8::new(UNKNOWN);

fn detect() -> u8 {
    let (l1, l7) = (__cpuid(1), __cpuid_count(7, 0));
    let osxsave = l1.ecx & (1 << 27) != 0;
    let avx2 = l7.ebx & (1 << 5) != 0;
    if !(osxsave && avx2) {
        return SSE2;
    }
    let xcr0: u64;
    // SAFETY: CPUID.1:ECX.OSXSAVE says CR4.OSXSAVE is set, so xgetbv is allowed.
    unsafe {
        let (lo, hi): (u32, u32);
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack));
        xcr0 = (hi as u64) << 32 | lo as u64;
    }
    // SSE and AVX state both enabled by the OS.
    if xcr0 & 0b110 == 0b110 {
        AVX2
    } else {
        SSE2
    }
}

/// Which vector path the fill uses on this CPU and OS ("avx2" or "sse2"), for run records.
pub fn path_name() -> &'static str {
    if path() == AVX2 {
        "avx2"
    } else {
        "sse2"
    }
}

#[inline]
fn path() -> u8 {
    let p = PATH.load(Ordering::Relaxed);
    if p != UNKNOWN {
        return p;
    }
    let p = detect();
    PATH.store(p, Ordering::Relaxed);
    p
}

/// # Safety
/// `dst .. dst + n` must be valid, 8-byte aligned `u64`s.
#[inline]
pub unsafe fn fill_entries(dst: *mut u64, n: usize, first: u64, step: u64) {
    if n >= 16 && path() == AVX2 {
        // SAFETY: AVX2 checked above; the range per the caller.
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
    use super::*;

    #[repr(align(64))]
    struct Table([u64; 512]);

    #[test]
    fn every_path_writes_exactly_the_run() {
        let mut t = Table([0xdead; 512]);
        for off in [0usize, 1, 2, 3, 5] {
            for n in [0usize, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 100, 507 - off] {
                for f in [fill_sse2, fill_avx2, fill_entries] {
                    if f as usize == fill_avx2 as *const () as usize && path() != AVX2 {
                        continue;
                    }
                    t.0.fill(0xdead);
                    unsafe { f(t.0.as_mut_ptr().add(off), n, 0x1000_0003, 0x1000) };
                    for (i, &e) in t.0.iter().enumerate() {
                        let want = if i >= off && i < off + n {
                            0x1000_0003 + (i - off) as u64 * 0x1000
                        } else {
                            0xdead
                        };
                        assert_eq!(e, want, "off {off} n {n} entry {i}");
                    }
                }
            }
        }
    }
}
