//! `layouts_replay_translates`: a few real program lifetimes (`ptplab replay` writes them into
//! the layouts boot module) replayed on real page tables: each block's maps and unmaps into an
//! unmodifiable PTP, then, with that PTP in CR3, every range the model says is accessible at
//! the end translates through the MMU (its first and last page read), the page after it faults
//! where the model says nothing is mapped, and the pool holds what the capacity model predicts.
//!
//! A block: `# replay NAME`, then `+ START END` (map) and `- START END` (unmap) in the order the
//! program made them, then `= START END` for each range accessible at the end. Every range maps
//! to physical address 0 (the first bytes of RAM; the writer keeps ranges within 16 MiB), so
//! reading through it reads RAM; the writer moves ranges of PML4 slot 0, where the kernel's
//! identity map lives, to a free slot, which keeps their table count.

use super::base::{needs_ring0, Bench, Ctx};
use super::ptp::with_cr3;
use crate::config::Suite;
use crate::platform::{map_kernel, reason, Fault};
use vystem_ptp::{
    layout_regions, predict_tables, BitmapAllocator, PageAllocator, PageSize, PageSizes,
    PageTableFlags as F, PhysAddr, PoolMapper, Region, VirtAddr,
};

const MAX_FINAL: usize = 1024;
const HEADER: &str = "# replay ";

pub const REPLAY: Bench = Bench {
    name: "layouts_replay_translates",
    suite: Suite::Layouts,
    precondition: |ctx| {
        needs_ring0(ctx)?;
        let text = ctx.platform.boot_module().unwrap_or(&[]);
        let has =
            core::str::from_utf8(text).is_ok_and(|t| t.lines().any(|l| l.starts_with(HEADER)));
        if !has {
            return Err(reason(format_args!(
                "no lifetime replays handed over (scripts/bench.sh --suite layouts adds a few from results/traces)"
            )));
        }
        super::layouts::in_largest_pool(ctx, "each replay runs once")
    },
    run,
};

/// One block's outcome.
#[derive(Default)]
struct Block {
    ops: u32,
    failed: Option<u32>,
    finals: usize,
    bad_lines: u32,
}

fn run(ctx: &mut Ctx<'_>) {
    let text = core::str::from_utf8(ctx.platform.boot_module().unwrap_or(&[])).unwrap_or("");
    let mut lines = text.lines().peekable();
    let mut blocks = 0;
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix(HEADER) else {
            continue;
        };
        let name = name.trim();
        let pool = ctx.pool;
        let pages = ctx.pages();
        let mut m = PoolMapper::create(pool, BitmapAllocator::new(pages));
        let Some(mmu) = ctx.platform.mmu() else {
            return;
        };
        if let Err(e) = map_kernel(&*mmu, &mut m) {
            ctx.check(
                name,
                false,
                format_args!("mapping the kernel failed: {e:?}"),
            );
            return;
        }
        let base = m.allocator().used();
        let mut b = Block::default();
        let mut finals = [(0u64, 0u64); MAX_FINAL];
        while let Some(&next) = lines.peek() {
            if next.starts_with('#') {
                break;
            }
            lines.next();
            let (kind, rest) = next.split_at(next.len().min(1));
            let Some((s, e)) = crate::layout_text::range(rest) else {
                b.bad_lines += (!next.trim().is_empty()) as u32;
                continue;
            };
            match kind {
                "+" => {
                    b.ops += 1;
                    let r = m.map_region(
                        VirtAddr::new_truncate(s),
                        PhysAddr::new(0),
                        e - s,
                        PageSizes::ONLY_4KIB,
                        F::PRESENT,
                    );
                    if r.is_err() && b.failed.is_none() {
                        b.failed = Some(b.ops);
                    }
                }
                "-" => {
                    b.ops += 1;
                    let r = m.unmap_range(VirtAddr::new_truncate(s), e - s);
                    // SAFETY: a replay's tables are never loaded in any CR3.
                    let r = r.map(|u| m.release(unsafe { u.assume_flushed() }));
                    if r.is_err() && b.failed.is_none() {
                        b.failed = Some(b.ops);
                    }
                }
                "=" if b.finals < MAX_FINAL => {
                    finals[b.finals] = (s, e);
                    b.finals += 1;
                }
                _ => b.bad_lines += 1,
            }
        }
        let finals = &finals[..b.finals];
        // The model for the final set; the kernel's identity map shares only the root.
        let mut regions = [Region {
            start: VirtAddr::new(0),
            pages: 0,
            size: PageSize::Size4KiB,
        }; MAX_FINAL];
        let predicted = layout_regions(finals, PageSizes::ONLY_4KIB, &mut regions)
            .and_then(|n| predict_tables(&mut regions[..n]).ok())
            .map(|t| t.total() - 1);
        let held = (m.allocator().used() - base) as u64;
        // Through the MMU: each final range's first and last page read, the page after it
        // (where no other range is) faults at that address.
        let (mut reads, mut faults, mut wrong) = (0u32, 0u32, None);
        let Some(mmu) = ctx.platform.mmu() else {
            return;
        };
        with_cr3(mmu, pool.root_frame(), |mmu| {
            for (i, &(s, e)) in finals.iter().enumerate() {
                for a in [s, e - 4096] {
                    match mmu.probe_read(a) {
                        Ok(_) => reads += 1,
                        Err(f) => wrong = wrong.or(Some((a, Some(f)))),
                    }
                }
                let after = e;
                let next_starts_there = finals.get(i + 1).is_some_and(|&(ns, _)| ns == after);
                if !next_starts_there && after < 1 << 47 {
                    match mmu.probe_read(after) {
                        Err(Fault {
                            vector: 14, cr2, ..
                        }) if cr2 == after => faults += 1,
                        other => wrong = wrong.or(Some((after, other.err()))),
                    }
                }
            }
        });
        let ok = b.failed.is_none()
            && b.bad_lines == 0
            && predicted == Some(held)
            && wrong.is_none()
            && reads as usize == 2 * finals.len();
        ctx.check(
            name,
            ok,
            format_args!(
                "{} maps and unmaps (first refused: {:?}); {} ranges at the end: model {:?} table pages, pool holds {held}; {reads} pages read through the MMU, {faults} pages after a range faulted; first wrong probe {:?}; {} bad lines",
                b.ops, b.failed, finals.len(), predicted, wrong.map(|(a, f)| (a, f.map(|f| f.vector))), b.bad_lines
            ),
        );
        blocks += 1;
    }
    ctx.check(
        "every_replay_checked",
        blocks > 0,
        format_args!("{blocks} lifetimes replayed"),
    );
}
