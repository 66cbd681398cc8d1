//! An allocator as the `alloc` benchmarks drive it ([`Contender`]), ours and the floor among
//! them, and the work every contender runs through alike: the fill, one page a call
//! ([`Fill`]) or many ([`FillBatch`]), the churn ([`Churn`]), the free of a full pool
//! ([`free_all`]). `alloc` (ours) and `peers` (the crates') build their entries from these.

use super::base::Ctx;
use crate::timing::{Entry, Work};
use core::hint::black_box;
use vystem_ptp::{BitmapAllocator, BumpAllocator, PageAllocator};

/// Free+alloc pairs per churn sample.
const PAIRS: usize = 1024;
/// Bitmap words covering the largest pool (for the setup's own bookkeeping).
const WORDS: usize = vystem_ptp::pool::MAX_POOL_PAGES as usize / 64;

/// Our bitmap's batch call, a contender of its own in the fill.
pub const BITMAP_BATCH: &str = "lab-bitmap-batch";

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

/// Allocate every page of a fresh pool, one operation per page.
pub(super) struct Fill<C> {
    n: u32,
    a: C,
}

impl<C: Contender> Fill<C> {
    pub(super) fn new(n: u32) -> Self {
        Fill { n, a: C::fresh(n) }
    }

    pub(super) fn entry<'w>(&'w mut self, ctx: &Ctx<'_>) -> Entry<'static, 'w> {
        let ops = (self.n - 1) as u64;
        ctx.contender(C::NAME, "op", ops, crate::json::Fields::EMPTY, self)
    }

    /// After its last batch: every page handed out, then none.
    pub(super) fn check(&mut self, ctx: &mut Ctx<'_>, check: &str) {
        let (n, used) = (self.n, self.a.in_use());
        let ok = used.is_none_or(|u| u == n) && self.a.alloc().is_none();
        ctx.check(
            check,
            ok,
            format_args!("{}: used {used:?} of {n}, then exhausted", C::NAME),
        );
    }
}

impl<C: Contender> Work for Fill<C> {
    fn setup(&mut self) {
        self.a = C::fresh(self.n);
    }
    fn batch(&mut self) {
        while let Some(p) = self.a.alloc() {
            black_box(p);
        }
    }
}

/// Pages per batch: a word of the bitmap.
pub(super) const BATCH: usize = 64;

/// Allocate every page of a fresh pool, [`BATCH`] pages per call, with the contender's call
/// that hands over many at once (one operation per page, as [`Fill`] counts). For contenders
/// with such a call ([`Contender::BATCH`]).
pub(super) struct FillBatch<C> {
    n: u32,
    a: C,
    out: [u32; BATCH],
    ok: bool,
    sum: u64,
}

impl<C: Contender> FillBatch<C> {
    pub(super) fn new(n: u32) -> Self {
        FillBatch {
            n,
            a: C::fresh(n),
            out: [0; BATCH],
            ok: true,
            sum: 0,
        }
    }

    fn name() -> &'static str {
        C::BATCH.unwrap_or(C::NAME)
    }

    pub(super) fn entry<'w>(&'w mut self, ctx: &Ctx<'_>) -> Entry<'static, 'w> {
        const PARAMS: crate::json::Fields<'static> = crate::params! { "batch": BATCH as u64 };
        let ops = (self.n - 1) as u64;
        ctx.contender(Self::name(), "op", ops, PARAMS, self)
    }

    pub(super) fn check(&mut self, ctx: &mut Ctx<'_>, check: &str) {
        let (n, used) = (self.n, self.a.in_use());
        let ok = self.ok && used.is_none_or(|u| u == n) && self.a.alloc().is_none();
        ctx.check(
            check,
            ok,
            format_args!("{}: used {used:?} of {n}, then exhausted", Self::name()),
        );
    }
}

impl<C: Contender> Work for FillBatch<C> {
    fn setup(&mut self) {
        (self.a, self.ok, self.sum) = (C::fresh(self.n), true, 0);
    }
    fn batch(&mut self) {
        let mut left = (self.n - 1) as usize;
        while left > 0 {
            let k = left.min(BATCH);
            self.ok &= self.a.alloc_many(&mut self.out[..k]);
            self.sum += black_box(&self.out[..k])
                .iter()
                .map(|&p| p as u64)
                .sum::<u64>();
            left -= k;
        }
    }
}

/// At `fill_pct` % (pages scattered at random), free a random allocated page and allocate one,
/// `PAIRS` times. The victims are distinct pages allocated at the start: allocation never frees,
/// so each is still allocated at its turn and every operation must succeed. Every contender
/// gets the same pages (the same seed: each its own stream from it).
pub(super) struct Churn<C> {
    n: u32,
    fill_pct: u32,
    keep: u32,
    pairs: usize,
    rng: crate::rng::Rng,
    a: C,
    victims: [u32; PAIRS],
    ok: bool,
}

impl<C: Contender> Churn<C> {
    pub(super) fn new(ctx: &Ctx<'_>, fill_pct: u32) -> Self {
        let n = ctx.pages();
        let keep = n * fill_pct / 100;
        Churn {
            n,
            fill_pct,
            keep,
            pairs: PAIRS.min(keep as usize - 1),
            rng: ctx.rng(),
            a: C::fresh(n),
            victims: [0; PAIRS],
            ok: true,
        }
    }

    /// Its fill level and pairs per batch: the benchmark's parameters.
    pub(super) fn shape(&self) -> (u32, usize) {
        (self.fill_pct, self.pairs)
    }

    pub(super) fn entry<'p, 'w>(
        &'w mut self,
        ctx: &Ctx<'_>,
        params: crate::json::Fields<'p>,
    ) -> Entry<'p, 'w> {
        ctx.contender(C::NAME, "op", 2 * self.pairs as u64, params, self)
    }

    pub(super) fn check(&mut self, ctx: &mut Ctx<'_>) {
        let (keep, used) = (self.keep, self.a.in_use());
        ctx.check(
            "churn_keeps_fill_level",
            self.ok && used.is_none_or(|u| u == keep),
            format_args!(
                "{}: every free and alloc succeeded: {}; used {used:?}, want {keep}",
                C::NAME,
                self.ok
            ),
        );
    }
}

impl<C: Contender> Work for Churn<C> {
    fn setup(&mut self) {
        let n = self.n;
        self.a = C::fresh(n);
        // Which pages are in use, kept here: not every contender can say.
        let mut live = [0u64; WORDS];
        while let Some(p) = self.a.alloc() {
            live[p as usize / 64] |= 1 << (p % 64);
        }
        let mut to_free = n - self.keep;
        while to_free > 0 {
            let p = self.rng.range(1, n);
            let (w, b) = (p as usize / 64, p % 64);
            if live[w] & (1 << b) != 0 {
                self.ok &= self.a.free(p);
                live[w] &= !(1 << b);
                to_free -= 1;
            }
        }
        let mut k = 0;
        while k < self.pairs {
            let p = self.rng.range(1, n);
            let (w, b) = (p as usize / 64, p % 64);
            if live[w] & (1 << b) != 0 {
                live[w] &= !(1 << b); // distinct victims
                self.victims[k] = p;
                k += 1;
            }
        }
    }
    fn batch(&mut self) {
        for &v in &self.victims[..self.pairs] {
            self.ok &= self.a.free(black_box(v));
            self.ok &= self.a.alloc().is_some();
        }
    }
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
