//! Tiny JSON helpers for the one-object-per-line serial protocol.
//!
//! Output lines are either one JSON object (machine-readable) or start with `# `
//! (for humans); there is no allocator, so escaping happens while formatting.

use core::fmt::{self, Write};

/// Displays a `&str` as a JSON string literal (with quotes), escaping as needed.
pub struct Str<'a>(pub &'a str);

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        Escaper(&mut *f).write_str(self.0)?;
        f.write_char('"')
    }
}

/// Displays a `u64` as a JSON string holding a hex number (`"0x1f"`): JSON numbers
/// are not reliably 64-bit in consumers, and addresses read better in hex.
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{:#x}\"", self.0)
    }
}

/// A `fmt::Write` adapter that escapes everything written through it for use inside a
/// JSON string literal. Used for text we only get as `fmt::Arguments` (panic messages).
pub struct Escaper<W: Write>(pub W);

impl<W: Write> Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}
