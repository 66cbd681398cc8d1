//! The bench kernel as a `ptp_lab::platform::Platform`: pools carved from free RAM (reached
//! through the boot identity map), ring-0 operations for the PTP checks, the CPUs.

// Errors are bounded strings (no allocator), which clippy finds large.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write};

use ptp_lab::cpu::CpuFacts;
use ptp_lab::platform::{Fault, Mmu, Place, Platform, Reason, Tsc, reason};
use vystem_ptp::Pool;
use vystem_ptp::pool::PAGE_BYTES;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use crate::bootinfo::{FreeRegions, IDENTITY_MAP_END};

pub struct Kernel {
    cpu: CpuFacts,
    /// The PIT-calibrated TSC frequency, if the calibration worked.
    pit_hz: Option<u64>,
    /// Physical (= virtual, identity map) start of the pool region: the largest pool, then
    /// one scratch page.
    region: u64,
    largest: u32,
    /// Free RAM after the pool region (start, end): working sets for the TLB suite.
    spare: (u64, u64),
    /// The boot module (the `layouts` suite's input).
    pub module: Option<&'static [u8]>,
    /// The CPUs that came up (`smp::start`).
    pub cpus: Option<&'static crate::smp::Cpus>,
}

impl Kernel {
    /// Carve room for the largest pool plus a scratch page from the first free region that
    /// holds it. The error names the sizes.
    pub fn new(
        cpu: CpuFacts,
        pit_hz: Option<u64>,
        free: &FreeRegions,
        largest: u32,
    ) -> Result<Kernel, Reason> {
        let need = (largest as u64 + 1) * PAGE_BYTES;
        let biggest = free.as_slice().iter().map(|r| r.len()).max().unwrap_or(0);
        match free.as_slice().iter().find(|r| r.len() >= need) {
            Some(r) => {
                // Spare frames: the largest free range left, the pool's region after the carve
                // included.
                let spare = free
                    .as_slice()
                    .iter()
                    .map(|f| {
                        if f.start == r.start {
                            (r.start + need, r.end)
                        } else {
                            (f.start, f.end)
                        }
                    })
                    .max_by_key(|(start, end)| end - start)
                    .unwrap_or((r.start + need, r.end));
                Ok(Kernel {
                    cpu,
                    pit_hz,
                    region: r.start,
                    largest,
                    spare,
                    module: None,
                    cpus: None,
                })
            }
            None => Err(reason(format_args!(
                "a pool of {largest} pages ({} MiB) plus a scratch page does not fit in free RAM: the largest free region is {} MiB",
                (largest as u64 * PAGE_BYTES) >> 20,
                biggest >> 20
            ))),
        }
    }

    pub fn region(&self) -> u64 {
        self.region
    }
}

impl Platform for Kernel {
    fn place(&self) -> Place {
        Place::Kernel
    }

    fn cpu(&self) -> &CpuFacts {
        &self.cpu
    }

    /// CPUID's figure where it has one, else the PIT calibration.
    fn tsc(&mut self) -> Tsc {
        let pit = self.pit_hz;
        Tsc::choose(&self.cpu, || pit.map(|hz| (hz, "pit")), pit)
    }

    fn pool(&mut self, pages: u32) -> Result<Pool, Reason> {
        if pages > self.largest {
            return Err(reason(format_args!(
                "pool of {pages} pages is larger than the carved region ({})",
                self.largest
            )));
        }
        // SAFETY: the region is free RAM reserved for pools, identity mapped (phys = virt).
        unsafe {
            Pool::new(
                PhysAddr::new(self.region),
                pages,
                VirtAddr::new(self.region),
            )
        }
        .map_err(|e| reason(format_args!("{e}")))
    }

    fn scratch(&self) -> PhysAddr {
        PhysAddr::new(self.region + self.largest as u64 * PAGE_BYTES)
    }

    fn set_current_bench(&mut self, name: &'static str) {
        crate::set_current_bench(name);
    }

    fn mmu(&mut self) -> Option<&mut dyn Mmu> {
        Some(self)
    }

    fn has_heap(&self) -> bool {
        false
    }

    fn boot_module(&self) -> Option<&'static [u8]> {
        self.module
    }

    fn smp(&self) -> Option<&'static dyn ptp_lab::platform::Smp> {
        self.cpus.map(|c| c as &'static dyn ptp_lab::platform::Smp)
    }

    fn write_cpus(&self, w: &mut dyn Write) -> fmt::Result {
        match &self.cpus {
            Some(c) => c.write_json(w),
            None => w.write_str("null"),
        }
    }
}

impl Mmu for Kernel {
    fn identity_end(&self) -> u64 {
        IDENTITY_MAP_END
    }

    fn frames(&mut self, pages: u64) -> Result<PhysAddr, Reason> {
        let (start, end) = self.spare;
        if pages * PAGE_BYTES > end - start {
            return Err(reason(format_args!(
                "{pages} pages of working set do not fit in the {} MiB left beside the pools",
                (end - start) >> 20
            )));
        }
        Ok(PhysAddr::new(start))
    }

    fn cr3(&self) -> PhysFrame {
        Cr3::read().0
    }

    unsafe fn load_cr3(&mut self, frame: PhysFrame) {
        let flags = Cr3::read().1;
        // SAFETY: per the trait's contract, the new tables map everything we touch.
        unsafe { Cr3::write(frame, flags) };
    }

    fn probe_read(&mut self, addr: u64) -> Result<u8, Fault> {
        crate::probe::probe_read(addr).map_err(fault)
    }

    fn probe_write(&mut self, addr: u64, value: u8) -> Result<(), Fault> {
        // SAFETY: the suites only write their own scratch and pool bytes.
        unsafe { crate::probe::probe_write(addr, value) }.map_err(fault)
    }
}

fn fault(f: crate::probe::FaultInfo) -> Fault {
    Fault {
        vector: f.vector,
        error_code: f.error_code,
        cr2: f.cr2,
    }
}
