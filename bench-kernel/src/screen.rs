//! The screen, for machines without a serial port: the human lines the kernel prints (`# ...`:
//! progress per suite, the summary, a fault report, the last words) also appear in VGA text
//! mode (BIOS: GRUB leaves it, the multiboot2 framebuffer tag says EGA text) or on the pixel
//! framebuffer GRUB hands over (UEFI: GOP), drawn with a bitmap font. No screen (PVH under
//! QEMU, or no framebuffer tag): nothing is drawn.

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

use crate::bootinfo::Framebuffer;
use crate::sync::RacyCell;

const FONT: RasterHeight = RasterHeight::Size16;
const WEIGHT: FontWeight = FontWeight::Regular;
/// VGA text attribute: light grey on black.
const ATTR: u8 = 0x07;

struct Screen {
    fb: Option<Framebuffer>,
    col: u32,
    row: u32,
}

static SCREEN: RacyCell<Screen> = RacyCell::new(Screen {
    fb: None,
    col: 0,
    row: 0,
});

/// Columns and rows of text `fb` holds.
fn grid(fb: &Framebuffer) -> (u32, u32) {
    if fb.text {
        (fb.width, fb.height)
    } else {
        (
            fb.width / get_raster_width(WEIGHT, FONT) as u32,
            fb.height / FONT.val() as u32,
        )
    }
}

/// Start drawing on `fb` (cleared first).
pub fn init(fb: Option<Framebuffer>) {
    // SAFETY: boot CPU, before anything else prints to the screen.
    let s = unsafe { &mut *SCREEN.get() };
    s.fb = fb.filter(|f| f.usable());
    s.col = 0;
    s.row = 0;
    if let Some(f) = s.fb {
        clear(&f);
    }
}

fn clear(f: &Framebuffer) {
    for y in 0..f.height {
        let line = f.addr + y as u64 * f.pitch as u64;
        if f.text {
            for x in 0..f.width {
                // SAFETY: inside the text buffer the loader described.
                unsafe {
                    ((line + x as u64 * 2) as *mut u16)
                        .write_volatile((ATTR as u16) << 8 | b' ' as u16)
                };
            }
        } else {
            // SAFETY: one pixel row of the framebuffer the loader described.
            unsafe {
                core::ptr::write_bytes(line as *mut u8, 0, (f.width * f.bytes_per_pixel()) as usize)
            };
        }
    }
}

/// Draw one line of text (no newline in it) and move to the next line, scrolling at the bottom.
///
/// # Safety
/// The caller holds the console (the serial lock), or is the fault path that ends the run.
pub unsafe fn line(text: &str) {
    // SAFETY: per the contract, no other writer runs.
    let s = unsafe { &mut *SCREEN.get() };
    let Some(f) = s.fb else { return };
    let (cols, rows) = grid(&f);
    for c in text.chars() {
        if s.col >= cols {
            newline(s, &f, rows);
        }
        put(&f, s.col, s.row, c);
        s.col += 1;
    }
    newline(s, &f, rows);
}

fn newline(s: &mut Screen, f: &Framebuffer, rows: u32) {
    s.col = 0;
    if s.row + 1 < rows {
        s.row += 1;
        return;
    }
    // Scroll up one text row.
    let row_bytes = if f.text {
        f.pitch as u64
    } else {
        f.pitch as u64 * FONT.val() as u64
    };
    let keep = row_bytes * (rows as u64 - 1);
    // SAFETY: both ranges lie inside the framebuffer (rows rows of row_bytes each).
    unsafe {
        core::ptr::copy(
            (f.addr + row_bytes) as *const u8,
            f.addr as *mut u8,
            keep as usize,
        );
    }
    let (cols, _) = grid(f);
    for x in 0..cols {
        put(f, x, rows - 1, ' ');
    }
}

fn put(f: &Framebuffer, col: u32, row: u32, c: char) {
    if f.text {
        let ch = if c.is_ascii() && !c.is_ascii_control() {
            c as u8
        } else {
            b'?'
        };
        let at = f.addr + row as u64 * f.pitch as u64 + col as u64 * 2;
        // SAFETY: inside the text buffer (col < width, row < height).
        unsafe { (at as *mut u16).write_volatile((ATTR as u16) << 8 | ch as u16) };
        return;
    }
    let glyph = get_raster(c, WEIGHT, FONT).or_else(|| get_raster('?', WEIGHT, FONT));
    let Some(glyph) = glyph else { return };
    let (w, h) = (glyph.width() as u32, FONT.val() as u32);
    let bpp = f.bytes_per_pixel();
    for (y, raster_row) in glyph.raster().iter().enumerate().take(h as usize) {
        let line = f.addr + (row * h + y as u32) as u64 * f.pitch as u64;
        for (x, &v) in raster_row.iter().enumerate().take(w as usize) {
            let px = f.pixel(v, v, v);
            let at = line + (col * w + x as u32) as u64 * bpp as u64;
            // SAFETY: inside the framebuffer (the grid keeps whole glyphs on screen).
            unsafe {
                for (i, b) in px.to_le_bytes().iter().take(bpp as usize).enumerate() {
                    ((at + i as u64) as *mut u8).write_volatile(*b);
                }
            }
        }
    }
}
