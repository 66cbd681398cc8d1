//! multiboot2 (GRUB): the information structure's command-line, memory-map, module, ACPI and
//! framebuffer tags, read through the `multiboot2` crate from a copy in the kernel's memory.
//!
//! The crate's typed views assert on their sizes, so each tag is checked before it is viewed:
//! a loader's mistake must end in an error record, never a panic.

use multiboot2::{
    BootInformation, BootInformationHeader, CommandLineTag, DynSizedStructure, FramebufferTag,
    FramebufferType, MaybeDynSized, MemoryArea, MemoryMapTag, ModuleTag, TagHeader, TagType,
};
use ptp_lab::fixedstr::FixedStr;

use super::{
    BootInfo, BootInfoError, Framebuffer, MemoryRegion, Protocol, Range, check_mapped, read_phys,
};

/// Sanity bound on the info structure (GRUB's is a few KiB).
const MAX_INFO_SIZE: u32 = 1 << 20;
/// The copy the kernel parses (GRUB may put the original anywhere in low memory): larger
/// structures are parsed where they are (and stay excluded from free memory either way).
const COPY_SIZE: usize = 64 * 1024;
/// The ACPI tags hold a copy of the RSDP: its ACPI 1.0 part at least.
const RSDP_V1_BYTES: usize = 20;
/// The framebuffer type in the tag's payload (after the address, pitch, width, height and bpp).
/// Read first because the crate's `buffer_type` panics on an indexed palette that overruns
/// the tag, and this kernel draws only RGB pixels and text.
const FRAMEBUFFER_TYPE_AT: usize = 21;
const FRAMEBUFFER_RGB: u8 = 1;
const FRAMEBUFFER_TEXT: u8 = 2;
/// The RGB field positions and sizes after the fixed framebuffer fields.
const FRAMEBUFFER_RGB_BYTES: usize = 6;

type GenericTag = DynSizedStructure<TagHeader>;

#[repr(C, align(8))]
struct InfoCopy([u8; COPY_SIZE]);
static COPY: crate::sync::RacyCell<InfoCopy> = crate::sync::RacyCell::new(InfoCopy([0; COPY_SIZE]));

pub(super) fn parse(paddr: u64) -> Result<BootInfo, BootInfoError> {
    check_mapped(paddr, 8)?;
    // SAFETY: checked above.
    let total_size: u32 = unsafe { read_phys(paddr) };
    if !(16..=MAX_INFO_SIZE).contains(&total_size) {
        return Err(BootInfoError::BadMultiboot2Size(total_size));
    }
    check_mapped(paddr, u64::from(total_size))?;
    let mut info = BootInfo::new(Protocol::Multiboot2, paddr);
    info.push_boot_range(paddr, u64::from(total_size));
    // Parse a copy in the kernel's own memory: what points into the structure (the RSDP
    // copy in GRUB's ACPI tag) then stays valid whatever later reuses low memory. A structure
    // already inside the kernel image (the self-test's fixture) is parsed in place, so that it
    // cannot overwrite the copy the boot's RSDP address points into.
    let (kernel_start, kernel_end) = crate::boot::kernel_image_range();
    let in_kernel = paddr >= kernel_start && paddr + u64::from(total_size) <= kernel_end;
    let at = if !in_kernel && total_size as usize <= COPY_SIZE {
        let copy = COPY.get() as *mut u8;
        // SAFETY: the original is mapped (checked); the copy is ours, parsed once at boot.
        unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, copy, total_size as usize) };
        copy as u64
    } else {
        paddr
    };
    // SAFETY: `total_size` bytes at `at` are mapped (checked) and nothing writes them while
    // the boot information is read.
    let mbi = unsafe { BootInformation::load(at as *const BootInformationHeader) }
        .map_err(BootInfoError::Multiboot2)?;

    let mut have_mmap = false;
    for tag in mbi.tags() {
        let size = tag.header().size;
        let kind = tag.header().typ.get();
        let bad = || BootInfoError::BadMultiboot2Tag {
            offset: ((&raw const *tag).cast::<u8>() as u64 - at) as u32,
            kind,
            size,
        };
        match TagType::from_val(kind) {
            TagType::Cmdline => {
                if let Some(t) = view::<CommandLineTag>(tag) {
                    // Not UTF-8 (or no NUL): kept lossily, as PVH's command line is.
                    let bytes = t
                        .cmdline()
                        .map_or_else(|_| until_nul(tag.payload()), str::as_bytes);
                    let (s, complete) = FixedStr::from_bytes_lossy(bytes);
                    info.cmdline = s;
                    info.cmdline_truncated = !complete;
                }
            }
            TagType::Module => {
                if let Some(m) = view::<ModuleTag>(tag) {
                    let (start, end) = (m.start_address(), m.end_address());
                    if end > start {
                        info.push_boot_range(u64::from(start), u64::from(end - start));
                        info.module.get_or_insert(Range {
                            start: start.into(),
                            end: end.into(),
                        });
                    }
                }
            }
            // The new (2.0) copy wins over the old when GRUB gives both. The address is the
            // copy's, inside the tag: `acpi` checks the RSDP itself.
            TagType::AcpiV2 if tag.payload().len() >= RSDP_V1_BYTES => {
                info.rsdp_paddr = Some(tag.payload().as_ptr() as u64);
            }
            TagType::AcpiV1 if tag.payload().len() >= RSDP_V1_BYTES => {
                info.rsdp_paddr.get_or_insert(tag.payload().as_ptr() as u64);
            }
            TagType::Framebuffer => {
                let kind = tag.payload().get(FRAMEBUFFER_TYPE_AT).copied();
                if let Some(fb) = view::<FramebufferTag>(tag)
                    && let Some(fb) = framebuffer(fb, kind)
                {
                    info.framebuffer = Some(fb);
                }
            }
            TagType::Mmap => {
                have_mmap = true;
                // The crate's view asserts whole entries of its own size.
                let entry = size_of::<MemoryArea>();
                let fits = (size as usize)
                    .checked_sub(MemoryMapTag::BASE_SIZE)
                    .is_some_and(|bytes| bytes % entry == 0);
                let map = fits.then(|| tag.cast::<MemoryMapTag>());
                let Some(map) = map.filter(|m| m.entry_size() as usize == entry) else {
                    return Err(bad());
                };
                for area in map.memory_areas() {
                    info.push_region(MemoryRegion {
                        base: area.start_address(),
                        len: area.size(),
                        kind: area.typ().val(),
                    });
                }
            }
            _ => {}
        }
    }
    if !have_mmap {
        return Err(BootInfoError::Multiboot2NoMemmap);
    }
    Ok(info)
}

/// `tag` viewed as a `T`, if it is long enough for `T`'s fixed fields (the crate asserts it).
fn view<T>(tag: &GenericTag) -> Option<&T>
where
    T: MaybeDynSized<Header = TagHeader> + ?Sized,
    T::Metadata: Default,
{
    (tag.header().size as usize >= T::BASE_SIZE).then(|| tag.cast::<T>())
}

/// The framebuffer this kernel can draw on: EGA text, or RGB pixels with their field layout.
fn framebuffer(tag: &FramebufferTag, kind: Option<u8>) -> Option<Framebuffer> {
    let (text, (red, green, blue)) = match kind? {
        FRAMEBUFFER_TEXT => (true, ((0, 0), (0, 0), (0, 0))),
        FRAMEBUFFER_RGB
            if tag.header().size as usize >= FramebufferTag::BASE_SIZE + FRAMEBUFFER_RGB_BYTES =>
        {
            let Ok(FramebufferType::RGB { red, green, blue }) = tag.buffer_type() else {
                return None;
            };
            let field = |f: multiboot2::FramebufferField| (f.position, f.size);
            (false, (field(red), field(green), field(blue)))
        }
        _ => return None,
    };
    Some(Framebuffer {
        addr: tag.address(),
        pitch: tag.pitch(),
        width: tag.width(),
        height: tag.height(),
        bpp: tag.bpp(),
        text,
        red,
        green,
        blue,
    })
}

/// The bytes before the first NUL (all of them without one).
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or(bytes)
}
