//! The register frame every exception handler sees, and the names of the vectors. Shared by the
//! entry stubs (`interrupts`) and the probes that recover expected faults (`probe`).

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

/// The mnemonic of an exception vector ("#??" past the architectural 32).
pub fn name(vector: u64) -> &'static str {
    EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("#??")
}
