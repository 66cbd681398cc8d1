//! `churn`: the bump-against-bitmap comparison the design asks for. A mapping set that changes
//! (regions of the sizes the recorded real layouts have, at scattered addresses, some
//! addresses used again) is played through the churn engine ([`crate::churn`]) with each
//! allocator: how far each gets (a `churn` record: the operation at which bump's pool runs out
//! while the bitmap goes on), and ticks per operation over the operations both complete, and
//! over the bitmap's whole sequence.

use super::base::{Bench, Ctx};
use crate::churn::{play, sizes_from_layouts, Played, Script, MAX_SIZES};
use crate::config::Suite;
use crate::platform::reason;
use crate::record::ChurnRecord;
use vystem_ptp::{BitmapAllocator, BumpAllocator, PageAllocator, PageSizes, PoolMapper, VirtAddr};

pub const CHURN: Bench = Bench {
    name: "churn_mixed",
    suite: Suite::Churn,
    precondition: |ctx| {
        let text = ctx.platform.boot_module().unwrap_or(&[]);
        if sizes_from_layouts(text, &mut [0; MAX_SIZES]) == 0 {
            return Err(reason(format_args!(
                "no layouts handed over: the region sizes come from them (scripts/bench.sh passes results/layouts with --suite churn)"
            )));
        }
        Ok(())
    },
    run,
};

const SIZES: PageSizes = PageSizes::UP_TO_2MIB;
/// The user half, where a script's regions live.
const USER_HALF: u64 = 1 << 47;

/// Operations and live regions at a pool size: twice the pool's pages in operations (a
/// quarter, quick), at most a sixteenth of them live (at least two).
fn shape(pages: u32, quick: bool) -> (u64, usize) {
    let ops = if quick {
        pages as u64 / 2
    } else {
        2 * pages as u64
    };
    (ops.clamp(16, 1 << 16), (pages as usize / 16).max(2))
}

fn run(ctx: &mut Ctx<'_>) {
    let n = ctx.pages();
    let pool = ctx.pool;
    let fill = ctx.platform.cpu().fill();
    let mut sizes = [0u64; MAX_SIZES];
    let k = sizes_from_layouts(ctx.platform.boot_module().unwrap_or(&[]), &mut sizes);
    let sizes = &sizes[..k];
    let (ops, live) = shape(n, ctx.cfg.quick);
    let seed = ctx.cfg.seed;
    let script = || Script::new(sizes, ops, live, seed);

    // How far each allocator gets, untimed.
    let mut bump = PoolMapper::create(pool, BumpAllocator::new(n)).with_fill(fill);
    let by_bump = play(&mut bump, SIZES, script());
    let mut bitmap = PoolMapper::create(pool, BitmapAllocator::new(n)).with_fill(fill);
    let by_bitmap = play(&mut bitmap, SIZES, script());
    for (name, p) in [("bump", by_bump), ("bitmap", by_bitmap)] {
        let _ = ChurnRecord {
            suite: ctx.suite.name(),
            bench: ctx.bench,
            pool_pages: n,
            allocator: name,
            ops,
            live_at_most: live as u32,
            sizes: k as u32,
            seed,
            done: p.done,
            exhausted_at: p.exhausted_at,
            peak_used: p.peak_used,
            used_end: p.used,
            fallbacks_4kib: p.fallbacks_4kib,
        }
        .write(ctx.out);
    }
    ctx.check(
        "churn_plays_without_errors",
        by_bump.failed.is_none() && by_bitmap.failed.is_none(),
        format_args!("bump: {:?}; bitmap: {:?}", by_bump.failed, by_bitmap.failed),
    );
    // The bitmap frees what it unmaps: the whole half unmapped leaves the root alone.
    let freed = bitmap
        .unmap_range(VirtAddr::new(0), USER_HALF)
        // SAFETY: the churn's tables are never loaded in any CR3.
        .map(|u| bitmap.release(unsafe { u.assume_flushed() }));
    let used = bitmap.allocator().used();
    ctx.check(
        "churn_bitmap_frees_every_table",
        freed.is_ok() && used == 1,
        format_args!(
            "unmapping the user half after {} operations: {freed:?}, {used} pages left in use",
            by_bitmap.done
        ),
    );
    ctx.check(
        "churn_bump_never_frees",
        by_bump.kept_every_table(),
        format_args!(
            "bump: {} tables unlinked, {} pages in use at the end, {} at most",
            by_bump.tables_unlinked, by_bump.used, by_bump.peak_used
        ),
    );

    // Ticks per operation: both over the operations both complete, the bitmap over all it does.
    let common = by_bump.done.min(by_bitmap.done);
    timed::<BumpAllocator>(
        ctx,
        "lab-bump",
        common,
        live,
        k,
        &script,
        BumpAllocator::new,
    );
    timed::<BitmapAllocator>(
        ctx,
        "lab-bitmap",
        common,
        live,
        k,
        &script,
        BitmapAllocator::new,
    );
    if by_bitmap.done > common {
        timed::<BitmapAllocator>(
            ctx,
            "lab-bitmap",
            by_bitmap.done,
            live,
            k,
            &script,
            BitmapAllocator::new,
        );
    }
}

/// Time the first `ops` operations of the script with a fresh mapper each sample, and check
/// that they all ran.
#[allow(clippy::too_many_arguments)]
fn timed<'s, A: PageAllocator>(
    ctx: &mut Ctx<'_>,
    imp: &'static str,
    ops: u64,
    live: usize,
    sizes: usize,
    script: &impl Fn() -> Script<'s>,
    fresh: fn(u32) -> A,
) {
    if ops == 0 {
        return;
    }
    let n = ctx.pages();
    let fill = ctx.platform.cpu().fill();
    let mut st = (
        PoolMapper::create(ctx.pool, fresh(n)).with_fill(fill),
        Played::default(),
    );
    let params = crate::params! { "ops": ops, "live_at_most": live as u64, "sizes": sizes as u64 };
    ctx.measure(
        imp,
        "op",
        ops,
        params,
        &mut st,
        |(m, _)| m.reset(fresh(n)),
        |(m, played)| *played = play(m, SIZES, core::hint::black_box(script()).take(ops as usize)),
    );
    let p = st.1;
    ctx.check(
        "churn_timed_operations_all_ran",
        p.done == ops && p.exhausted_at.is_none() && p.failed.is_none(),
        format_args!(
            "{imp}: {} of {ops} operations, exhausted at {:?}, failed {:?}",
            p.done, p.exhausted_at, p.failed
        ),
    );
}
