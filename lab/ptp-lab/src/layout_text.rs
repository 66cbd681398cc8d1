//! The recorded layouts as the bench job hands them over (the kernel's boot module; on the host
//! the file `PTP_LAB_LAYOUTS` names): a `# NAME` line per layout, then one `START END` line of
//! hex per range it maps.

/// The range of a `START END` line (hex, `0x` optional, start < end), or None.
pub fn range(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_whitespace();
    let (a, b) = (hex(words.next()?)?, hex(words.next()?)?);
    (a < b && words.next().is_none()).then_some((a, b))
}

fn hex(w: &str) -> Option<u64> {
    u64::from_str_radix(w.trim_start_matches("0x"), 16).ok()
}
