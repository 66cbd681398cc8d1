//! `layouts`: the capacity model against real mapping, in the kernel. The bench job hands the
//! recorded layouts over as a boot module (text: a `# NAME` line, then `START END` hex lines,
//! per layout); for each, the pool pages `vystem_ptp::capacity` predicts, with 4 KiB pages and
//! with 2 MiB pages where aligned, must equal what mapping it into the pool really takes.
//! `# replay NAME` blocks in the same module are lifetimes for [`super::replay`].

use super::base::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::reason;
use vystem_ptp::{
    layout_regions, predict_tables, BitmapAllocator, PageSize, PageSizes, PageTableFlags as F,
    PhysAddr, PoolMapper, Region, VirtAddr,
};

const MAX_RANGES: usize = 1024;
const MAX_REGIONS: usize = 2048;

pub const AGREE: Bench = Bench {
    name: "layouts_predicted_equals_mapped",
    suite: Suite::Layouts,
    precondition: |ctx| {
        if ctx.platform.boot_module().is_none() {
            return Err(reason(format_args!(
                "no layouts handed over (scripts/bench.sh --suite layouts passes results/layouts as a boot module)"
            )));
        }
        // The largest pool maps the most layouts for real; checking once is enough.
        in_largest_pool(ctx, "each layout is checked once")
    },
    run,
};

/// Run only at the run's largest pool (`what`: what the skip reason says happens once).
pub(super) fn in_largest_pool(ctx: &Ctx<'_>, what: &str) -> Result<(), crate::platform::Reason> {
    let largest = ctx.cfg.largest_pool();
    if ctx.pages() != largest {
        return Err(reason(format_args!(
            "{what}, in the largest pool ({largest} pages)"
        )));
    }
    Ok(())
}

/// Predicted and mapped pool pages agree when equal, or when the prediction exceeds the pool and mapping really failed.
fn agree(pages: u64, (predicted, mapped): (Option<u64>, Option<u64>)) -> bool {
    match (predicted, mapped) {
        (Some(p), Some(m)) => p == m,
        (Some(p), None) => p > pages,
        (None, _) => false,
    }
}

/// Pool pages `ranges` take: predicted, and mapped for real (None: more than the pool).
fn figures(
    ctx: &Ctx<'_>,
    ranges: &[(u64, u64)],
    sizes: PageSizes,
    regions: &mut [Region],
) -> (Option<u64>, Option<u64>) {
    let predicted = layout_regions(ranges, sizes, regions)
        .and_then(|n| predict_tables(&mut regions[..n]).ok())
        .map(|t| t.total());
    let pages = ctx.pages();
    let mut m = PoolMapper::create(ctx.pool, BitmapAllocator::new(pages));
    let mut ok = true;
    for &(s, e) in ranges {
        let phys = PhysAddr::new(s & ((1 << 30) - 1));
        ok &= m
            .map_region(
                VirtAddr::new_truncate(s),
                phys,
                e - s,
                sizes,
                F::PRESENT | F::WRITABLE,
            )
            .is_ok();
    }
    (predicted, ok.then(|| m.usage().tables.total()))
}

fn run(ctx: &mut Ctx<'_>) {
    let Some(text) = ctx
        .platform
        .boot_module()
        .and_then(|b| core::str::from_utf8(b).ok())
    else {
        ctx.check(
            "layouts_module_is_text",
            false,
            format_args!("the boot module is not UTF-8 text"),
        );
        return;
    };
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let mut regions = [Region {
        start: VirtAddr::new(0),
        pages: 0,
        size: PageSize::Size4KiB,
    }; MAX_REGIONS];
    let (mut name, mut n, mut checked, mut bad_lines) = ("", 0usize, 0u32, 0u32);
    let mut replaying = false;
    // One more (empty) header at the end closes the last layout.
    for line in text.lines().chain(core::iter::once("# ")) {
        let line = line.trim();
        if let Some(next) = line.strip_prefix('#') {
            if !name.is_empty() {
                let k4 = figures(ctx, &ranges[..n], PageSizes::ONLY_4KIB, &mut regions);
                let m2 = figures(ctx, &ranges[..n], PageSizes::UP_TO_2MIB, &mut regions);
                let pages = u64::from(ctx.pages());
                let ok = agree(pages, k4) && agree(pages, m2);
                ctx.check(
                    name,
                    ok,
                    format_args!(
                        "{n} ranges, pool {pages} pages; 4 KiB pages: predicted {:?}, mapped {:?}; 2 MiB: predicted {:?}, mapped {:?} (None: does not fit)",
                        k4.0, k4.1, m2.0, m2.1
                    ),
                );
                checked += 1;
            }
            (name, n) = (next.trim(), 0);
            // A lifetime to replay (suites/replay.rs), not a layout.
            replaying = name.starts_with("replay ");
            if replaying {
                name = "";
            }
            continue;
        }
        if replaying {
            continue;
        }
        match crate::layout_text::range(line) {
            Some(r) if n < MAX_RANGES => {
                ranges[n] = r;
                n += 1;
            }
            _ if line.is_empty() => {}
            _ => bad_lines += 1,
        }
    }
    ctx.check(
        "every_layout_checked",
        checked > 0 && bad_lines == 0,
        format_args!("{checked} layouts checked; {bad_lines} lines that are not START END"),
    );
}
