//! Each strategy's own benchmark (the flush alone, flush + refill of N pages after their
//! mappings changed, collateral damage to a set the change did not touch, and a check through
//! the MMU that the new frame is seen).

use super::space::{
    stamp, touch, touch_step, Size, Space, OTHER, OTHER_PAGES, SIZES, SIZES_2M, WS,
};
use super::strategy::{How, Strategy};
use crate::suites::Ctx;
use crate::timing::Summary;
use x86_64::registers::control::{Cr4, Cr4Flags};

/// The benchmark of one strategy: the flush alone, flush + refill of every size, collateral
/// damage, and the check through the MMU.
pub(super) fn strategy(ctx: &mut Ctx<'_>, s: Strategy) {
    let global = s.global;
    if global {
        // Global pages need CR4.PGE, which the bench kernel's boot leaves clear (and toggling a
        // clear PGE changes nothing: no flush at all).
        let flags = Cr4::read();
        // SAFETY: ring 0 (precondition); restored below, which flushes the global entries.
        unsafe { Cr4::write(flags | Cr4Flags::PAGE_GLOBAL) };
        strategy_in(ctx, s, global);
        // SAFETY: as above.
        unsafe { Cr4::write(flags) };
    } else {
        strategy_in(ctx, s, global);
    }
}

fn strategy_in(ctx: &mut Ctx<'_>, s: Strategy, global: bool) {
    let Some(mut space) = Space::open(ctx, global) else {
        return;
    };
    // 1. The flush alone (the working set warm in the TLB before each).
    ctx.measure(
        s.name,
        "op",
        1,
        crate::params! { "measures": "flush alone" },
        &mut (),
        |_| {
            touch(WS, 64);
        },
        |_| s.how.flush(Size::K4, 1),
    );
    // 2. Flush + refill of N pages after their mappings changed (4 KiB; 2 MiB, not global).
    for n in SIZES {
        refill(ctx, &mut space, s, Size::K4, n, global);
    }
    if !global {
        for n in SIZES_2M {
            refill(ctx, &mut space, s, Size::M2, n, false);
        }
    }
    // 3. Collateral: the set the change did not touch, timed after the flush.
    ctx.measure(
        s.collateral,
        "page",
        OTHER_PAGES,
        crate::params! { "measures": "collateral", "changed_pages": 1u64, "other_pages": OTHER_PAGES },
        &mut space,
        |sp| {
            touch(OTHER, OTHER_PAGES);
            touch(WS, 1);
            sp.remap(1, global);
            s.how.flush(Size::K4, 1);
        },
        |_| {
            touch(OTHER, OTHER_PAGES);
        },
    );
    // 4. Through the MMU: after remap + flush the new frame is seen.
    let (a, b) = (space.current(), if space.on_b { space.a } else { space.b });
    stamp(a, 1, 0xa1);
    stamp(b, 1, 0xb2);
    let before = touch(WS, 1) as u8;
    let remapped = space.remap(1, global);
    s.how.flush(Size::K4, 1);
    let after = touch(WS, 1) as u8;
    space.leave();
    ctx.check(
        "new_frame_seen_after_flush",
        remapped && before == 0xa1 && after == 0xb2,
        format_args!(
            "{}{}: read {before:#x} before the remap, {after:#x} after it and the flush (want 0xb2)",
            s.name,
            if global { " (global pages)" } else { "" }
        ),
    );
}

/// One flush + refill measurement: ticks per page of (flush, touch all) after the N pages
/// were touched (warm) and remapped (untimed).
fn refill(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    s: Strategy,
    size: Size,
    n: u64,
    global: bool,
) -> Option<Summary> {
    round(ctx, space, s.refill_name(size), s.how, size, n, global)
}

/// One flush + refill measurement of `how`, named `name`.
#[allow(clippy::too_many_arguments)]
pub(super) fn round(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    name: &'static str,
    how: How,
    size: Size,
    n: u64,
    global: bool,
) -> Option<Summary> {
    let (base, step) = (size.base(), size.step());
    ctx.measure(
        name,
        "page",
        n,
        crate::params! { "measures": "flush + refill", "pages": n, "page_size": size.name(), "global": global },
        space,
        |sp| {
            touch_step(base, n, step);
            sp.remap_at(size, n, global);
        },
        |_| {
            how.flush(size, n);
            touch_step(base, n, step);
        },
    )
}
