//! `alloc`: which page allocator for which job, per pool size, per operation. Each benchmark is
//! one generic definition that every contender runs through: ours (bump, bitmap), the floor (a
//! bare counter), and on the host the peers of [`super::peers`].

use super::base::{always, Bench, Ctx, Ref};
use super::contender::{free_all, BareCounter, Churn, Contender, Fill, FillBatch};
use super::peers;
use crate::config::Suite;
use core::hint::black_box;
use vystem_ptp::{BitmapAllocator, BumpAllocator, PageAllocator};

pub const BUMP_ALLOC: Bench = Bench {
    name: "bump_alloc",
    suite: Suite::Alloc,
    precondition: always,
    run: bump_alloc,
};
pub const BITMAP_ALLOC_SEQ: Bench = Bench {
    name: "bitmap_alloc_seq",
    suite: Suite::Alloc,
    precondition: always,
    run: bitmap_alloc_seq,
};
pub const BITMAP_CHURN_50: Bench = Bench {
    name: "bitmap_alloc_50pct_random",
    suite: Suite::Alloc,
    precondition: always,
    run: |ctx| bitmap_churn(ctx, 50),
};
pub const BITMAP_CHURN_95: Bench = Bench {
    name: "bitmap_alloc_95pct_full",
    suite: Suite::Alloc,
    precondition: always,
    run: |ctx| bitmap_churn(ctx, 95),
};
pub const BITMAP_FREE: Bench = Bench {
    name: "bitmap_free",
    suite: Suite::Alloc,
    precondition: always,
    run: free_all::<BitmapAllocator>,
};
pub const BITMAP_INIT: Bench = Bench {
    name: "bitmap_init_from_counter",
    suite: Suite::Alloc,
    precondition: always,
    run: bitmap_init,
};

fn bump_alloc(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let (mut bump, mut bare) = (Fill::<BumpAllocator>::new(n), Fill::<BareCounter>::new(n));
    ctx.measure_rounds(
        &mut [bump.entry(ctx), bare.entry(ctx)],
        &[Ref::Limit(BareCounter::NAME, &[BumpAllocator::NAME])],
    );
    bump.check(ctx, "bump_exhausts_at_capacity");
    bare.check(ctx, "bare_counter_stops_at_capacity");
}

/// The fill, ours one page a call and many at once, with the peers where they run.
fn bitmap_alloc_seq(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut one = Fill::<BitmapAllocator>::new(n);
    let mut many = FillBatch::<BitmapAllocator>::new(n);
    peers::fill(ctx, [one.entry(ctx), many.entry(ctx)]);
    one.check(ctx, "bitmap_fills_every_page");
    many.check(ctx, "bitmap_batches_fill_every_page");
}

/// The churn at `fill_pct` %, ours with the peers where they run.
fn bitmap_churn(ctx: &mut Ctx<'_>, fill_pct: u32) {
    let mut ours = Churn::<BitmapAllocator>::new(ctx, fill_pct);
    let (pct, pairs) = ours.shape();
    let params = crate::params! { "fill_pct": pct, "pairs": pairs };
    peers::churn(ctx, fill_pct, params, ours.entry(ctx, params));
    ours.check(ctx);
}

/// The bootloader-to-kernel hand-over: a bitmap from the bump counter (half the pool used),
/// in place, as the kernel re-initialises its bitmap (only the pool's N/64 words).
fn bitmap_init(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut a = BitmapAllocator::new(64);
    let params = crate::params! { "counter": n / 2 };
    ctx.measure(
        BitmapAllocator::NAME,
        "op",
        1,
        params,
        &mut a,
        |_| {},
        |a| {
            a.reset_from_counter(black_box(n), black_box(n / 2));
        },
    );
    let ok = a.used() == n / 2 && a.is_allocated(n / 2 - 1) && !a.is_allocated(n / 2);
    ctx.check(
        "init_from_counter_marks_prefix",
        ok,
        format_args!("used {}", a.used()),
    );
}
