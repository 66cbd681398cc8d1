//! The host companion of the `tlb` suite: what Linux pays, on the machine the lab runs on, to
//! invalidate N pages of a process (N = 1 ... 4096), through `mprotect` (downgrade and back),
//! `munmap` + `mmap`, and `madvise(MADV_DONTNEED)` round trips, and what touching N pages
//! costs once their translations are gone, with 4 KiB and with 2 MiB (THP) pages. Native
//! figures from a host process (the bench kernel runs emulated here), so every report has an
//! anchor from its own machine. Host only: in the kernel these entries skip with that reason.

use super::base::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::{reason, Reason};

pub const WHY: &str = "what Linux pays for TLB invalidation: measured in a host process only";

pub const ROUND_TRIPS: Bench = Bench {
    name: "tlb_linux_round_trips",
    suite: Suite::Tlb,
    precondition: host_only,
    run: imp::round_trips,
};
pub const REFILL: Bench = Bench {
    name: "tlb_linux_refill",
    suite: Suite::Tlb,
    precondition: host_only,
    run: imp::refill,
};

fn host_only(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    if cfg!(all(feature = "std", target_os = "linux")) && ctx.platform.has_heap() {
        let first = ctx.cfg.pools()[0];
        if ctx.pages() != first {
            return Err(reason(format_args!(
                "TLB costs do not depend on the pool size: measured once, with the pool of {first} pages"
            )));
        }
        Ok(())
    } else {
        Err(reason(format_args!("{WHY}")))
    }
}

#[cfg(not(all(feature = "std", target_os = "linux")))]
mod imp {
    use super::Ctx;
    // Never run: the precondition refuses.
    pub fn round_trips(_: &mut Ctx<'_>) {}
    pub fn refill(_: &mut Ctx<'_>) {}
}

#[cfg(all(feature = "std", target_os = "linux"))]
mod imp {
    use super::Ctx;
    use core::arch::asm;
    use core::hint::black_box;

    const SIZES: [u64; 7] = [1, 4, 16, 64, 256, 1024, 4096];
    const HUGE_SIZES: [u64; 4] = [1, 4, 16, 64];

    const PAGE: u64 = 4096;
    const HUGE: u64 = 2 << 20;
    const PROT_READ: u64 = 1;
    const PROT_RW: u64 = 3;
    const MAP_PRIVATE_ANON: u64 = 0x22;
    const MADV_DONTNEED: u64 = 4;
    const MADV_HUGEPAGE: u64 = 14;
    const SYS_MMAP: u64 = 9;
    const SYS_MPROTECT: u64 = 10;
    const SYS_MUNMAP: u64 = 11;
    const SYS_MADVISE: u64 = 28;

    /// A Linux x86-64 system call (the lab depends on no libc binding).
    fn syscall(n: u64, a: [u64; 6]) -> i64 {
        let ret: i64;
        // SAFETY: the calls made here only map, protect and unmap this module's own regions.
        unsafe {
            asm!("syscall", inlateout("rax") n as i64 => ret, in("rdi") a[0], in("rsi") a[1],
                 in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    fn mmap(len: u64) -> Option<u64> {
        let r = syscall(SYS_MMAP, [0, len, PROT_RW, MAP_PRIVATE_ANON, u64::MAX, 0]);
        (r > 0).then_some(r as u64)
    }

    fn mmap_at(addr: u64, len: u64) -> bool {
        const MAP_FIXED: u64 = 0x10;
        syscall(
            SYS_MMAP,
            [
                addr,
                len,
                PROT_RW,
                MAP_PRIVATE_ANON | MAP_FIXED,
                u64::MAX,
                0,
            ],
        ) == addr as i64
    }

    fn ok(r: i64) -> bool {
        r == 0
    }

    /// Write one byte in each of `pages` pages of `step` bytes: a fault or a TLB fill each.
    fn touch(base: u64, pages: u64, step: u64) {
        for i in 0..pages {
            // SAFETY: the region is ours, mapped read-write.
            unsafe { ((base + i * step) as *mut u8).write_volatile(black_box(i as u8)) };
        }
    }

    /// Linux's ceiling on this machine, where debugfs shows it (root, debugfs mounted).
    fn linux_ceiling() -> Option<u64> {
        std::fs::read_to_string("/sys/kernel/debug/x86/tlb_single_page_flush_ceiling")
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn round_trips(ctx: &mut Ctx<'_>) {
        let max = SIZES[SIZES.len() - 1] * PAGE;
        let Some(base) = mmap(max) else {
            ctx.check(
                "linux_mmap",
                false,
                format_args!("mmap of {max} bytes failed"),
            );
            return;
        };
        let ceiling = linux_ceiling();
        let mut all_ok = true;
        for n in SIZES {
            let len = n * PAGE;
            // Downgrade (the kernel must flush the range) and back, then write every page.
            ctx.measure(
                "linux-mprotect",
                "page",
                n,
                crate::params! { "pages": n, "page_size": "4KiB", "linux_ceiling": ceiling },
                &mut all_ok,
                |_| touch(base, n, PAGE),
                |ok: &mut bool| {
                    *ok &= self::ok(syscall(SYS_MPROTECT, [base, len, PROT_READ, 0, 0, 0]));
                    *ok &= self::ok(syscall(SYS_MPROTECT, [base, len, PROT_RW, 0, 0, 0]));
                    touch(base, n, PAGE);
                },
            );
            ctx.measure(
                "linux-madvise-dontneed",
                "page",
                n,
                crate::params! { "pages": n, "page_size": "4KiB" },
                &mut all_ok,
                |_| touch(base, n, PAGE),
                |ok: &mut bool| {
                    *ok &= self::ok(syscall(SYS_MADVISE, [base, len, MADV_DONTNEED, 0, 0, 0]));
                    touch(base, n, PAGE); // zero-filled again, page by page
                },
            );
            ctx.measure(
                "linux-munmap-mmap",
                "page",
                n,
                crate::params! { "pages": n, "page_size": "4KiB" },
                &mut all_ok,
                |_| touch(base, n, PAGE),
                |ok: &mut bool| {
                    *ok &= self::ok(syscall(SYS_MUNMAP, [base, len, 0, 0, 0, 0]));
                    *ok &= mmap_at(base, len);
                    touch(base, n, PAGE);
                },
            );
        }
        let _ = syscall(SYS_MUNMAP, [base, max, 0, 0, 0, 0]);
        ctx.check(
            "linux_round_trips_succeeded",
            all_ok,
            format_args!(
                "every mprotect, madvise, munmap and mmap returned 0; Linux's ceiling here: {}",
                ceiling.map_or("not exposed (needs debugfs)".into(), |c| std::format!(
                    "{c}"
                ))
            ),
        );
    }

    /// Touching N pages whose translations an mprotect round trip just dropped (untimed):
    /// the refill alone, with 4 KiB pages and with transparent 2 MiB pages.
    pub fn refill(ctx: &mut Ctx<'_>) {
        let mut all_ok = true;
        for (size, step, sizes) in [("4KiB", PAGE, &SIZES[..]), ("2MiB", HUGE, &HUGE_SIZES[..])] {
            let max = sizes[sizes.len() - 1] * step;
            // 2 MiB pages need 2 MiB alignment: over-allocate and align.
            let Some(raw) = mmap(max + HUGE) else {
                ctx.check(
                    "linux_mmap",
                    false,
                    format_args!("mmap of {max} bytes failed"),
                );
                return;
            };
            let base = (raw + HUGE - 1) & !(HUGE - 1);
            let thp =
                size == "2MiB" && ok(syscall(SYS_MADVISE, [base, max, MADV_HUGEPAGE, 0, 0, 0]));
            for &n in sizes {
                let len = n * step;
                ctx.measure(
                    if size == "4KiB" {
                        "linux-refill-4KiB"
                    } else {
                        "linux-refill-2MiB-thp"
                    },
                    "page",
                    n,
                    crate::params! { "pages": n, "page_size": size, "madvise_hugepage": thp },
                    &mut all_ok,
                    |ok: &mut bool| {
                        touch(base, n, step);
                        *ok &= self::ok(syscall(SYS_MPROTECT, [base, len, PROT_READ, 0, 0, 0]));
                        *ok &= self::ok(syscall(SYS_MPROTECT, [base, len, PROT_RW, 0, 0, 0]));
                    },
                    |_| touch(base, n, step),
                );
            }
            let _ = syscall(SYS_MUNMAP, [raw, max + HUGE, 0, 0, 0, 0]);
        }
        ctx.check(
            "linux_refill_round_trips_succeeded",
            all_ok,
            format_args!("every mprotect returned 0"),
        );
    }
}
