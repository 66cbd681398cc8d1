//! INVLPGB + TLBSYNC (AMD Zen 3+): the broadcast flush, ranged and full, timed, swept against
//! each other and checked through the MMU. The crate does not offer it yet, so its flushes
//! are the lab's own ([`How::Lab`]).

use super::crossover::{state_crossover, sweep};
use super::space::{stamp, touch, Size, Space, SIZES, WS};
use super::strategy::{How, Pair};
use crate::suites::Ctx;
use x86_64::instructions::tlb;
use x86_64::VirtAddr;

/// INVLPGB + TLBSYNC, ranged and full (AMD Zen 3+; written from AMD's manual, behind its CPUID
/// bit: it runs on no CPU this lab has been run on so far).
pub(super) fn invlpgb(ctx: &mut Ctx<'_>) {
    let Some(b) = tlb::Invlpgb::new() else {
        return;
    };
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    use x86_64::structures::paging::{Page, Size4KiB};
    let first = Page::<Size4KiB>::containing_address(VirtAddr::new(WS));
    for (name, pages) in [("invlpgb-ranged", 8u64), ("invlpgb-full", 0)] {
        ctx.measure(
            name,
            "op",
            1,
            crate::params! { "measures": "broadcast flush + tlbsync", "pages": pages },
            &mut (),
            |_| {
                touch(WS, 64);
            },
            |_| {
                if pages > 0 {
                    b.build().pages(Page::range(first, first + pages)).flush();
                } else {
                    b.build().include_global().flush();
                }
                b.tlbsync();
            },
        );
    }
    // Ranged against full broadcast, flush + refill (the crossover AMD's manual leaves open).
    let pair = Pair {
        per: (
            "invlpgb-ranged-refill",
            How::Lab(|size, n| {
                if let Some(b) = tlb::Invlpgb::new() {
                    let first = Page::<Size4KiB>::containing_address(VirtAddr::new(size.base()));
                    b.build().pages(Page::range(first, first + n)).flush();
                    b.tlbsync();
                }
            }),
        ),
        full: (
            "invlpgb-full-refill",
            How::Lab(|_, _| {
                if let Some(b) = tlb::Invlpgb::new() {
                    b.build().flush();
                    b.tlbsync();
                }
            }),
        ),
    };
    if let Some(costs) = sweep(ctx, &mut space, Size::K4, &SIZES, pair) {
        state_crossover(ctx, &mut space, Size::K4, &costs, pair);
    }
    let bframe = if space.on_b { space.a } else { space.b };
    stamp(bframe, 1, 0xe7);
    touch(WS, 1);
    let ok = space.remap(1, false);
    b.build().pages(Page::range(first, first + 1)).flush();
    b.tlbsync();
    let got = touch(WS, 1) as u8;
    space.leave();
    ctx.check(
        "invlpgb_new_frame_seen",
        ok && got == 0xe7,
        format_args!("after a remap, INVLPGB and TLBSYNC: read {got:#x}, want 0xe7"),
    );
}
