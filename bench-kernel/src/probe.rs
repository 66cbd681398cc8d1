//! Expected faults: read/write an address and get the fault back as a value.
//!
//! The access is a single instruction in assembly whose address is known (a global
//! label). When #PF or #GP hits with RIP exactly there, the exception handler records
//! a [`FaultInfo`], points RIP at the routine's recovery label and returns; the
//! routine then returns the sentinel `u64::MAX` (a successful read returns 0..=255).

use core::arch::global_asm;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::Cr2;

use crate::frame::{Frame, VECTOR_GP, VECTOR_PF};
use crate::sync::RacyCell;

/// What the CPU reported for a recovered fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    pub vector: u8,
    pub error_code: u64,
    /// Faulting linear address (#PF only; 0 for #GP).
    pub cr2: u64,
    /// Address of the faulting instruction.
    pub rip: u64,
    /// Where the handler's register frame lived: shows which stack (IST) it ran on.
    pub handler_frame: u64,
}

impl FaultInfo {
    pub fn name(&self) -> &'static str {
        crate::frame::name(self.vector as u64)
    }
}

const PROBE_FAILED: u64 = u64::MAX;

global_asm!(
    r#"
    .section .text.probe, "ax"

    /* u64 bk_probe_read(u64 addr): byte at addr, or u64::MAX after a recovered fault */
    .global bk_probe_read
bk_probe_read:
    .global bk_probe_read_insn
bk_probe_read_insn:
    movzx eax, byte ptr [rdi]
    ret
    .global bk_probe_read_recover
bk_probe_read_recover:
    mov rax, -1
    ret

    /* u64 bk_probe_write(u64 addr, u8 val): 0, or u64::MAX after a recovered fault */
    .global bk_probe_write
bk_probe_write:
    .global bk_probe_write_insn
bk_probe_write_insn:
    mov byte ptr [rdi], sil
    xor eax, eax
    ret
    .global bk_probe_write_recover
bk_probe_write_recover:
    mov rax, -1
    ret
    .text
"#
);

unsafe extern "C" {
    pub fn bk_probe_read(addr: u64) -> u64;
    fn bk_probe_write(addr: u64, val: u8) -> u64;
    static bk_probe_read_insn: u8;
    static bk_probe_read_recover: u8;
    static bk_probe_write_insn: u8;
    static bk_probe_write_recover: u8;
}

/// Filled by the exception handler, consumed by the probe that caused it.
static LAST_FAULT: RacyCell<Option<FaultInfo>> = RacyCell::new(None);

/// Self-test hook: when set, the handler deliberately trashes XMM registers while
/// recovering, so a test can prove that `common_entry` restores the SSE state.
static CLOBBER_SSE_IN_HANDLER: AtomicBool = AtomicBool::new(false);

pub fn set_clobber_sse_in_handler(on: bool) {
    CLOBBER_SSE_IN_HANDLER.store(on, Ordering::SeqCst);
}

fn take_fault() -> Option<FaultInfo> {
    // SAFETY: the handler that writes LAST_FAULT has returned by the time the probe
    // routine does; volatile because the write happened "behind the compiler's back".
    unsafe {
        let v = ptr::read_volatile(LAST_FAULT.get());
        ptr::write_volatile(LAST_FAULT.get(), None);
        v
    }
}

/// Read one byte at `addr`, turning a #PF/#GP into `Err`.
pub fn probe_read(addr: u64) -> Result<u8, FaultInfo> {
    take_fault();
    // SAFETY: the routine only reads `addr`; a fault there is recovered by the handler.
    // Reading arbitrary mapped memory is fine (no side effects on RAM; callers must not
    // point it at MMIO with read side effects).
    let v = unsafe { bk_probe_read(addr) };
    if v == PROBE_FAILED {
        Err(take_fault().expect("probe read recovered without a fault record"))
    } else {
        Ok(v as u8)
    }
}

/// Write one byte at `addr`, turning a #PF/#GP into `Err`.
///
/// # Safety
/// If `addr` is mapped, this really writes there: the caller must own that byte.
pub unsafe fn probe_write(addr: u64, val: u8) -> Result<(), FaultInfo> {
    take_fault();
    // SAFETY: forwarded to the caller.
    let v = unsafe { bk_probe_write(addr, val) };
    if v == PROBE_FAILED {
        Err(take_fault().expect("probe write recovered without a fault record"))
    } else {
        Ok(())
    }
}

/// Called by the exception dispatcher first. Returns true if the fault was a probe's
/// and the frame now resumes at the recovery label.
pub fn try_recover(frame: &mut Frame) -> bool {
    if frame.vector != VECTOR_PF && frame.vector != VECTOR_GP {
        return false;
    }
    // Only the addresses of the asm labels are taken.
    let read_insn = &raw const bk_probe_read_insn as u64;
    let read_recover = &raw const bk_probe_read_recover as u64;
    let write_insn = &raw const bk_probe_write_insn as u64;
    let write_recover = &raw const bk_probe_write_recover as u64;
    let recover = match frame.rip {
        rip if rip == read_insn => read_recover,
        rip if rip == write_insn => write_recover,
        _ => return false,
    };
    let info = FaultInfo {
        vector: frame.vector as u8,
        error_code: frame.error_code,
        cr2: if frame.vector == VECTOR_PF {
            Cr2::read_raw()
        } else {
            0
        },
        rip: frame.rip,
        handler_frame: frame as *const Frame as u64,
    };
    // SAFETY: the probe routine that faulted is not touching LAST_FAULT right now.
    unsafe { ptr::write_volatile(LAST_FAULT.get(), Some(info)) };
    if CLOBBER_SSE_IN_HANDLER.load(Ordering::SeqCst) {
        // SAFETY: declared clobbers; `common_entry` restores them via fxrstor64.
        unsafe {
            core::arch::asm!(
                "pcmpeqd xmm0, xmm0",
                "pcmpeqd xmm15, xmm15",
                out("xmm0") _,
                out("xmm15") _,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
    frame.rip = recover;
    true
}
