//! The application processors' way in: a SIPI starts each in real mode at a page below 1 MiB.
//! This code is copied there; it loads its own GDT, enters protected mode, turns on PAE, the
//! boot page tables, long mode (and NX, as the boot CPU has it) and paging, enters 64-bit
//! code, enables SSE (boot.rs's `sse_on`) and calls the entry on the stack the boot CPU left it. It finds its own
//! linear base from CS and patches its far pointers, so it runs from any page.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.ap_trampoline, "ax"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %ax, %bx
    shl $4, %ebx                        /* ebx = linear base of this page */
    leal (tr_gdt - ap_trampoline_start)(%ebx), %eax
    movl %eax, (tr_gdt_ptr - ap_trampoline_start + 2)
    leal (tr_pm - ap_trampoline_start)(%ebx), %eax
    movl %eax, (tr_far32 - ap_trampoline_start)
    leal (tr_lm - ap_trampoline_start)(%ebx), %eax
    movl %eax, (tr_far64 - ap_trampoline_start)
    lgdtl (tr_gdt_ptr - ap_trampoline_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl *(tr_far32 - ap_trampoline_start)

    .code32
tr_pm:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $(1 << 5), %eax                  /* PAE */
    mov %eax, %cr4
    mov (tr_cr3 - ap_trampoline_start)(%ebx), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx               /* IA32_EFER */
    rdmsr
    or $(1 << 8), %eax                  /* LME */
    or (tr_efer_extra - ap_trampoline_start)(%ebx), %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax                /* PG | WP | PE */
    mov %eax, %cr0
    ljmp *(tr_far64 - ap_trampoline_start)(%ebx)

    .code64
tr_lm:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov %ebx, %ebx
    mov (tr_stack - ap_trampoline_start)(%rbx), %rsp
    mov (tr_arg - ap_trampoline_start)(%rbx), %rdi
    movabs $sse_on, %rax                /* boot.rs: the kernel image, identity-mapped */
    call *%rax
    xor %ebp, %ebp
    mov (tr_entry - ap_trampoline_start)(%rbx), %rax
    call *%rax
1:  cli
    hlt
    jmp 1b

    .balign 16
tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff            /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
    .quad 0x00af9a000000ffff            /* 0x18: 64-bit code */
tr_gdt_ptr:
    .short 31
    .long 0
    .balign 8
tr_far32:
    .long 0
    .short 0x08
    .balign 8
tr_far64:
    .long 0
    .short 0x18
    .balign 8
    .global ap_tr_cr3, ap_tr_stack, ap_tr_arg, ap_tr_entry, ap_tr_efer_extra
ap_tr_cr3:
tr_cr3:         .quad 0
ap_tr_stack:
tr_stack:       .quad 0
ap_tr_arg:
tr_arg:         .quad 0
ap_tr_entry:
tr_entry:       .quad 0
ap_tr_efer_extra:
tr_efer_extra:  .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tr_cr3: u8;
    static ap_tr_stack: u8;
    static ap_tr_arg: u8;
    static ap_tr_entry: u8;
    static ap_tr_efer_extra: u8;
}

/// What the next AP to start gets.
pub struct Launch {
    pub cr3: u64,
    pub stack_top: u64,
    pub arg: u64,
    pub entry: u64,
    pub efer_extra: u64,
}

fn offset(sym: *const u8) -> u64 {
    sym as u64 - &raw const ap_trampoline_start as u64
}

/// Copy the trampoline to `page` (identity-mapped, below 1 MiB, free) with `launch` filled in.
///
/// # Safety
/// `page` must be a free 4 KiB page below 1 MiB that nothing else uses while APs start.
pub unsafe fn install(page: u64, launch: &Launch) -> Result<(), &'static str> {
    let start = &raw const ap_trampoline_start;
    let len = offset(&raw const ap_trampoline_end) as usize;
    if len > 4096 {
        return Err("the AP trampoline is larger than a page");
    }
    // SAFETY: per the contract; the source is our own code bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(start, page as *mut u8, len);
        for (sym, value) in [
            (&raw const ap_tr_cr3, launch.cr3),
            (&raw const ap_tr_stack, launch.stack_top),
            (&raw const ap_tr_arg, launch.arg),
            (&raw const ap_tr_entry, launch.entry),
            (&raw const ap_tr_efer_extra, launch.efer_extra),
        ] {
            ((page + offset(sym)) as *mut u64).write_volatile(value);
        }
    }
    Ok(())
}
