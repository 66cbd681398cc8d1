//! Boot self-checks of the platform: probe recovery, IST usage, SSE state
//! preservation across exceptions, paging flags. Each prints one JSON `check` line.

use core::arch::asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::fixedstr::FixedStr;
use crate::gdt::{IstSlot, ist_stack_range};
use crate::interrupts::{VECTOR_GP, VECTOR_PF};
use crate::json::Str;
use crate::probe::{self, FaultInfo};

/// Canonical (bit 47 clear) but outside the 4 GiB identity map: must #PF.
pub const UNMAPPED_CANONICAL: u64 = 0x0000_7000_0000_0000;
/// Just past the identity map: proves the map ends at 4 GiB.
pub const FIRST_UNMAPPED: u64 = 0x1_0000_0000;
/// Non-canonical with 4-level paging (bit 47 set, bits 63..48 clear): must #GP(0).
/// (0x4000_0000_0000 looks odd but is canonical: bit 46 only.)
pub const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

/// #PF error-code bits.
const PF_PRESENT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;

static PROBE_TARGET: AtomicU8 = AtomicU8::new(0xa5);

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
}

impl Summary {
    fn record(&mut self, name: &str, ok: bool, detail: &FixedStr<256>) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        crate::println!(
            "{{\"type\":\"check\",\"name\":{},\"ok\":{},\"detail\":{}}}",
            Str(name),
            ok,
            Str(detail.as_str())
        );
    }
}

/// Run a check closure that fills `detail` and returns pass/fail.
fn check(summary: &mut Summary, name: &str, f: impl FnOnce(&mut FixedStr<256>) -> bool) {
    let mut detail = FixedStr::<256>::new();
    let ok = f(&mut detail);
    summary.record(name, ok, &detail);
}

fn describe(d: &mut FixedStr<256>, r: &Result<impl core::fmt::Debug, FaultInfo>) {
    let _ = match r {
        Ok(v) => write!(d, "no fault, got {v:?}"),
        Err(f) => write!(
            d,
            "{} err={:#x} cr2={:#x} rip={:#x}",
            f.name(),
            f.error_code,
            f.cr2,
            f.rip
        ),
    };
}

fn frame_on(slot: IstSlot, f: &FaultInfo) -> bool {
    let (lo, hi) = ist_stack_range(slot);
    (lo..hi).contains(&f.handler_frame)
}

pub fn run() -> Summary {
    let mut s = Summary::default();
    let target = PROBE_TARGET.as_ptr() as u64;

    check(&mut s, "probe_mapped_read", |d| {
        let r = probe::probe_read(target);
        describe(d, &r);
        r == Ok(0xa5)
    });

    check(&mut s, "probe_mapped_write", |d| {
        // SAFETY: PROBE_TARGET is ours.
        let r = unsafe { probe::probe_write(target, 0x5a) };
        let now = PROBE_TARGET.load(Ordering::SeqCst);
        describe(d, &r);
        let _ = write!(d, ", reads back {now:#x}");
        r.is_ok() && now == 0x5a
    });

    let mut pf_info = None;
    check(&mut s, "probe_unmapped_pf", |d| {
        let r = probe::probe_read(UNMAPPED_CANONICAL);
        describe(d, &r);
        pf_info = r.err();
        matches!(r, Err(f) if f.vector == VECTOR_PF as u8
            && f.cr2 == UNMAPPED_CANONICAL
            && f.error_code & (PF_PRESENT | PF_WRITE) == 0)
    });

    check(&mut s, "probe_unmapped_write_pf", |d| {
        // SAFETY: the address is unmapped; nothing can be written.
        let r = unsafe { probe::probe_write(UNMAPPED_CANONICAL + 0x123, 1) };
        describe(d, &r);
        matches!(r, Err(f) if f.vector == VECTOR_PF as u8
            && f.cr2 == UNMAPPED_CANONICAL + 0x123
            && f.error_code & PF_WRITE != 0)
    });

    check(&mut s, "probe_above_4g_pf", |d| {
        let r = probe::probe_read(FIRST_UNMAPPED);
        describe(d, &r);
        matches!(r, Err(f) if f.vector == VECTOR_PF as u8 && f.cr2 == FIRST_UNMAPPED)
    });

    let mut gp_info = None;
    check(&mut s, "probe_noncanonical_gp", |d| {
        let r = probe::probe_read(NON_CANONICAL);
        describe(d, &r);
        gp_info = r.err();
        matches!(r, Err(f) if f.vector == VECTOR_GP as u8 && f.error_code == 0)
    });

    check(&mut s, "exceptions_on_ist", |d| {
        let pf = pf_info.is_some_and(|f| frame_on(IstSlot::PageFault, &f));
        let gp = gp_info.is_some_and(|f| frame_on(IstSlot::GeneralProtection, &f));
        let _ = write!(
            d,
            "#PF frame {:#x} on IST{}: {pf}; #GP frame {:#x} on IST{}: {gp}",
            pf_info.map_or(0, |f| f.handler_frame),
            IstSlot::PageFault as u16 + 1,
            gp_info.map_or(0, |f| f.handler_frame),
            IstSlot::GeneralProtection as u16 + 1,
        );
        pf && gp
    });

    check(&mut s, "sse_state_preserved", |d| {
        const PATTERN: u64 = 0x0123_4567_89ab_cdef;
        let (x0, x15, ret): (u64, u64, u64);
        probe::set_clobber_sse_in_handler(true);
        // The handler deliberately sets xmm0/xmm15 to all-ones while recovering this
        // probe fault; only fxsave/fxrstor in the entry path can bring PATTERN back.
        // SAFETY: calls the probe routine per the C ABI (clobber_abi), on an
        // unmapped address; our code has no red zone, so the call's push is harmless.
        unsafe {
            asm!(
                "movq xmm0, {pat}",
                "movq xmm15, {pat}",
                "call {probe}",
                "movq r8, xmm0",
                "movq r9, xmm15",
                pat = in(reg) PATTERN,
                probe = sym probe::bk_probe_read,
                out("r8") x0,
                out("r9") x15,
                inout("rdi") UNMAPPED_CANONICAL => _,
                out("rax") ret,
                clobber_abi("C"),
            );
        }
        probe::set_clobber_sse_in_handler(false);
        // Consume the fault record of this raw probe.
        let _ = probe::probe_read(PROBE_TARGET.as_ptr() as u64);
        let _ = write!(d, "xmm0={x0:#x} xmm15={x15:#x} probe_ret={ret:#x}");
        x0 == PATTERN && x15 == PATTERN && ret == u64::MAX
    });

    check(&mut s, "paging_and_sse_flags", |d| {
        let efer = Efer::read();
        let cr0 = Cr0::read();
        let cr4 = Cr4::read();
        let nxe = efer.contains(EferFlags::NO_EXECUTE_ENABLE);
        let lma = efer.contains(EferFlags::LONG_MODE_ACTIVE);
        let wp = cr0.contains(Cr0Flags::WRITE_PROTECT);
        let sse = cr4.contains(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE)
            && !cr0.contains(Cr0Flags::EMULATE_COPROCESSOR);
        let _ = write!(d, "EFER.NXE={nxe} EFER.LMA={lma} CR0.WP={wp} SSE={sse}");
        nxe && lma && wp && sse
    });

    s
}
