//! Boot entry: PVH note, multiboot2 header, and the 32-bit -> 64-bit trampoline.
//!
//! Both supported protocols enter in 32-bit protected mode with paging off:
//!
//! * **PVH** (primary, QEMU `-kernel`): entry `pvh_entry`, found through the ELF note
//!   `Xen`/`XEN_ELFNOTE_PHYS32_ENTRY`; `ebx` = physical address of `hvm_start_info`.
//! * **multiboot2** (GRUB): entry = ELF `e_entry` = `_start`, `eax` = 0x36d76289,
//!   `ebx` = physical address of the multiboot2 information structure.
//!
//! There is deliberately NO multiboot1 header: QEMU's `-kernel` tries multiboot1
//! before PVH, so such a header would silently switch QEMU to the multiboot1 path.
//!
//! The trampoline zeroes `.bss` first (so nothing it sets up afterwards can be wiped),
//! takes the boot stack and page tables from `.bss`, identity-maps 0..4 GiB with 2 MiB
//! pages, enables PAE + EFER.LME (+ EFER.NXE when the CPU has NX), turns on paging,
//! far-jumps into 64-bit code, enables SSE (the precompiled `core` uses it
//! everywhere) and calls `kmain(boot_magic, boot_info_paddr)`.

use core::arch::global_asm;

/// `eax` value a multiboot2 loader passes; also what `kmain` receives as `boot_magic`.
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u64 = 0x36d7_6289;
/// `hvm_start_info.magic`; the PVH entry passes it to `kmain` as `boot_magic`.
pub const PVH_START_INFO_MAGIC: u64 = 0x336e_c578;

/// Size of the stack `kmain` runs on. A full run used 203 KiB of 256 (the exit record's
/// `boot_stack_used_bytes`, results/2026-12-07-vm-tcg-2.log); timing contenders in rounds keeps
/// 24 KiB of samples per harness more on it, which overflowed 256 in the churn suite.
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

global_asm!(
    r#"
    /* ---------------- multiboot2 header (first bytes of the image) ---------------- */
    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long 0xe85250d6                        /* magic */
    .long 0                                 /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header_start /* header length */
    .long 0x100000000 - (0xe85250d6 + 0 + (mb2_header_end - mb2_header_start))
    /* information request tag: we need cmdline (1) and memory map (6) */
    .balign 8
    .short 1, 0
    .long 16
    .long 1, 6
    /* end tag */
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

    /* ---------------- PVH ELF note (read by QEMU from the PT_NOTE segment) ---------------- */
    .section .note.pvh, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz: 32-bit entry address */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_entry
    .balign 4

    /* ---- boot page tables and stack: in .bss, used only after it has been zeroed ---- */
    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4096 * 4          /* 4 PDs x 512 x 2 MiB = 4 GiB */
    .balign 16
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:

    .section .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0                             /* null */
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit kernel code */
    .quad 0x00cf92000000ffff            /* 0x10: kernel data */
boot_gdt_end:
    .balign 4
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    /* ---------------- 32-bit entry ---------------- */
    .section .text.boot32, "ax"
    .code32

    /* multiboot2 (and any loader using e_entry): eax = magic, ebx = info */
    .global _start
_start:
    cli
    cld
    mov %eax, %ebp
    jmp boot32_common

    /* PVH: ebx = hvm_start_info, other registers undefined */
    .global pvh_entry
pvh_entry:
    cli
    cld
    mov ${pvh_magic}, %ebp

    /* ebp = boot magic, ebx = boot info physical address */
boot32_common:
    /* cpuid clobbers ebx: keep the boot info pointer in esi (untouched from here on) */
    mov %ebx, %esi

    /* Zero .bss first: the stack and page tables below live there. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $boot_stack_top, %esp

    /* Long mode is required; without it report on COM1 and leave with the failure code. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3 (present | writable) */
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    mov $boot_pdpt, %edi
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b

    /* 2048 PD entries: entry i maps i * 2 MiB (present | writable | huge) */
    mov $boot_pd, %edi
    mov $0x83, %eax
    mov $2048, %ecx
2:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 2b

    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov %cr4, %eax
    or $(1 << 5), %eax                  /* PAE */
    mov %eax, %cr4

    mov $0x80000001, %eax
    cpuid
    mov %edx, %edi                      /* NX support: bit 20 */
    mov $0xc0000080, %ecx               /* IA32_EFER */
    rdmsr
    or $(1 << 8), %eax                  /* LME */
    test $(1 << 20), %edi
    jz 3f
    or $(1 << 11), %eax                 /* NXE: the lab maps pages with NX bits */
3:  wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax                /* PG | WP (honour read-only pages in ring 0) | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $boot64

no_long_mode:
    mov $no_long_mode_msg, %esi
4:  lodsb
    test %al, %al
    jz 5f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 4b
5:  mov ${exit_failure}, %eax
    mov $0xf4, %dx
    out %eax, %dx
6:  hlt
    jmp 6b

    /* ---------------- 64-bit entry ---------------- */
    .code64
boot64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs

    /* Upper halves of the GPRs are undefined after the mode switch: reload. */
    mov $boot_stack_top, %rsp

    call sse_on

    mov %ebp, %edi                      /* boot_magic (zero-extended) */
    mov %esi, %esi                      /* boot_info_paddr (zero-extend) */
    xor %ebp, %ebp                      /* terminate frame-pointer chains */
    call {kmain}
7:  cli
    hlt
    jmp 7b

    /* SSE on this CPU (the boot CPU here, each AP from its trampoline): CR0.EM = 0,
       CR0.MP = 1; CR4.OSFXSR | CR4.OSXMMEXCPT. Clobbers rax only. */
    .global sse_on
sse_on:
    mov %cr0, %rax
    and $~(1 << 2), %rax
    or $(1 << 1), %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or $((1 << 9) | (1 << 10)), %rax
    mov %rax, %cr4
    fninit
    ret

    .section .rodata.boot, "a"
no_long_mode_msg:
    .asciz "{{\"type\":\"fault\",\"name\":\"no_long_mode\"}}\r\n"
    .text
"#,
    stack_size = const BOOT_STACK_SIZE,
    pvh_magic = const PVH_START_INFO_MAGIC,
    exit_failure = const ptp_lab::exit::ExitCode::Failure.port_value(),
    kmain = sym crate::kmain,
    options(att_syntax)
);

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static boot_stack_bottom: u8;
}

/// Physical (= virtual) extent `[start, end)` of the loaded kernel image including `.bss`.
pub fn kernel_image_range() -> (u64, u64) {
    // Linker-script symbols: only their addresses are taken (no unsafe needed).
    (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    )
}

/// Deepest boot-stack use so far, in bytes. The stack starts zeroed (it is in
/// `.bss`), so the lowest non-zero byte marks the high-water mark. There is no guard
/// page (the identity map uses 2 MiB pages): a full stack means it has overflowed into
/// whatever precedes it in `.bss`.
pub fn boot_stack_high_water() -> u64 {
    let bottom = &raw const boot_stack_bottom;
    // SAFETY: the boot stack is BOOT_STACK_SIZE readable bytes starting at its bottom
    // symbol; it is only read, through a raw slice of plain bytes.
    let stack = unsafe { core::slice::from_raw_parts(bottom, BOOT_STACK_SIZE) };
    let untouched = stack
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(BOOT_STACK_SIZE);
    (BOOT_STACK_SIZE - untouched) as u64
}
