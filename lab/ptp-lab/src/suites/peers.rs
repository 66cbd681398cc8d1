//! Peers from crates.io, run through the same definitions as ours (see [`super::alloc`]):
//! `bitmap-allocator` (BitAlloc4K up to 4096 pages, BitAlloc64K above) and
//! `buddy_system_allocator`'s FrameAllocator. They allocate on a heap, so they run on the host
//! only; in the kernel these entries are skip records that say so.

use super::base::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::{reason, Reason};

pub const BITMAP_ALLOCATOR: &str = "bitmap-allocator";
/// bitmap-allocator's own call for many pages at once (`alloc_contiguous`).
pub const BITMAP_CONTIGUOUS: &str = "bitmap-allocator-contiguous";
pub const BUDDY: &str = "buddy_system_allocator";
pub const WHY: &str =
    "peers bitmap-allocator and buddy_system_allocator allocate on a heap: host only";

pub const BITMAP_ALLOC_SEQ: Bench = Bench {
    name: "bitmap_alloc_seq",
    suite: Suite::Alloc,
    precondition: needs_heap,
    run: imp::fill,
};
pub const BITMAP_CHURN_50: Bench = Bench {
    name: "bitmap_alloc_50pct_random",
    suite: Suite::Alloc,
    precondition: needs_heap,
    run: imp::churn_50,
};
pub const BITMAP_CHURN_95: Bench = Bench {
    name: "bitmap_alloc_95pct_full",
    suite: Suite::Alloc,
    precondition: needs_heap,
    run: imp::churn_95,
};
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
    // Never run: the precondition refuses without std.
    pub fn fill(_: &mut Ctx<'_>) {}
    pub fn churn_50(_: &mut Ctx<'_>) {}
    pub fn churn_95(_: &mut Ctx<'_>) {}
    pub fn free_all(_: &mut Ctx<'_>) {}
    pub fn init(_: &mut Ctx<'_>) {}
}

#[cfg(feature = "std")]
mod imp {
    use super::super::alloc::{self, Contender};
    use super::{Ctx, BITMAP_ALLOCATOR, BUDDY};
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

    pub fn fill(ctx: &mut Ctx<'_>) {
        both!(ctx, fill, "peer_fills_every_page");
        if ctx.pages() <= 4096 {
            alloc::fill_batch::<Bits4K>(ctx, "peer_batches_fill_every_page");
        } else {
            alloc::fill_batch::<Bits64K>(ctx, "peer_batches_fill_every_page");
        }
    }
    pub fn churn_50(ctx: &mut Ctx<'_>) {
        both!(ctx, churn, 50);
    }
    pub fn churn_95(ctx: &mut Ctx<'_>) {
        both!(ctx, churn, 95);
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
