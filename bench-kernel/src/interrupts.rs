//! Exception entry stubs, the common register-saving path, and the fault reporter.
//!
//! Stable Rust has no `extern "x86-interrupt"`, so each vector gets a naked stub that
//! normalises the stack (pushing a dummy error code where the CPU pushes none) and
//! pushes its vector number, then jumps to `common_entry`, which saves all GPRs and
//! the full x87/SSE state (`fxsave64`: the precompiled `core` uses SSE everywhere,
//! so any Rust handler may clobber XMM registers) and calls [`exception_dispatch`].

use core::arch::naked_asm;

use x86_64::registers::control::Cr2;

use crate::json::{Hex, Str};

/// Register state at exception entry, in the order `common_entry` lays it out on the
/// stack (lowest address first). Handlers may modify it (e.g. `rip`) before `iretq`.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the stub.
    pub vector: u64,
    /// Pushed by the CPU, or 0 pushed by the stub for vectors without one.
    pub error_code: u64,
    // Pushed by the CPU (64-bit mode always pushes SS:RSP).
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Mnemonics of the 32 architectural exception vectors.
pub const EXCEPTION_NAMES: [&str; 32] = [
    "#DE", "#DB", "#NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "#RES15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#RES22", "#RES23", "#RES24",
    "#RES25", "#RES26", "#RES27", "#HV", "#VC", "#SX", "#RES31",
];

pub const VECTOR_GP: u64 = 13;
pub const VECTOR_PF: u64 = 14;

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

/// Rust side of every exception: expected faults (probes) are recovered, anything
/// else is reported and ends the run with the failure exit code.
extern "C" fn exception_dispatch(frame: &mut Frame) {
    if crate::probe::try_recover(frame) {
        return;
    }
    report_and_exit(frame)
}

fn report_and_exit(frame: &Frame) -> ! {
    let vector = frame.vector as usize;
    let name = EXCEPTION_NAMES.get(vector).copied().unwrap_or("#??");
    // CR2 is only meaningful for #PF, but reported always: it is cheap and harmless.
    let cr2 = Cr2::read_raw();
    let bench = crate::bench::current_bench();
    crate::serial::with_console(|w| {
        let _ = writeln!(
            w,
            "{{\"type\":\"fault\",\"vector\":{},\"name\":{},\"error_code\":{},\"rip\":{},\"cr2\":{},\"rsp\":{},\"bench\":{}}}",
            vector,
            Str(name),
            Hex(frame.error_code),
            Hex(frame.rip),
            Hex(cr2),
            Hex(frame.rsp),
            Str(bench),
        );
        let _ = writeln!(
            w,
            "# FATAL: unexpected exception {name} (vector {vector}) in bench '{bench}': \
             rip={:#x} error_code={:#x} cr2={:#x} rsp={:#x} rbp={:#x} rax={:#x} rdi={:#x} rsi={:#x}",
            frame.rip, frame.error_code, cr2, frame.rsp, frame.rbp, frame.rax, frame.rdi, frame.rsi,
        );
    });
    crate::exit::exit_failure()
}
