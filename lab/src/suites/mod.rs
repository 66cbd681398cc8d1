//! The benchmark suites, as one flat table (kvm-unit-tests style): each entry has a name, a
//! suite, a precondition and a run. A precondition that fails prints a `skip` record with the
//! reason instead of running. The same table runs in the bench kernel (real page tables) and
//! in the host runner (simulated memory); what differs is the [`Platform`].

// Preconditions return a bounded string (no allocator here), which clippy finds large.
#![allow(clippy::result_large_err)]

mod alloc;
mod config;
mod map;
mod ptp;

pub use config::{Config, ConfigError, Mode, Suite, SuiteSet, MAX_POOLS};

use crate::allocator::BitmapAllocator;
use crate::cpu::CpuFacts;
use crate::fixedstr::FixedStr;
use crate::mapper::{MapError, PoolMapper};
use crate::pool::Pool;
use crate::report::{self, Counts, Key};
use crate::timing::{Budget, Harness, Summary};
use core::fmt::{self, Write};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// A reason, for skip records and errors (no allocator: a bounded string).
pub type Reason = FixedStr<160>;

pub fn reason(args: fmt::Arguments<'_>) -> Reason {
    let mut r = Reason::new();
    let _ = r.write_fmt(args);
    r
}

/// An exception caught by a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error_code: u64,
    pub cr2: u64,
}

/// Where the suites run.
pub trait Platform {
    /// "kernel" or "host".
    fn name(&self) -> &'static str;
    fn cpu(&self) -> &CpuFacts;
    /// A pool of `pages` pages. Every pool size reuses the same memory, followed by one scratch
    /// page ([`Platform::scratch`]) that is never part of a pool.
    fn pool(&mut self, pages: u32) -> Result<Pool, Reason>;
    /// The scratch page after the largest pool (alias checks).
    fn scratch(&self) -> PhysAddr;
    /// Named in fault reports, so a crash says which benchmark was running.
    fn set_current_bench(&mut self, name: &'static str);
    /// Ring-0 operations; `None` where the suites cannot touch CR3 (a host process).
    fn mmu(&mut self) -> Option<&mut dyn Mmu>;
}

/// What the PTP checks need from ring 0.
pub trait Mmu {
    /// Map into `mapper` what the running code needs to keep running once it is in CR3.
    fn map_kernel(&self, mapper: &mut PoolMapper<BitmapAllocator>) -> Result<(), MapError>;
    fn cr3(&self) -> PhysFrame;
    /// # Safety
    /// `frame` must be the root of page tables that map the running code, its stack, and
    /// everything it will touch.
    unsafe fn load_cr3(&mut self, frame: PhysFrame);
    fn probe_read(&mut self, addr: u64) -> Result<u8, Fault>;
    fn probe_write(&mut self, addr: u64, value: u8) -> Result<(), Fault>;
}

/// One benchmark of the table.
pub struct Bench {
    pub name: &'static str,
    pub suite: Suite,
    pub precondition: fn(&mut Ctx<'_>) -> Result<(), Reason>,
    pub run: fn(&mut Ctx<'_>),
}

/// Everything a benchmark run gets.
pub struct Ctx<'a> {
    pub platform: &'a mut dyn Platform,
    pub out: &'a mut dyn Write,
    pub harness: &'a mut Harness,
    pub pool: Pool,
    pub cfg: &'a Config,
    pub counts: &'a mut Counts,
    pub bench: &'static str,
    pub suite: Suite,
}

impl Ctx<'_> {
    pub fn pages(&self) -> u32 {
        self.pool.pages()
    }

    /// Time `batch` on `state` (after an untimed `setup`) and print the measurement record.
    #[allow(clippy::too_many_arguments)]
    pub fn measure<T, S: FnMut(&mut T), B: FnMut(&mut T)>(
        &mut self,
        imp: &str,
        per: &str,
        ops: u64,
        params: fmt::Arguments<'_>,
        state: &mut T,
        setup: S,
        batch: B,
    ) -> Summary {
        let s = self.harness.run(ops, state, setup, batch);
        let key = Key {
            suite: self.suite.name(),
            bench: self.bench,
            imp,
            pool_pages: self.pages(),
            per,
        };
        let _ = report::measurement(self.out, key, params, &s);
        self.counts.measurements += 1;
        s
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        let key = report::CheckKey {
            suite: self.suite.name(),
            bench: self.bench,
            name,
            pool_pages: self.pages(),
        };
        let _ = report::check(self.out, key, ok, detail);
        self.counts.checks += 1;
        if !ok {
            self.counts.checks_failed += 1;
        }
        ok
    }

    pub fn skip(&mut self, what: &str, why: &str) {
        let pages = self.pages();
        let _ = report::skip(self.out, self.suite.name(), what, pages, why);
        self.counts.skips += 1;
    }

    /// A deterministic pseudo-random stream from the run's seed (xorshift64).
    pub fn rng(&self) -> Rng {
        Rng(self.cfg.seed | 1)
    }
}

pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % (hi - lo) as u64) as u32
    }
}

pub static BENCHES: &[Bench] = &[
    alloc::BUMP_ALLOC,
    alloc::BITMAP_ALLOC_SEQ,
    alloc::BITMAP_CHURN_50,
    alloc::BITMAP_CHURN_95,
    alloc::BITMAP_FREE,
    alloc::BITMAP_INIT,
    map::MAP_1GIB_4KIB,
    map::MAP_64GIB_2MIB,
    map::MAP_64GIB_1GIB,
    ptp::BUILD,
    ptp::MODIFIABLE_IN_CR3,
    ptp::UNMODIFIABLE_IN_CR3,
];

pub fn budget(cfg: &Config) -> Budget {
    match (cfg.mode, cfg.quick) {
        (Mode::Selftest, _) => Budget::SELFTEST,
        (Mode::Bench, true) => Budget::QUICK,
        (Mode::Bench, false) => Budget::FULL,
    }
}

/// Run every selected benchmark for every pool size. Progress goes to `out` as `# ` lines.
pub fn run_all(
    platform: &mut dyn Platform,
    out: &mut dyn Write,
    harness: &mut Harness,
    cfg: &Config,
) -> Counts {
    let mut counts = Counts::default();
    for &pages in cfg.pools() {
        for suite in Suite::ALL {
            if !cfg.suites.has(suite) {
                continue;
            }
            let _ = writeln!(out, "# suite {} pool_pages {}", suite.name(), pages);
            for b in BENCHES.iter().filter(|b| b.suite == suite) {
                platform.set_current_bench(b.name);
                let pool = match platform.pool(pages) {
                    Ok(pool) => pool,
                    Err(why) => {
                        let _ = report::skip(out, suite.name(), b.name, pages, why.as_str());
                        counts.skips += 1;
                        continue;
                    }
                };
                let mut ctx = Ctx {
                    platform: &mut *platform,
                    out: &mut *out,
                    harness: &mut *harness,
                    pool,
                    cfg,
                    counts: &mut counts,
                    bench: b.name,
                    suite,
                };
                match (b.precondition)(&mut ctx) {
                    Ok(()) => (b.run)(&mut ctx),
                    Err(why) => ctx.skip(b.name, why.as_str()),
                }
            }
        }
    }
    platform.set_current_bench("end");
    counts
}

fn always(_: &mut Ctx<'_>) -> Result<(), Reason> {
    Ok(())
}

/// The PTP checks load tables into CR3; the self-map is NX, which needs the CPU's NX bit
/// (EFER.NXE): without it bit 63 is reserved and every access would fault.
fn needs_ring0(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    if !ctx.platform.cpu().nx {
        return Err(reason(format_args!(
            "CPU lacks NX (CPUID 0x80000001 EDX.NX): the PTP's NX self-map would fault"
        )));
    }
    match ctx.platform.mmu() {
        Some(_) => Ok(()),
        None => Err(reason(format_args!(
            "needs ring 0 (CR3, invlpg, fault probes): runs in the bench kernel only"
        ))),
    }
}
