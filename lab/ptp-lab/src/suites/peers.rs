//! Peers from crates.io, run through the same definitions as ours (see [`super::contender`]):
//! `bitmap-allocator` (BitAlloc4K up to 4096 pages, BitAlloc64K above) and
//! `buddy_system_allocator`'s FrameAllocator. They allocate on a heap, so they run on the host
//! only; in the kernel these entries are skip records that say so.

use super::base::{Bench, Ctx, Ref};
use crate::config::Suite;
use crate::platform::{reason, Reason};
use crate::timing::Entry;

pub const BITMAP_ALLOCATOR: &str = "bitmap-allocator";
/// bitmap-allocator's own call for many pages at once (`alloc_contiguous`).
pub const BITMAP_CONTIGUOUS: &str = "bitmap-allocator-contiguous";
pub const BUDDY: &str = "buddy_system_allocator";
pub const WHY: &str =
    "peers bitmap-allocator and buddy_system_allocator allocate on a heap: host only";

pub const BITMAP_FREE: Bench = Bench {
    name: "bitmap_free",
    suite: Suite::Alloc,
    precondition: needs_heap,
    run: imp::free_all,
};
pub const BITMAP_INIT: Bench = Bench {
    name: "bitmap_init_from_counter",
    suite: Suite::Alloc,
    precondition: needs_heap,
    run: imp::init,
};

/// The references of the fill's and the churn's paired ratios.
const FILL_REFS: &[Ref] = &[Ref::Peer(BITMAP_ALLOCATOR), Ref::Peer(BITMAP_CONTIGUOUS)];
const CHURN_REFS: &[Ref] = &[Ref::Peer(BITMAP_ALLOCATOR)];

/// Time our fill's contenders (one page a call, many at once) with the peers', in rounds,
/// where the peers run; elsewhere ours alone, and a skip record for the peers.
pub(super) fn fill(ctx: &mut Ctx<'_>, mut ours: [Entry<'_, '_>; 2]) {
    match needs_heap(ctx) {
        Ok(()) => imp::fill(ctx, ours),
        Err(why) => alone(ctx, &mut ours, FILL_REFS, why),
    }
}

/// Time our churn with the peers', in rounds, where the peers run (`params`: the churn's).
pub(super) fn churn(
    ctx: &mut Ctx<'_>,
    pct: u32,
    params: crate::json::Fields<'_>,
    ours: Entry<'_, '_>,
) {
    match needs_heap(ctx) {
        Ok(()) => imp::churn(ctx, pct, params, ours),
        Err(why) => alone(ctx, &mut [ours], CHURN_REFS, why),
    }
}

fn alone(ctx: &mut Ctx<'_>, ours: &mut [Entry<'_, '_>], refs: &[Ref], why: Reason) {
    ctx.measure_rounds(ours, refs);
    ctx.skip(why.as_str());
}

fn needs_heap(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    if cfg!(feature = "std") && ctx.platform.has_heap() {
        Ok(())
    } else {
        Err(reason(format_args!("{WHY}")))
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    use super::Ctx;
    use crate::timing::Entry;
    // Never run: the precondition refuses without std.
    pub fn fill(_: &mut Ctx<'_>, _: [Entry<'_, '_>; 2]) {}
    pub fn churn(_: &mut Ctx<'_>, _: u32, _: crate::json::Fields<'_>, _: Entry<'_, '_>) {}
    pub fn free_all(_: &mut Ctx<'_>) {}
    pub fn init(_: &mut Ctx<'_>) {}
}

#[cfg(feature = "std")]
mod imp {
    use super::super::contender::{self as alloc, Contender};
    use super::{Ctx, BITMAP_ALLOCATOR, BUDDY};
    use crate::timing::Entry;
    use bitmap_allocator::{BitAlloc, BitAlloc4K, BitAlloc64K};
    use buddy_system_allocator::FrameAllocator;
    use core::hint::black_box;
    use std::boxed::Box;

    /// bitmap-allocator's trees have fixed capacities: the smallest that holds the pool.
    macro_rules! bit_alloc {
        ($name:ident, $tree:ty) => {
            pub struct $name(Box<$tree>);
            impl Contender for $name {
                const NAME: &'static str = BITMAP_ALLOCATOR;
                fn fresh(pages: u32) -> Self {
                    let mut b = Box::<$tree>::default();
                    b.insert(1..pages as usize); // page 0 is the root, as in our pools
                    $name(b)
                }
                #[inline]
                fn alloc(&mut self) -> Option<u32> {
                    self.0.alloc().map(|p| p as u32)
                }
                #[inline]
                fn free(&mut self, page: u32) -> bool {
                    self.0.dealloc(page as usize)
                }
                const BATCH: Option<&'static str> = Some(super::BITMAP_CONTIGUOUS);
                /// Its own call for many pages: a contiguous block.
                #[inline]
                fn alloc_many(&mut self, out: &mut [u32]) -> bool {
                    let Some(start) = self.0.alloc_contiguous(None, out.len(), 0) else {
                        return false;
                    };
                    for (i, slot) in out.iter_mut().enumerate() {
                        *slot = (start + i) as u32;
                    }
                    true
                }
            }
        };
    }
    bit_alloc!(Bits4K, BitAlloc4K);
    bit_alloc!(Bits64K, BitAlloc64K);

    pub struct Buddy(FrameAllocator);
    impl Contender for Buddy {
        const NAME: &'static str = BUDDY;
        fn fresh(pages: u32) -> Self {
            let mut b = FrameAllocator::new();
            b.add_frame(1, pages as usize);
            Buddy(b)
        }
        #[inline]
        fn alloc(&mut self) -> Option<u32> {
            self.0.alloc(1).map(|p| p as u32)
        }
        #[inline]
        fn free(&mut self, page: u32) -> bool {
            self.0.dealloc(page as usize, 1);
            true
        }
    }

    /// Run `$f::<bitmap-allocator>` then `$f::<buddy>` for this pool size.
    macro_rules! both {
        ($ctx:ident, $f:ident $(, $arg:expr)*) => {{
            if $ctx.pages() <= 4096 {
                alloc::$f::<Bits4K>($ctx $(, $arg)*);
            } else {
                alloc::$f::<Bits64K>($ctx $(, $arg)*);
            }
            alloc::$f::<Buddy>($ctx $(, $arg)*);
        }};
    }

    pub fn fill(ctx: &mut Ctx<'_>, ours: [Entry<'_, '_>; 2]) {
        if ctx.pages() <= 4096 {
            fill_with::<Bits4K>(ctx, ours)
        } else {
            fill_with::<Bits64K>(ctx, ours)
        }
    }

    fn fill_with<B: Contender>(ctx: &mut Ctx<'_>, [a, b]: [Entry<'_, '_>; 2]) {
        let n = ctx.pages();
        let (mut one, mut buddy) = (alloc::Fill::<B>::new(n), alloc::Fill::<Buddy>::new(n));
        let mut many = alloc::FillBatch::<B>::new(n);
        ctx.measure_rounds(
            &mut [
                a.shorter(),
                b.shorter(),
                one.entry(ctx),
                buddy.entry(ctx),
                many.entry(ctx),
            ],
            super::FILL_REFS,
        );
        one.check(ctx, "peer_fills_every_page");
        buddy.check(ctx, "peer_fills_every_page");
        many.check(ctx, "peer_batches_fill_every_page");
    }

    pub fn churn(
        ctx: &mut Ctx<'_>,
        pct: u32,
        params: crate::json::Fields<'_>,
        ours: Entry<'_, '_>,
    ) {
        if ctx.pages() <= 4096 {
            churn_with::<Bits4K>(ctx, pct, params, ours)
        } else {
            churn_with::<Bits64K>(ctx, pct, params, ours)
        }
    }

    fn churn_with<B: Contender>(
        ctx: &mut Ctx<'_>,
        pct: u32,
        params: crate::json::Fields<'_>,
        ours: Entry<'_, '_>,
    ) {
        let mut bits = alloc::Churn::<B>::new(ctx, pct);
        let mut buddy = alloc::Churn::<Buddy>::new(ctx, pct);
        ctx.measure_rounds(
            &mut [
                ours.shorter(),
                bits.entry(ctx, params),
                buddy.entry(ctx, params),
            ],
            super::CHURN_REFS,
        );
        bits.check(ctx);
        buddy.check(ctx);
    }

    pub fn free_all(ctx: &mut Ctx<'_>) {
        both!(ctx, free_all);
    }

    /// The peer's hand-over from a counter: a fresh tree with the free half inserted.
    pub fn init(ctx: &mut Ctx<'_>) {
        let n = ctx.pages();
        let mut tree: Option<Box<BitAlloc64K>> = None;
        ctx.measure(
            BITMAP_ALLOCATOR,
            "op",
            1,
            crate::params! { "counter": n / 2 },
            &mut tree,
            |tree| *tree = None, // the previous tree is freed outside the timed region
            |tree| {
                let mut a = Box::<BitAlloc64K>::default();
                a.insert(black_box(n as usize / 2)..black_box(n as usize));
                *tree = Some(black_box(a));
            },
        );
        let first = tree.and_then(|mut t| t.alloc());
        ctx.check(
            "peer_init_from_counter_marks_prefix",
            first == Some(n as usize / 2),
            format_args!("first page handed out {first:?}, want {}", n / 2),
        );
    }
}
