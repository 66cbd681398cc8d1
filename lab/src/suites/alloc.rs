//! `alloc`: which page allocator for which job, per pool size. Per operation, in ticks.

use super::{always, Bench, Ctx, Suite};
use crate::allocator::{BitmapAllocator, BumpAllocator, PageAllocator};
use core::hint::black_box;

const PAIRS: usize = 1024;

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
    run: churn_50,
};
pub const BITMAP_CHURN_95: Bench = Bench {
    name: "bitmap_alloc_95pct_full",
    suite: Suite::Alloc,
    precondition: always,
    run: churn_95,
};
pub const BITMAP_FREE: Bench = Bench {
    name: "bitmap_free",
    suite: Suite::Alloc,
    precondition: always,
    run: bitmap_free,
};
pub const BITMAP_INIT: Bench = Bench {
    name: "bitmap_init_from_counter",
    suite: Suite::Alloc,
    precondition: always,
    run: bitmap_init,
};

fn bump_alloc(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let ops = (n - 1) as u64;
    let mut bump = BumpAllocator::new(n);
    ctx.measure(
        "lab-bump",
        "op",
        ops,
        format_args!("{{}}"),
        &mut bump,
        |b| *b = BumpAllocator::new(n),
        |b| {
            while let Ok(p) = b.allocate() {
                black_box(p);
            }
        },
    );
    ctx.check(
        "bump_exhausts_at_capacity",
        bump.used() == n && bump.allocate().is_err(),
        format_args!("used {} of {n}", bump.used()),
    );
    // The floor: a bare counter with a bound check.
    let mut next = 1u32;
    ctx.measure(
        "bare-counter",
        "op",
        ops,
        format_args!("{{}}"),
        &mut next,
        |c| *c = 1,
        |c| {
            while *c < black_box(n) {
                *c += 1;
                black_box(*c - 1);
            }
        },
    );
}

fn bitmap_alloc_seq(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut a = BitmapAllocator::new(n);
    ctx.measure(
        "lab-bitmap",
        "op",
        (n - 1) as u64,
        format_args!("{{}}"),
        &mut a,
        |a| *a = BitmapAllocator::new(n),
        |a| {
            while let Ok(p) = a.allocate() {
                black_box(p);
            }
        },
    );
    ctx.check(
        "bitmap_fills_every_page",
        a.used() == n,
        format_args!("used {} of {n}", a.used()),
    );
}

struct Churn {
    a: BitmapAllocator,
    victims: [u32; PAIRS],
    ok: bool,
}

/// At `fill_pct` % (pages scattered at random), free a random allocated page and allocate one,
/// `PAIRS` times. The victims are distinct pages allocated at the start: allocation never frees,
/// so each is still allocated at its turn and every operation must succeed.
fn churn(ctx: &mut Ctx<'_>, fill_pct: u32) {
    let n = ctx.pages();
    let mut rng = ctx.rng();
    let keep = n * fill_pct / 100;
    let pairs = PAIRS.min(keep as usize - 1);
    let mut st = Churn {
        a: BitmapAllocator::new(n),
        victims: [0; PAIRS],
        ok: true,
    };
    let setup = |st: &mut Churn| {
        st.a = BitmapAllocator::new(n);
        while st.a.allocate().is_ok() {}
        let mut to_free = n - keep;
        while to_free > 0 {
            if st.a.free(rng.range(1, n)).is_ok() {
                to_free -= 1;
            }
        }
        let mut seen = [0u64; 1024];
        let mut k = 0;
        while k < pairs {
            let p = rng.range(1, n);
            let (w, b) = (p as usize / 64, p % 64);
            if st.a.is_allocated(p) && seen[w] & (1 << b) == 0 {
                seen[w] |= 1 << b;
                st.victims[k] = p;
                k += 1;
            }
        }
    };
    let params = format_args!("{{\"fill_pct\":{fill_pct},\"pairs\":{pairs}}}");
    ctx.measure(
        "lab-bitmap",
        "op",
        2 * pairs as u64,
        params,
        &mut st,
        setup,
        |st| {
            for &v in &st.victims[..pairs] {
                st.ok &= st.a.free(black_box(v)).is_ok();
                st.ok &= st.a.allocate().is_ok();
            }
        },
    );
    let used = st.a.used();
    ctx.check(
        "churn_keeps_fill_level",
        st.ok && used == keep,
        format_args!(
            "every free and alloc succeeded: {}; used {used}, want {keep}",
            st.ok
        ),
    );
}

fn churn_50(ctx: &mut Ctx<'_>) {
    churn(ctx, 50)
}

fn churn_95(ctx: &mut Ctx<'_>) {
    churn(ctx, 95)
}

fn bitmap_free(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut a = BitmapAllocator::new(n);
    let setup = |a: &mut BitmapAllocator| {
        *a = BitmapAllocator::new(n);
        while a.allocate().is_ok() {}
    };
    ctx.measure(
        "lab-bitmap",
        "op",
        (n - 1) as u64,
        format_args!("{{}}"),
        &mut a,
        setup,
        |a| {
            for p in 1..n {
                let _ = a.free(black_box(p));
            }
        },
    );
    ctx.check(
        "free_all_leaves_root",
        a.used() == 1,
        format_args!("used {} after freeing all", a.used()),
    );
}

fn bitmap_init(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let mut a = BitmapAllocator::new(64);
    let params = format_args!("{{\"counter\":{}}}", n / 2);
    ctx.measure(
        "lab-bitmap",
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
