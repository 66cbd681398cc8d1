//! Fixed-capacity UTF-8 string (no allocator): bounded copies of boot-loader strings,
//! CPUID strings, and scratch text for JSON fields.

use core::fmt;

#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Copy at most `N` bytes of `bytes`; invalid UTF-8 is cut at the first bad byte.
    /// Returns false if anything was dropped.
    pub fn from_bytes_lossy(bytes: &[u8]) -> (Self, bool) {
        let mut s = Self::new();
        let n = bytes.len().min(N);
        s.buf[..n].copy_from_slice(&bytes[..n]);
        let valid = match core::str::from_utf8(&s.buf[..n]) {
            Ok(_) => n,
            Err(e) => e.valid_up_to(),
        };
        s.len = valid;
        (s, valid == bytes.len())
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `buf[..len]` only ever receives whole valid UTF-8 (checked in
        // `from_bytes_lossy`, whole `&str`s or chars in `write_str`).
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends; on overflow keeps what fits (whole chars only) and reports `fmt::Error`.
impl<const N: usize> fmt::Write for FixedStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0u8; 4];
            let enc = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + enc.len() > N {
                return Err(fmt::Error);
            }
            self.buf[self.len..self.len + enc.len()].copy_from_slice(enc);
            self.len += enc.len();
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq for FixedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for FixedStr<N> {}
