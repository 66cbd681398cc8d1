//! `alloc`: which page allocator for which job, per pool size, per operation. Each benchmark is
//! one generic definition that every contender runs through: ours (bump, bitmap), the floor (a
//! bare counter), and on the host the peers of [`super::peers`].

use super::base::{always, Bench, Ctx};
use crate::config::Suite;
use core::hint::black_box;
use vystem_ptp::{BitmapAllocator, BumpAllocator, PageAllocator};

/// Free+alloc pairs per churn sample.
const PAIRS: usize = 1024;
/// Bitmap words covering the largest pool (for the setup's own bookkeeping).
const WORDS: usize = vystem_ptp::pool::MAX_POOL_PAGES as usize / 64;

/// Our bitmap's batch call, a contender of its own in the fill.
pub const BITMAP_BATCH: &str = "lab-bitmap-batch";

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
    run: |ctx| {
        fill::<BitmapAllocator>(ctx, "bitmap_fills_every_page");
        fill_batch::<BitmapAllocator>(ctx, "bitmap_batches_fill_every_page");
    },
};
pub const BITMAP_CHURN_50: Bench = Bench {
    name: "bitmap_alloc_50pct_random",
    suite: Suite::Alloc,
    precondition: always,
    run: |ctx| churn::<BitmapAllocator>(ctx, 50),
};
pub const BITMAP_CHURN_95: Bench = Bench {
    name: "bitmap_alloc_95pct_full",
    suite: Suite::Alloc,
    precondition: always,
    run: |ctx| churn::<BitmapAllocator>(ctx, 95),
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

/// A page allocator as these benchmarks drive it. Page 0 (the root) is taken from the start.
pub(super) trait Contender {
    const NAME: &'static str;
    fn fresh(pages: u32) -> Self;
    fn alloc(&mut self) -> Option<u32>;
    /// Return a page this contender handed out; false if it refused.
    fn free(&mut self, page: u32) -> bool;
    /// Pages in use, root included, where the contender counts them.
    fn in_use(&self) -> Option<u32> {
        None
    }
    /// The name of its call that hands over many pages at once ([`Contender::alloc_many`]),
    /// where it has one.
    const BATCH: Option<&'static str> = None;
    /// Hand over `out.len()` pages at once, all or none.
    fn alloc_many(&mut self, out: &mut [u32]) -> bool {
        out.iter_mut()
            .all(|slot| self.alloc().map(|p| *slot = p).is_some())
    }
}

impl Contender for BitmapAllocator {
    const NAME: &'static str = "lab-bitmap";
    const BATCH: Option<&'static str> = Some(BITMAP_BATCH);
    #[inline]
    fn alloc_many(&mut self, out: &mut [u32]) -> bool {
        self.allocate_many(out).is_ok()
    }
    fn fresh(pages: u32) -> Self {
        BitmapAllocator::new(pages)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.allocate().ok()
    }
    #[inline]
    fn free(&mut self, page: u32) -> bool {
        PageAllocator::free(self, page).is_ok()
    }
    fn in_use(&self) -> Option<u32> {
        Some(self.used())
    }
}

impl Contender for BumpAllocator {
    const NAME: &'static str = "lab-bump";
    fn fresh(pages: u32) -> Self {
        BumpAllocator::new(pages)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.allocate().ok()
    }
    fn free(&mut self, _: u32) -> bool {
        false
    }
    fn in_use(&self) -> Option<u32> {
        Some(self.used())
    }
}

/// The floor for a bump allocator: an increment and a bound check, nothing else. The bound is
/// a run-time value, as the bump allocator's capacity is.
pub(super) struct BareCounter {
    next: u32,
    cap: u32,
}

impl Contender for BareCounter {
    const NAME: &'static str = "bare-counter";
    fn fresh(pages: u32) -> Self {
        BareCounter {
            next: 1,
            cap: black_box(pages),
        }
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        (self.next < self.cap).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn free(&mut self, _: u32) -> bool {
        false
    }
    fn in_use(&self) -> Option<u32> {
        Some(self.next)
    }
}

fn bump_alloc(ctx: &mut Ctx<'_>) {
    fill::<BumpAllocator>(ctx, "bump_exhausts_at_capacity");
    fill::<BareCounter>(ctx, "bare_counter_stops_at_capacity");
}

/// Allocate every page of a fresh pool, one operation per page.
pub(super) fn fill<C: Contender>(ctx: &mut Ctx<'_>, check: &str) {
    let n = ctx.pages();
    let mut a = C::fresh(n);
    ctx.measure(
        C::NAME,
        "op",
        (n - 1) as u64,
        crate::json::Fields::EMPTY,
        &mut a,
        |a| *a = C::fresh(n),
        |a| {
            while let Some(p) = a.alloc() {
                black_box(p);
            }
        },
    );
    let used = a.in_use();
    let ok = used.is_none_or(|u| u == n) && a.alloc().is_none();
    ctx.check(
        check,
        ok,
        format_args!("{}: used {used:?} of {n}, then exhausted", C::NAME),
    );
}

/// Pages per batch: a word of the bitmap.
pub(super) const BATCH: usize = 64;

/// Allocate every page of a fresh pool, [`BATCH`] pages per call, with the contender's call
/// that hands over many at once (one operation per page, as [`fill`] counts).
pub(super) fn fill_batch<C: Contender>(ctx: &mut Ctx<'_>, check: &str) {
    let Some(name) = C::BATCH else { return };
    let n = ctx.pages();
    let mut st = (C::fresh(n), [0u32; BATCH], true, 0u64);
    ctx.measure(
        name,
        "op",
        (n - 1) as u64,
        crate::params! { "batch": BATCH as u64 },
        &mut st,
        |st| *st = (C::fresh(n), [0u32; BATCH], true, 0),
        |(a, out, ok, sum)| {
            let mut left = (n - 1) as usize;
            while left > 0 {
                let k = left.min(BATCH);
                *ok &= a.alloc_many(&mut out[..k]);
                *sum += black_box(&out[..k]).iter().map(|&p| p as u64).sum::<u64>();
                left -= k;
            }
        },
    );
    let (mut a, _, ok, _) = st;
    let used = a.in_use();
    let ok = ok && used.is_none_or(|u| u == n) && a.alloc().is_none();
    ctx.check(
        check,
        ok,
        format_args!("{name}: used {used:?} of {n}, then exhausted"),
    );
}

struct Churn<C> {
    a: C,
    victims: [u32; PAIRS],
    ok: bool,
}

/// At `fill_pct` % (pages scattered at random), free a random allocated page and allocate one,
/// `PAIRS` times. The victims are distinct pages allocated at the start: allocation never frees,
/// so each is still allocated at its turn and every operation must succeed. Every contender
/// gets the same pages (the same seed).
pub(super) fn churn<C: Contender>(ctx: &mut Ctx<'_>, fill_pct: u32) {
    let n = ctx.pages();
    let mut rng = ctx.rng();
    let keep = n * fill_pct / 100;
    let pairs = PAIRS.min(keep as usize - 1);
    let mut st = Churn {
        a: C::fresh(n),
        victims: [0; PAIRS],
        ok: true,
    };
    let setup = |st: &mut Churn<C>| {
        st.a = C::fresh(n);
        // Which pages are in use, kept here: not every contender can say.
        let mut live = [0u64; WORDS];
        while let Some(p) = st.a.alloc() {
            live[p as usize / 64] |= 1 << (p % 64);
        }
        let mut to_free = n - keep;
        while to_free > 0 {
            let p = rng.range(1, n);
            let (w, b) = (p as usize / 64, p % 64);
            if live[w] & (1 << b) != 0 {
                st.ok &= st.a.free(p);
                live[w] &= !(1 << b);
                to_free -= 1;
            }
        }
        let mut k = 0;
        while k < pairs {
            let p = rng.range(1, n);
            let (w, b) = (p as usize / 64, p % 64);
            if live[w] & (1 << b) != 0 {
                live[w] &= !(1 << b); // distinct victims
                st.victims[k] = p;
                k += 1;
            }
        }
    };
    let params = crate::params! { "fill_pct": fill_pct, "pairs": pairs };
    ctx.measure(
        C::NAME,
        "op",
        2 * pairs as u64,
        params,
        &mut st,
        setup,
        |st| {
            for &v in &st.victims[..pairs] {
                st.ok &= st.a.free(black_box(v));
                st.ok &= st.a.alloc().is_some();
            }
        },
    );
    let used = st.a.in_use();
    ctx.check(
        "churn_keeps_fill_level",
        st.ok && used.is_none_or(|u| u == keep),
        format_args!(
            "{}: every free and alloc succeeded: {}; used {used:?}, want {keep}",
            C::NAME,
            st.ok
        ),
    );
}

/// Free every page of a full pool, in index order.
pub(super) fn free_all<C: Contender>(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut st = (C::fresh(n), true);
    let setup = |st: &mut (C, bool)| {
        st.0 = C::fresh(n);
        while st.0.alloc().is_some() {}
    };
    ctx.measure(
        C::NAME,
        "op",
        (n - 1) as u64,
        crate::json::Fields::EMPTY,
        &mut st,
        setup,
        |st| {
            for p in 1..n {
                st.1 &= st.0.free(black_box(p));
            }
        },
    );
    let used = st.0.in_use();
    ctx.check(
        "free_all_leaves_root",
        st.1 && used.is_none_or(|u| u == 1),
        format_args!(
            "{}: every free succeeded: {}; used {used:?} after",
            C::NAME,
            st.1
        ),
    );
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
