//! Tagged address spaces: CR3 switches between PCIDs with and without flush, and INVPCID's
//! four types, each timed and checked through the MMU; type 0 per page against type 1, the
//! crate's `PageFlush::InvpcidAddress` against `FullFlush::InvpcidContext`.

use super::crossover::{state_crossover, sweep};
use super::space::{stamp, touch, Size, Space, SIZES, WS};
use super::strategy::{How, Pair};
use crate::suites::Ctx;
use vystem_ptp::flush::{FullFlush, PageFlush};
use x86_64::instructions::tlb::Pcid;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};

/// Run `f` with CR4.PCIDE set (the current CR3 has PCID 0, as PCIDE requires), cleared after.
fn with_pcide(f: impl FnOnce()) {
    let flags = Cr4::read();
    // SAFETY: ring 0; CR3's PCID bits are 0 here (boot tables, no flags), as setting PCIDE needs.
    unsafe { Cr4::write(flags | Cr4Flags::PCID) };
    f();
    // SAFETY: clearing PCIDE needs CR3's PCID = 0: `f` loads the old CR3 (PCID 0) before it ends.
    unsafe { Cr4::write(flags) };
}

/// The two tagged contexts the PCID checks switch between.
const PCID_ONE: Pcid = match Pcid::new(1) {
    Ok(p) => p,
    Err(_) => panic!("PCID 1 is valid"),
};
const PCID_TWO: Pcid = match Pcid::new(2) {
    Ok(p) => p,
    Err(_) => panic!("PCID 2 is valid"),
};

fn pcid(n: u16) -> Pcid {
    if n == 2 {
        PCID_TWO
    } else {
        PCID_ONE
    }
}

/// CR3 writes that switch between two tagged address spaces, with the no-flush bit and
/// without; and the check that a switch without flush keeps the other's translations usable.
pub(super) fn pcid_switch(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let frame = space.ptp.cr3_frame();
    let old = space.old;
    // Leave the test space on PCID 0 first: PCIDE may only be set with PCID 0 in CR3.
    // SAFETY: the tables we were running on.
    unsafe { Cr3::write(old.0, old.1) };
    let mut r = (0u8, 0u8, false, false, 0u8);
    with_pcide(|| {
        // SAFETY (each CR3 write): the test PTP maps everything the running code touches.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        stamp(space.current(), 1, 0xc3);
        r.0 = touch(WS, 1) as u8;
        let mut st = ();
        ctx.measure(
            "pcid-switch-no-flush",
            "op",
            2,
            crate::params! { "measures": "two CR3 writes, PCID 1 -> 2 -> 1, no-flush bit" },
            &mut st,
            |_| {},
            |_| unsafe {
                Cr3::write_pcid_no_flush(frame, pcid(2));
                Cr3::write_pcid_no_flush(frame, pcid(1));
            },
        );
        ctx.measure(
            "pcid-switch-flush",
            "op",
            2,
            crate::params! { "measures": "two CR3 writes, PCID 1 -> 2 -> 1, flushing" },
            &mut st,
            |_| {},
            |_| unsafe {
                Cr3::write_pcid(frame, pcid(2));
                Cr3::write_pcid(frame, pcid(1));
            },
        );
        // Context 1 warm, a switch to 2 and back without flush: 1's translation still works.
        touch(WS, 1);
        unsafe {
            Cr3::write_pcid_no_flush(frame, pcid(2));
            Cr3::write_pcid_no_flush(frame, pcid(1));
        }
        r.1 = touch(WS, 1) as u8;
        r.2 = true;
        // With flush: remap in context 1, a flushing CR3 write of PCID 1: the new frame is read.
        stamp(if space.on_b { space.a } else { space.b }, 1, 0xc4);
        touch(WS, 1);
        r.3 = space.remap(1, false);
        // SAFETY: as above; the flushing write drops PCID 1's translations.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        r.4 = touch(WS, 1) as u8;
        // SAFETY: back to the old tables with PCID 0 before PCIDE is cleared.
        unsafe { Cr3::write(old.0, old.1) };
    });
    // SAFETY: reload the test space (PCID 0) to leave it the usual way.
    unsafe { Cr3::write(frame, old.1) };
    space.leave();
    ctx.check(
        "pcid_switch_with_flush_new_frame_seen",
        r.3 && r.4 == 0xc4,
        format_args!(
            "after a remap and a flushing CR3 write of PCID 1: read {:#x}, want 0xc4",
            r.4
        ),
    );
    ctx.check(
        "pcid_switch_keeps_other_context_usable",
        r.2 && r.0 == 0xc3 && r.1 == 0xc3,
        format_args!(
            "read {:#x} in PCID 1, {:#x} after 1 -> 2 -> 1 without flush (want 0xc3)",
            r.0, r.1
        ),
    );
}

/// INVPCID types 0 (one address), 1 (one context), 2 (all, global included), 3 (all but
/// global): each alone, and each checked through the MMU after a remap.
pub(super) fn invpcid(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let frame = space.ptp.cr3_frame();
    let old = space.old;
    // SAFETY: the tables we were running on (PCID 0, as setting PCIDE needs).
    unsafe { Cr3::write(old.0, old.1) };
    let mut seen = [(0u8, false); 4];
    with_pcide(|| {
        // SAFETY: the test PTP maps everything the running code touches.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        // SAFETY (each): CPUID reported INVPCID (precondition), PCIDE is set, PCID 1 < 4096.
        let types = unsafe {
            [
                (
                    "invpcid-0-address",
                    How::Page(PageFlush::invpcid_address(1)),
                ),
                (
                    "invpcid-1-context",
                    How::Full(FullFlush::invpcid_context(1)),
                ),
                ("invpcid-2-all", How::Full(FullFlush::invpcid_all())),
                (
                    "invpcid-3-all-but-global",
                    How::Full(FullFlush::invpcid_all_but_global()),
                ),
            ]
        };
        for (t, (name, how)) in types.into_iter().enumerate() {
            ctx.measure(
                name,
                "op",
                1,
                crate::params! { "measures": "flush alone", "type": t },
                &mut (),
                |_| {
                    touch(WS, 64);
                },
                |_| how.flush(Size::K4, 1),
            );
            // Through the MMU: remap, this type of INVPCID, read the new frame.
            let b = if space.on_b { space.a } else { space.b };
            stamp(b, 1, 0xd0 + t as u8);
            touch(WS, 1);
            let ok = space.remap(1, false);
            how.flush(Size::K4, 1);
            seen[t] = (touch(WS, 1) as u8, ok);
        }
        // INVPCID type 0 per page against type 1 (the whole context), flush + refill.
        let pair = Pair {
            per: ("invpcid-0-refill", types[0].1),
            full: ("invpcid-1-refill", types[1].1),
        };
        if let Some(costs) = sweep(ctx, &mut space, Size::K4, &SIZES, pair) {
            state_crossover(ctx, &mut space, Size::K4, &costs, pair);
        }
        // SAFETY: back to the old tables with PCID 0 before PCIDE is cleared.
        unsafe { Cr3::write(old.0, old.1) };
    });
    // SAFETY: reload the test space (PCID 0) to leave it the usual way.
    unsafe { Cr3::write(frame, old.1) };
    space.leave();
    for (t, (got, ok)) in seen.into_iter().enumerate() {
        let mut name = crate::fixedstr::FixedStr::<48>::new();
        let _ =
            core::fmt::Write::write_fmt(&mut name, format_args!("invpcid_type_{t}_new_frame_seen"));
        ctx.check(
            name.as_str(),
            ok && got == 0xd0 + t as u8,
            format_args!(
                "after a remap and INVPCID type {t}: read {got:#x}, want {:#x}",
                0xd0 + t as u8
            ),
        );
    }
}
