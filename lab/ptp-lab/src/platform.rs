//! Where the benchmark table runs: the bench kernel (real page tables, ring 0) or a host
//! process (simulated memory). The suites see only this trait.

// Reasons are bounded strings (no allocator), which clippy finds large.
#![allow(clippy::result_large_err)]

use crate::cpu::CpuFacts;
use crate::fixedstr::FixedStr;
use core::fmt::{self, Write};
use vystem_ptp::{MapError, PageAllocator, PageSizes, Pool, PoolMapper};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

/// A reason, for skip records and errors (no allocator: a bounded string).
pub type Reason = FixedStr<160>;

pub fn reason(args: fmt::Arguments<'_>) -> Reason {
    let mut r = Reason::new();
    let _ = r.write_fmt(args);
    r
}

/// The run record's `where`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The bench kernel: real page tables, loaded into CR3.
    Kernel,
    /// A host process: simulated physical memory.
    Host,
}

impl Place {
    pub const ALL: [Place; 2] = [Place::Kernel, Place::Host];

    pub fn name(self) -> &'static str {
        match self {
            Place::Kernel => "kernel",
            Place::Host => "host",
        }
    }
}

impl crate::json::JsonKind for Place {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl crate::json::ToJson for Place {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        crate::json::ToJson::write_json(self.name(), w)
    }
}

/// The TSC frequency a run converts with, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tsc {
    pub hz: Option<u64>,
    /// `cpuid_0x15`, `hypervisor_0x40000010`, `cpuid_0x16_base`, `pit`, `host_clock`, `unknown`.
    pub source: &'static str,
    /// The kernel's PIT calibration, kept beside the chosen value as a cross-check.
    pub pit_hz: Option<u64>,
}

impl Tsc {
    /// CPUID's figure where it has one, else the platform's own measurement (`fallback`: the
    /// kernel's PIT calibration, the host's clock), else unknown.
    pub fn choose(
        cpu: &CpuFacts,
        fallback: impl FnOnce() -> Option<(u64, &'static str)>,
        pit_hz: Option<u64>,
    ) -> Tsc {
        let (hz, source) = match cpu
            .tsc_hz()
            .map(|(hz, src)| (hz, src.name()))
            .or_else(fallback)
        {
            Some((hz, source)) => (Some(hz), source),
            None => (None, "unknown"),
        };
        Tsc { hz, source, pit_hz }
    }
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
    fn place(&self) -> Place;
    fn cpu(&self) -> &CpuFacts;
    fn tsc(&mut self) -> Tsc;
    /// A pool of `pages` pages. Every pool size reuses the same memory, followed by one scratch
    /// page ([`Platform::scratch`]) that is never part of a pool.
    fn pool(&mut self, pages: u32) -> Result<Pool, Reason>;
    /// The scratch page after the largest pool (alias checks).
    fn scratch(&self) -> PhysAddr;
    /// Named in fault reports, so a crash says which benchmark was running.
    fn set_current_bench(&mut self, name: &'static str);
    /// Ring-0 operations; `None` where the suites cannot touch CR3 (a host process).
    fn mmu(&mut self) -> Option<&mut dyn Mmu>;
    /// Whether peers that allocate on a heap can run (the host; the kernel has no heap).
    fn has_heap(&self) -> bool;
    /// The boot module the kernel was handed (the `layouts` and `churn` suites' input: the
    /// recorded layouts), if any; on the host, the file [`LAYOUTS_ENV`] names.
    fn boot_module(&self) -> Option<&'static [u8]> {
        None
    }
    /// The machine's load now, where there is an OS to ask (the host); `None` in the kernel.
    fn load(&self) -> Option<crate::load::Load> {
        None
    }
    /// The other CPUs, once started (the bench kernel); `None` where there are none to reach.
    /// `'static`: the CPUs outlive any borrow of the platform, so a benchmark's closures can
    /// reach them while it measures.
    fn smp(&self) -> Option<&'static dyn Smp> {
        None
    }
    /// The `cpus` field of the run record: the CPUs that came up (JSON; `null` on the host,
    /// which starts none).
    fn write_cpus(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_str("null")
    }
}

/// What an interrupted CPU does for [`Smp::ipi`], in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Load these page tables first (join the sender's address space, or go back).
    pub cr3: Option<PhysFrame>,
    /// Then invalidate `flush` (per page: that many 4 KiB pages from `start`).
    pub flush: vystem_ptp::Decision,
    pub start: u64,
    /// Then read one byte of each of `touch` 4 KiB pages from `start` (refill the TLB).
    pub touch: u64,
    /// Then read the byte at this address into [`TargetReport::seen`].
    pub probe: Option<u64>,
}

impl Work {
    /// Nothing: an acknowledgement only.
    pub const NOTHING: Work = Work {
        cr3: None,
        flush: vystem_ptp::Decision::Nothing,
        start: 0,
        touch: 0,
        probe: None,
    };
}

/// What a CPU reported about the last [`Work`] it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetReport {
    /// Requests it has handled since it came up.
    pub handled: u64,
    /// The byte it read at the probe address.
    pub seen: Option<u8>,
    /// In busy mode: the TSC ticks its interrupted loop lost to the last request (the
    /// interrupt, the work, the return), over its loop's own quiet step.
    pub lost_ticks: Option<u64>,
}

/// The CPUs besides this one: inter-processor interrupts carrying [`Work`]. Only CPU 0 calls
/// it (the one running the table), so its state can be atomics behind `&self`.
pub trait Smp: Sync {
    /// The CPUs that came up, this one (CPU 0) included. (A CPU that did not answer keeps its
    /// index: the set may have holes.)
    fn up(&self) -> vystem_ptp::shootdown::CpuSet;
    /// Interrupt every CPU of `targets` (never CPU 0) to run `work`, and wait until each has
    /// acknowledged. Returns the TSC ticks from the first IPI to the last acknowledgement, or
    /// why not (a target that does not answer within a bound is named).
    fn ipi(&self, targets: vystem_ptp::shootdown::CpuSet, work: &Work) -> Result<u64, Reason>;
    fn report(&self, cpu: u32) -> TargetReport;
    /// Targets spin in a timed loop (their lost time is measured) instead of idling in `hlt`.
    fn set_busy(&self, busy: bool);
}

/// What the PTP and TLB checks need from ring 0.
pub trait Mmu {
    /// The running code lives identity-mapped below this address (its code, stacks, tables and
    /// the pools): what a PTP must map to be loaded ([`map_kernel`]).
    fn identity_end(&self) -> u64;
    /// `pages` physically contiguous free pages outside every pool (TLB working sets).
    fn frames(&mut self, pages: u64) -> Result<PhysAddr, Reason>;
    fn cr3(&self) -> PhysFrame;
    /// # Safety
    /// `frame` must be the root of page tables that map the running code, its stack, and
    /// everything it will touch.
    unsafe fn load_cr3(&mut self, frame: PhysFrame);
    fn probe_read(&mut self, addr: u64) -> Result<u8, Fault>;
    fn probe_write(&mut self, addr: u64, value: u8) -> Result<(), Fault>;
}

/// Map into `mapper` what the running code needs once its tables are in CR3: the identity map
/// below `mmu.identity_end()` (2 MiB pages where they fit, executable, as boot did), all but
/// the mapper's own pool (a modifiable PTP reaches it through its self-map, an unmodifiable one
/// not at all).
pub fn map_kernel<A: PageAllocator>(
    mmu: &dyn Mmu,
    mapper: &mut PoolMapper<A>,
) -> Result<(), MapError> {
    let pool = *mapper.pool();
    let (lo, hi) = (
        pool.phys_base().as_u64(),
        pool.phys_base().as_u64() + pool.bytes(),
    );
    for (start, end) in [(0, lo), (hi, mmu.identity_end())] {
        if end > start {
            mapper.map_region(
                VirtAddr::new(start),
                PhysAddr::new(start),
                end - start,
                PageSizes::UP_TO_2MIB,
                F::PRESENT | F::WRITABLE,
            )?;
        }
    }
    Ok(())
}

/// The environment variable that names the layouts file the host runner and the criterion
/// driver hand the benchmarks, as the kernel gets them as its boot module (the bench job sets
/// it).
pub const LAYOUTS_ENV: &str = "PTP_LAB_LAYOUTS";
