//! Finding the CPUs: the ACPI RSDP (handed over by the boot protocol, or found by scanning the
//! BIOS areas) -> RSDT/XSDT -> MADT, whose local APIC and x2APIC entries name every CPU the
//! firmware enabled; on firmware without ACPI, Intel's MultiProcessor table ([`mp_table`]). Pure parsing over a physical-memory reader, so it is tested on the host
//! with hand-built tables; the bench kernel reads through its identity map.

use core::fmt;

/// The most CPUs the lab brings up (the rest are listed as left out).
pub const MAX_CPUS: usize = 16;

/// Reads `buf.len()` bytes at a physical address; false if they are not readable.
pub type ReadPhys<'a> = &'a dyn Fn(u64, &mut [u8]) -> bool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP where the boot protocol said, nor in the BIOS areas.
    NoRsdp,
    /// A table that could not be read, or whose checksum or length is wrong.
    BadTable { signature: [u8; 4], at: u64 },
    /// The RSDT/XSDT lists no MADT ("APIC").
    NoMadt,
    /// No MP floating pointer ("_MP_") in the BIOS areas.
    NoMpTable,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "no ACPI RSDP (boot protocol, EBDA, 0xE0000-0xFFFFF)"),
            AcpiError::BadTable { signature, at } => write!(
                f,
                "ACPI table {} at {at:#x}: unreadable, bad length or checksum",
                core::str::from_utf8(signature).unwrap_or("????")
            ),
            AcpiError::NoMadt => write!(f, "the ACPI root table lists no MADT"),
            AcpiError::NoMpTable => write!(f, "no MP table (_MP_) in the BIOS areas"),
        }
    }
}

/// The CPUs the MADT enables, in its order (the boot CPU among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Madt {
    /// The local APIC's physical MMIO base (xAPIC mode).
    pub lapic_base: u64,
    apic_ids: [u32; MAX_CPUS],
    len: usize,
    /// Enabled CPUs beyond [`MAX_CPUS`], left out.
    pub left_out: u32,
    /// CPUs the MADT lists as online capable but not enabled (flags bit 1 without bit 0, from
    /// MADT revision 5): hot-pluggable sockets, often absent. Not started, as Linux does not:
    /// each would cost the start timeout.
    pub online_capable: u32,
}

impl Madt {
    pub fn apic_ids(&self) -> &[u32] {
        &self.apic_ids[..self.len]
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

/// A valid RSDP at `at`: (revision, RSDT address, XSDT address if revision >= 2).
fn rsdp_at(read: ReadPhys<'_>, at: u64) -> Option<(u32, Option<u64>)> {
    let mut b = [0u8; 36];
    if !read(at, &mut b[..20]) || &b[..8] != b"RSD PTR " || sum(&b[..20]) != 0 {
        return None;
    }
    let rsdt = u32_at(&b, 16);
    if b[15] >= 2 && read(at, &mut b) && sum(&b) == 0 {
        let xsdt = u64_at(&b, 24);
        return Some((rsdt, (xsdt != 0).then_some(xsdt)));
    }
    Some((rsdt, None))
}

/// The areas the BIOS leaves its pointers in: the first KiB of the EBDA, the last KiB of base
/// memory, the BIOS ROM (0xE0000..0x100000).
fn bios_areas(read: ReadPhys<'_>) -> [(u64, u64); 3] {
    let mut seg = [0u8; 2];
    let ebda = if read(0x40e, &mut seg) {
        u64::from(u16::from_le_bytes(seg)) << 4
    } else {
        0
    };
    [(ebda, ebda + 1024), (0x9fc00, 0xa0000), (0xe0000, 0x100000)]
}

impl Madt {
    fn push(&mut self, id: u32) {
        if self.apic_ids().contains(&id) {
            return;
        }
        if self.len < MAX_CPUS {
            self.apic_ids[self.len] = id;
            self.len += 1;
        } else {
            self.left_out += 1;
        }
    }
}

/// The CPUs of Intel's MultiProcessor Specification table (firmware without ACPI): the
/// floating pointer "_MP_" in the BIOS areas, its configuration table "PCMP", each enabled
/// processor entry; a default configuration (no table) means two CPUs, APIC IDs 0 and 1.
/// Firmware lists one entry per package (SeaBIOS does): the other logical processors of a
/// package follow its APIC ID, `per_package` in all (CPUID.1:EBX[23:16] where CPUID.1:EDX.HTT,
/// else 1): CPUID fills in what the table leaves out.
pub fn mp_table(read: ReadPhys<'_>, per_package: u32) -> Result<Madt, AcpiError> {
    let mut fp = [0u8; 16];
    let found = bios_areas(read)
        .into_iter()
        .filter(|(s, _)| *s != 0)
        .find_map(|(start, end)| {
            (start..end.saturating_sub(15))
                .step_by(16)
                .find(|&at| read(at, &mut fp) && &fp[..4] == b"_MP_" && sum(&fp) == 0)
        });
    found.ok_or(AcpiError::NoMpTable)?; // `fp` holds the pointer found
    let mut out = Madt {
        lapic_base: 0xfee0_0000,
        apic_ids: [0; MAX_CPUS],
        len: 0,
        left_out: 0,
        online_capable: 0,
    };
    if fp[11] != 0 {
        out.push(0);
        out.push(1);
        return Ok(out);
    }
    let table = u64::from(u32_at(&fp, 4));
    let bad = AcpiError::BadTable {
        signature: *b"PCMP",
        at: table,
    };
    let mut h = [0u8; 44];
    if !read(table, &mut h) || &h[..4] != b"PCMP" {
        return Err(bad);
    }
    let len = usize::from(u16::from_le_bytes([h[4], h[5]]));
    let mut buf = [0u8; 4096];
    if !(44..=buf.len()).contains(&len) || !read(table, &mut buf[..len]) || sum(&buf[..len]) != 0 {
        return Err(bad);
    }
    out.lapic_base = u64::from(u32_at(&buf, 36));
    let mut i = 44;
    while i < len {
        let size = match buf[i] {
            0 => 20,
            1..=4 => 8,
            _ => return Err(bad),
        };
        if i + size > len {
            return Err(bad);
        }
        if buf[i] == 0 && buf[i + 3] & 1 != 0 {
            let first = u32::from(buf[i + 1]);
            for id in first..first.saturating_add(per_package.max(1)) {
                out.push(id);
            }
        }
        i += size;
    }
    Ok(out)
}

/// The RSDP: at `given` when it is valid there, else the first valid one in the first KiB of
/// the EBDA or in 0xE0000..0x100000 (16-byte steps).
pub fn find_rsdp(read: ReadPhys<'_>, given: Option<u64>) -> Result<u64, AcpiError> {
    if let Some(at) = given.filter(|&at| rsdp_at(read, at).is_some()) {
        return Ok(at);
    }
    for (start, end) in bios_areas(read).into_iter().filter(|(s, _)| *s != 0) {
        let mut at = start;
        while at + 20 <= end {
            if rsdp_at(read, at).is_some() {
                return Ok(at);
            }
            at += 16;
        }
    }
    Err(AcpiError::NoRsdp)
}

/// Reads a whole table (header length, at most `buf.len()`) with its checksum checked.
fn table<'b>(read: ReadPhys<'_>, at: u64, buf: &'b mut [u8]) -> Result<&'b [u8], [u8; 4]> {
    let mut h = [0u8; 36];
    if !read(at, &mut h) {
        return Err(*b"????");
    }
    let sig = [h[0], h[1], h[2], h[3]];
    let len = u32_at(&h, 4) as usize;
    if len < 36 || len > buf.len() || !read(at, &mut buf[..len]) || sum(&buf[..len]) != 0 {
        return Err(sig);
    }
    Ok(&buf[..len])
}

/// The CPUs of the MADT the RSDP at `rsdp` leads to.
pub fn madt(read: ReadPhys<'_>, rsdp: u64) -> Result<Madt, AcpiError> {
    let bad = |signature, at| AcpiError::BadTable { signature, at };
    let (rsdt, xsdt) = rsdp_at(read, rsdp).ok_or(bad(*b"RSD ", rsdp))?;
    let (root, width) = match xsdt {
        Some(x) => (x, 8),
        None => (u64::from(rsdt), 4),
    };
    let mut rbuf = [0u8; 1024];
    let r = table(read, root, &mut rbuf).map_err(|s| bad(s, root))?;
    let mut found = None;
    let mut at = 36;
    while at + width <= r.len() {
        let entry = if width == 8 {
            u64_at(r, at)
        } else {
            u64::from(u32_at(r, at))
        };
        let mut sig = [0u8; 4];
        if read(entry, &mut sig) && &sig == b"APIC" {
            found = Some(entry);
            break;
        }
        at += width;
    }
    let at = found.ok_or(AcpiError::NoMadt)?;
    let mut mbuf = [0u8; 4096];
    let m = table(read, at, &mut mbuf).map_err(|s| bad(s, at))?;
    if m.len() < 44 {
        return Err(bad(*b"APIC", at));
    }
    let revision = m[8];
    let mut out = Madt {
        lapic_base: u64::from(u32_at(m, 36)),
        apic_ids: [0; MAX_CPUS],
        len: 0,
        left_out: 0,
        online_capable: 0,
    };
    let mut i = 44;
    while i + 2 <= m.len() {
        let (kind, len) = (m[i], m[i + 1] as usize);
        if len < 2 || i + len > m.len() {
            return Err(bad(*b"APIC", at));
        }
        // Enabled (bit 0): a CPU to start. Online capable (bit 1, defined from MADT revision
        // 5; reserved before): one that may be plugged in later, not started.
        let cpu = match kind {
            0 if len >= 8 => Some((u32::from(m[i + 3]), u32_at(m, i + 4))),
            9 if len >= 16 => Some((u32_at(m, i + 4), u32_at(m, i + 8))),
            5 if len >= 12 => {
                out.lapic_base = u64_at(m, i + 4);
                None
            }
            _ => None,
        };
        match cpu {
            Some((id, flags)) if flags & 1 != 0 => out.push(id),
            Some((_, flags)) if flags & 2 != 0 && revision >= 5 => out.online_capable += 1,
            _ => {}
        }
        i += len;
    }
    Ok(out)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    /// Physical memory made of byte blocks at addresses.
    struct Mem(Vec<(u64, Vec<u8>)>);

    impl Mem {
        fn read(&self, at: u64, buf: &mut [u8]) -> bool {
            self.0.iter().any(|(base, bytes)| {
                let off = at.wrapping_sub(*base) as usize;
                at >= *base && off + buf.len() <= bytes.len() && {
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    true
                }
            })
        }
    }

    fn fix(mut b: Vec<u8>, sum_at: usize, range: core::ops::Range<usize>) -> Vec<u8> {
        b[sum_at] = 0;
        b[sum_at] = 0u8.wrapping_sub(sum(&b[range]));
        b
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = Vec::from(*sig);
        b.extend(((36 + body.len()) as u32).to_le_bytes());
        b.extend([0u8; 28]);
        b.extend(body);
        let n = b.len();
        fix(b, 9, 0..n)
    }

    fn rsdp(rsdt: u32, xsdt: Option<u64>) -> Vec<u8> {
        let mut b = Vec::from(*b"RSD PTR ");
        b.push(0);
        b.extend(*b"BOCHS ");
        b.push(if xsdt.is_some() { 2 } else { 0 });
        b.extend(rsdt.to_le_bytes());
        b.extend(36u32.to_le_bytes());
        b.extend(xsdt.unwrap_or(0).to_le_bytes());
        b.extend([0u8; 4]);
        let b = fix(b, 8, 0..20);
        if xsdt.is_some() {
            fix(b, 32, 0..36)
        } else {
            b
        }
    }

    fn madt_body(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::from(0xfee0_0000u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        for e in entries {
            b.extend(e);
        }
        b
    }

    fn lapic(id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![0, 8, id, id];
        e.extend(flags.to_le_bytes());
        e
    }

    fn x2apic(id: u32, flags: u32) -> Vec<u8> {
        let mut e = vec![9, 16, 0, 0];
        e.extend(id.to_le_bytes());
        e.extend(flags.to_le_bytes());
        e.extend(0u32.to_le_bytes());
        e
    }

    fn machine(entries: &[Vec<u8>], with_xsdt: bool) -> Mem {
        machine_rev(entries, with_xsdt, 5)
    }

    /// A machine whose MADT has header revision `revision`.
    fn machine_rev(entries: &[Vec<u8>], with_xsdt: bool, revision: u8) -> Mem {
        let mut madt = sdt(b"APIC", &madt_body(entries));
        madt[8] = revision;
        let n = madt.len();
        let madt = fix(madt, 9, 0..n);
        let facp = sdt(b"FACP", &[0; 8]);
        let rsdt = sdt(
            b"RSDT",
            &[0x7000u32.to_le_bytes(), 0x8000u32.to_le_bytes()].concat(),
        );
        let xsdt = sdt(
            b"XSDT",
            &[0x7000u64.to_le_bytes(), 0x8000u64.to_le_bytes()].concat(),
        );
        let mut blocks = vec![
            (0x6000, rsdt),
            (0x7000, facp),
            (0x8000, madt),
            (0x9000, xsdt),
        ];
        blocks.push((0xf5a40, rsdp(0x6000, with_xsdt.then_some(0x9000))));
        blocks.push((0x400, vec![0; 0x20])); // BDA: no EBDA segment
        Mem(blocks)
    }

    #[test]
    fn finds_enabled_cpus_through_rsdt_or_xsdt_and_skips_disabled_ones() {
        let entries = [
            lapic(0, 1),
            lapic(1, 1),
            lapic(2, 0),
            lapic(3, 2),
            x2apic(300, 1),
        ];
        for xsdt in [false, true] {
            let mem = machine(&entries, xsdt);
            let read = |at, buf: &mut [u8]| mem.read(at, buf);
            let rsdp = find_rsdp(&read, None).unwrap();
            assert_eq!(rsdp, 0xf5a40);
            let m = madt(&read, rsdp).unwrap();
            // 3 is online capable, not enabled: counted apart, not started.
            assert_eq!(m.apic_ids(), [0, 1, 300], "xsdt {xsdt}");
            assert_eq!(
                (m.lapic_base, m.left_out, m.online_capable),
                (0xfee0_0000, 0, 1)
            );
            // A given address that holds no RSDP falls back to the scan.
            assert_eq!(find_rsdp(&read, Some(0x1234)), Ok(0xf5a40));
        }
    }

    #[test]
    fn online_capable_cpus_count_only_from_madt_revision_5_and_are_never_started() {
        // A server listing two absent sockets (x2APIC and xAPIC entries), flags 2; one CPU with
        // both bits (enabled wins); one with neither.
        let entries = [
            lapic(0, 1),
            lapic(1, 3),
            lapic(2, 2),
            x2apic(400, 2),
            lapic(5, 0),
        ];
        for (revision, want) in [(5u8, 2u32), (6, 2), (4, 0), (3, 0)] {
            let mem = machine_rev(&entries, true, revision);
            let read = |at, buf: &mut [u8]| mem.read(at, buf);
            let m = madt(&read, 0xf5a40).unwrap();
            assert_eq!(m.apic_ids(), [0, 1], "revision {revision}");
            assert_eq!(
                m.online_capable, want,
                "revision {revision}: bit 1 is reserved before 5"
            );
        }
    }

    #[test]
    fn too_many_cpus_are_counted_not_dropped_silently() {
        let entries: Vec<_> = (0..20u8).map(|i| lapic(i, 1)).collect();
        let mem = machine(&entries, false);
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        let m = madt(&read, 0xf5a40).unwrap();
        assert_eq!((m.apic_ids().len(), m.left_out), (MAX_CPUS, 4));
    }

    fn mp(entries: &[Vec<u8>], default_config: u8) -> Mem {
        let mut t = Vec::from(*b"PCMP");
        let len = 44 + entries.iter().map(|e| e.len()).sum::<usize>();
        t.extend((len as u16).to_le_bytes());
        t.extend([4, 0]); // revision, checksum
        t.extend([0u8; 26]); // OEM and product IDs, OEM table
        t.extend((entries.len() as u16).to_le_bytes());
        t.extend(0xfee0_0000u32.to_le_bytes());
        t.extend([0u8; 4]);
        for e in entries {
            t.extend(e);
        }
        let t = fix(t, 7, 0..len);
        let mut fp = Vec::from(*b"_MP_");
        fp.extend(0x9_0000u32.to_le_bytes());
        fp.extend([1, 4, 0, default_config, 0, 0, 0, 0]);
        let fp = fix(fp, 10, 0..16);
        Mem(vec![(0x400, vec![0; 0x20]), (0xf_5a50, fp), (0x9_0000, t)])
    }

    fn cpu_entry(id: u8, flags: u8) -> Vec<u8> {
        let mut e = vec![0, id, 0x14, flags];
        e.extend([0u8; 16]);
        e
    }

    #[test]
    fn without_acpi_the_mp_table_names_the_cpus() {
        let bus = vec![1, 0, b'I', b'S', b'A', b' ', b' ', b' '];
        let mem = mp(
            &[
                cpu_entry(0, 3),
                cpu_entry(1, 1),
                cpu_entry(2, 0),
                bus,
                cpu_entry(5, 1),
            ],
            0,
        );
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        let m = mp_table(&read, 1).unwrap();
        assert_eq!((m.apic_ids(), m.lapic_base), (&[0, 1, 5][..], 0xfee0_0000));
        // One entry per package of 4 logical CPUs (as SeaBIOS writes it): CPUID names the rest.
        let mem4 = mp(&[cpu_entry(0, 3), cpu_entry(4, 1)], 0);
        let read4 = |at, buf: &mut [u8]| mem4.read(at, buf);
        assert_eq!(
            mp_table(&read4, 4).unwrap().apic_ids(),
            [0, 1, 2, 3, 4, 5, 6, 7]
        );
        let mem = mp(&[], 5); // a default configuration: two CPUs, no table
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        assert_eq!(mp_table(&read, 1).unwrap().apic_ids(), [0, 1]);
        let mut mem = mp(&[cpu_entry(0, 3)], 0);
        mem.0[2].1[50] ^= 1; // the table's checksum breaks
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        assert!(
            matches!(mp_table(&read, 1), Err(AcpiError::BadTable { signature, .. }) if &signature == b"PCMP")
        );
        let none = Mem(vec![(0x400, vec![0; 0x20])]);
        let read = |at, buf: &mut [u8]| none.read(at, buf);
        assert_eq!(mp_table(&read, 1), Err(AcpiError::NoMpTable));
    }

    #[test]
    fn bad_checksums_and_missing_tables_are_named() {
        let mut mem = machine(&[lapic(0, 1)], false);
        mem.0[2].1[20] ^= 1; // corrupt the MADT
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        assert_eq!(
            madt(&read, 0xf5a40),
            Err(AcpiError::BadTable {
                signature: *b"APIC",
                at: 0x8000
            })
        );
        let empty = Mem(vec![(0x400, vec![0; 0x20])]);
        let read = |at, buf: &mut [u8]| empty.read(at, buf);
        assert_eq!(find_rsdp(&read, None), Err(AcpiError::NoRsdp));
        let mut mem = machine(&[lapic(0, 1)], false);
        mem.0[2].1[0] = b'X'; // no table signed APIC
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        assert_eq!(madt(&read, 0xf5a40), Err(AcpiError::NoMadt));
        let mem = machine(&[vec![0, 1]], false); // an entry shorter than its header
        let read = |at, buf: &mut [u8]| mem.read(at, buf);
        assert!(matches!(
            madt(&read, 0xf5a40),
            Err(AcpiError::BadTable { .. })
        ));
        assert!(AcpiError::NoMadt.to_string().contains("MADT"));
    }
}
