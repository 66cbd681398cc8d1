//! Link the kernel as a freestanding static ELF placed by `linker.ld`.
//!
//! `rustc-link-arg-bins` (not `rustc-link-arg`) so that only the kernel binary gets
//! these flags.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let args = [
        format!("-T{dir}/linker.ld"),
        // No crt0/libc: the entry point is our boot assembly.
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        // A GNU build-id note would land next to the PVH note; QEMU does not need it.
        "-Wl,--build-id=none".into(),
        // Keep file offsets small: the multiboot2 header must be in the first 32 KiB.
        "-Wl,-z,max-page-size=0x1000".into(),
        // global_asm objects lack .note.GNU-stack; we have no executable stack anyway.
        "-Wl,-z,noexecstack".into(),
        "-Wl,--gc-sections".into(),
    ];
    for arg in args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
