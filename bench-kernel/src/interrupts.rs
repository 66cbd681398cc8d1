//! Exception entry stubs, the common register-saving path, and the fault reporter.
//!
//! Stable Rust has no `extern "x86-interrupt"`, so each vector gets a naked stub that
//! normalises the stack (pushing a dummy error code where the CPU pushes none) and
//! pushes its vector number, then jumps to `common_entry`, which saves all GPRs and
//! the full x87/SSE state (`fxsave64`: the precompiled `core` uses SSE everywhere,
//! so any Rust handler may clobber XMM registers) and calls [`exception_dispatch`].

use core::arch::naked_asm;

use ptp_lab::case::Case;
use ptp_lab::record::FaultRecord;
use x86_64::registers::control::Cr2;

use crate::cpu::this_cpu;
use crate::frame::{self, Frame};
use crate::irq::{self, IPI_VECTOR, SPURIOUS_VECTOR};

/// Common path for all vectors. Entered with the stack holding
/// `[vector][error code][rip][cs][rflags][rsp][ss]`.
#[unsafe(naked)]
unsafe extern "C" fn common_entry() {
    naked_asm!(
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        // The SysV ABI requires DF = 0 on calls; the interrupted code may have set it.
        "cld",
        // rbx (callee-saved) keeps the Frame pointer across the call.
        "mov rbx, rsp",
        // 512-byte, 16-byte-aligned FXSAVE area; also leaves RSP 16-aligned for the call.
        "sub rsp, 512",
        "and rsp, -16",
        "fxsave64 [rsp]",
        "mov rdi, rbx",
        "call {dispatch}",
        "fxrstor64 [rsp]",
        "mov rsp, rbx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        // Drop vector and error code.
        "add rsp, 16",
        "iretq",
        dispatch = sym exception_dispatch,
    );
}

macro_rules! exception_stubs {
    ($( $name:ident = $vector:literal $(, $err:ident)? ; )*) => {
        $( exception_stubs!(@stub $name, $vector $(, $err)?); )*
        /// Entry stubs indexed by vector number.
        pub static STUBS: [unsafe extern "C" fn(); 32] = [$($name),*];
    };
    (@stub $name:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!("push {v}", "jmp {common}", v = const $vector, common = sym common_entry);
        }
    };
    (@stub $name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!("push 0", "push {v}", "jmp {common}", v = const $vector, common = sym common_entry);
        }
    };
}

// Vectors with a CPU-pushed error code: 8, 10-14, 17, 21, 29, 30.
exception_stubs! {
    stub_00 = 0; stub_01 = 1; stub_02 = 2; stub_03 = 3; stub_04 = 4; stub_05 = 5;
    stub_06 = 6; stub_07 = 7; stub_08 = 8, error_code; stub_09 = 9;
    stub_10 = 10, error_code; stub_11 = 11, error_code; stub_12 = 12, error_code;
    stub_13 = 13, error_code; stub_14 = 14, error_code; stub_15 = 15; stub_16 = 16;
    stub_17 = 17, error_code; stub_18 = 18; stub_19 = 19; stub_20 = 20;
    stub_21 = 21, error_code; stub_22 = 22; stub_23 = 23; stub_24 = 24; stub_25 = 25;
    stub_26 = 26; stub_27 = 27; stub_28 = 28; stub_29 = 29, error_code;
    stub_30 = 30, error_code; stub_31 = 31;
}

#[unsafe(naked)]
unsafe extern "C" fn stub_ipi() {
    naked_asm!("push 0", "push {v}", "jmp {common}", v = const IPI_VECTOR, common = sym common_entry);
}

#[unsafe(naked)]
unsafe extern "C" fn stub_spurious() {
    naked_asm!("push 0", "push {v}", "jmp {common}", v = const SPURIOUS_VECTOR, common = sym common_entry);
}

/// The entry stub of an interrupt vector the kernel handles (the IPI, the spurious vector).
pub fn stub_for(vector: u8) -> unsafe extern "C" fn() {
    if vector == IPI_VECTOR {
        stub_ipi
    } else {
        stub_spurious
    }
}

/// Rust side of every exception and interrupt: the shootdown IPI is served, a spurious
/// interrupt ignored, expected faults (probes) are recovered, anything else is reported and
/// ends the run with the failure exit code.
extern "C" fn exception_dispatch(frame: &mut Frame) {
    // An IPI before `smp` installed its handler is unexpected: reported below.
    if frame.vector == IPI_VECTOR as u64
        && let Some(handler) = irq::ipi_handler()
    {
        handler();
        return;
    }
    if frame.vector == SPURIOUS_VECTOR as u64 {
        return;
    }
    if crate::probe::try_recover(frame) {
        return;
    }
    report_and_exit(frame)
}

fn report_and_exit(frame: &Frame) -> ! {
    let name = frame::name(frame.vector);
    // CR2 is only meaningful for #PF, but reported always: it is cheap and harmless.
    let cr2 = Cr2::read_raw();
    let bench = crate::bench::current_bench();
    crate::serial::with_console(|w| {
        let _ = FaultRecord {
            cpu: this_cpu(),
            vector: frame.vector as u8,
            name,
            error_code: frame.error_code,
            rip: frame.rip,
            cr2,
            rsp: frame.rsp,
            bench,
        }
        .report(w);
        let _ = writeln!(
            w,
            "# FATAL: unexpected exception {name} (vector {}) on CPU {} in bench '{bench}': \
             rip={:#x} error_code={:#x} cr2={:#x} rsp={:#x} rbp={:#x} rax={:#x} rdi={:#x} rsi={:#x}",
            frame.vector,
            this_cpu(),
            frame.rip,
            frame.error_code,
            cr2,
            frame.rsp,
            frame.rbp,
            frame.rax,
            frame.rdi,
            frame.rsi,
        );
    });
    crate::exit::exit(ptp_lab::exit::ExitCode::Failure)
}
