//! Boot self-checks of the platform: probe recovery, IST usage, SSE state
//! preservation across exceptions, paging flags. Each prints one JSON `check` line.

use core::arch::asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::frame::{VECTOR_GP, VECTOR_PF};
use crate::gdt::{IstSlot, ist_stack_range};
use crate::probe::{self, FaultInfo};
use ptp_lab::case::Case;
use ptp_lab::fixedstr::FixedStr;
use ptp_lab::record::{BOOT_SUITE, CheckRecord, Counts};

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

/// Boot self-checks, written as `check` records of the `boot` suite (no pool size).
const BENCH: &str = "selftest";

fn record(counts: &mut Counts, name: &str, ok: bool, detail: &FixedStr<256>) {
    counts.checks += 1;
    if !ok {
        counts.checks_failed += 1;
    }
    crate::serial::with_console(|w| {
        let _ = CheckRecord {
            suite: BOOT_SUITE,
            bench: BENCH,
            name,
            pool_pages: None,
            ok,
            detail: format_args!("{detail}"),
        }
        .report(w);
    });
}

/// Run a check closure that fills `detail` and returns pass/fail.
fn check(counts: &mut Counts, name: &str, f: impl FnOnce(&mut FixedStr<256>) -> bool) {
    let mut detail = FixedStr::<256>::new();
    let ok = f(&mut detail);
    record(counts, name, ok, &detail);
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

/// Run every boot self-check; the counts seed the run's `end` record.
pub fn run() -> Counts {
    let mut s = Counts::default();
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

    check(&mut s, "multiboot2_parse_fixture", multiboot2_fixture);

    check(&mut s, "mem_functions", mem_functions);

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

/// QEMU boots us via PVH only, so the multiboot2 parser is exercised on a synthetic
/// info structure: cmdline tag, mmap tag (2 entries), end tag.
fn multiboot2_fixture(d: &mut FixedStr<256>) -> bool {
    #[repr(C, align(8))]
    struct Info([u8; 104]);
    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }
    const RAM_END: u64 = 0x800_0000;
    let mut info = Info([0; 104]);
    let b = &mut info.0;
    put(b, 0, &104u32.to_le_bytes()); // total_size
    put(b, 8, &1u32.to_le_bytes()); // tag 1: cmdline
    put(b, 12, &20u32.to_le_bytes());
    put(b, 16, b"mb2 fixture\0");
    put(b, 32, &6u32.to_le_bytes()); // tag 6: mmap
    put(b, 36, &64u32.to_le_bytes());
    put(b, 40, &24u32.to_le_bytes()); // entry_size
    put(b, 48, &0u64.to_le_bytes()); // entry 0: low RAM
    put(b, 56, &0x9f000u64.to_le_bytes());
    put(b, 64, &1u32.to_le_bytes());
    put(b, 72, &0x10_0000u64.to_le_bytes()); // entry 1: 1 MiB .. 128 MiB
    put(b, 80, &(RAM_END - 0x10_0000).to_le_bytes());
    put(b, 88, &1u32.to_le_bytes());
    put(b, 96, &0u32.to_le_bytes()); // end tag
    put(b, 100, &8u32.to_le_bytes());

    let parsed = crate::bootinfo::parse(
        crate::boot::MULTIBOOT2_BOOTLOADER_MAGIC,
        &raw const info as u64,
    );
    let info = match parsed {
        Ok(info) => info,
        Err(e) => {
            let _ = write!(d, "parse error: {e}");
            return false;
        }
    };
    let free = info.free_regions();
    let (_, kernel_end) = crate::boot::kernel_image_range();
    let _ = write!(
        d,
        "cmdline='{}' entries={} free={:#x} in {} regions",
        info.cmdline(),
        info.memory_map().len(),
        free.total_bytes(),
        free.as_slice().len()
    );
    info.protocol == crate::bootinfo::Protocol::Multiboot2
        && info.cmdline() == "mb2 fixture"
        && info.memory_map().len() == 2
        && info.memory_map()[1].base == 0x10_0000
        // RAM above 1 MiB minus the kernel image (which holds this fixture, on the boot stack).
        && free.as_slice().len() == 1
        && free.total_bytes() == RAM_END - kernel_end
}

/// Our `mem*` replace libc's. LLVM knows these names as builtins and would inline or
/// constant-fold direct calls, so they are called through opaque (`black_box`)
/// function pointers to exercise the real code, incl. both `memmove` directions.
fn mem_functions(d: &mut FixedStr<256>) -> bool {
    use core::hint::black_box;
    type Copy = unsafe extern "C" fn(*mut u8, *const u8, usize) -> *mut u8;
    type Set = unsafe extern "C" fn(*mut u8, i32, usize) -> *mut u8;
    type Cmp = unsafe extern "C" fn(*const u8, *const u8, usize) -> i32;
    let memcpy = black_box(crate::rt::memcpy as Copy);
    let memmove = black_box(crate::rt::memmove as Copy);
    let memset = black_box(crate::rt::memset as Set);
    let memcmp = black_box(crate::rt::memcmp as Cmp);
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as u8;
    }
    // SAFETY: all ranges are inside the local 64-byte arrays.
    let (cpy, fwd, bwd, set, cmp) = unsafe {
        memcpy(b.as_mut_ptr(), a.as_ptr(), 64);
        let cpy = b == a;
        // dest above src (backward copy): b[8..40] = old b[0..32]
        memmove(b.as_mut_ptr().add(8), b.as_ptr(), 32);
        let bwd = (0..32).all(|i| b[8 + i] == i as u8) && b[0..8] == a[0..8];
        // dest below src (forward copy): a[0..32] = old a[8..40]
        memmove(a.as_mut_ptr(), a.as_ptr().add(8), 32);
        let fwd = (0..32).all(|i| a[i] == (i + 8) as u8);
        memset(a.as_mut_ptr(), 0x7e, 16);
        let set = a[..16].iter().all(|&x| x == 0x7e) && a[16] == 24;
        let c = [1u8, 2, 3];
        let e = [1u8, 2, 4];
        let cmp = memcmp(c.as_ptr(), e.as_ptr(), 3) < 0
            && memcmp(e.as_ptr(), c.as_ptr(), 3) > 0
            && memcmp(c.as_ptr(), c.as_ptr(), 3) == 0;
        (cpy, fwd, bwd, set, cmp)
    };
    let _ = write!(
        d,
        "memcpy={cpy} memmove_fwd={fwd} memmove_bwd={bwd} memset={set} memcmp={cmp}"
    );
    cpy && fwd && bwd && set && cmp
}
