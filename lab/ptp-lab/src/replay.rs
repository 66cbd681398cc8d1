//! Lifetime replay: each process's address-space changes, as `ptplab replay` derives them from a
//! strace log (tools/ptplab/trace.py), played through the churn engine ([`crate::churn`]) into
//! its own unmodifiable PTP on simulated memory, once with bump and once with the bitmap: the
//! peak pool pages and the call at the peak, where each pool size runs out, table pages freed
//! and reused against kept, the pages each call asks the TLB to forget, and the mapper's ticks.
//!
//! The input ("replay ops", one item a line, hex addresses, END exclusive, CALL the index of the
//! strace line that caused it):
//!
//! ```text
//! process ID PROGRAM     a new address space (exec, or a fork's copy): a fresh PTP
//! map START END CALL     START..END became accessible
//! unmap START END CALL   START..END stopped being accessible (munmap, PROT_NONE, replaced)
//! forget PAGES CALL      a protection change: PAGES to forget, no table changes
//! ```
//!
//! Mapping uses 4 KiB pages, as Linux maps user memory without THP: at every step the capacity
//! model's prediction for the accessible set must equal what the bitmap's mapper holds (bump
//! keeps emptied tables, so it holds at least that). The 2 MiB figure is the model's peak
//! over the lifetime, 2 MiB pages where aligned; so is the 4 KiB one where a lifetime needs
//! more than the largest pool (the replay stops there).

use crate::churn::{play_steps, Op, Step};
use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;
use vystem_ptp::pool::MAX_POOL_PAGES;
use vystem_ptp::sim::SimMemory;
use vystem_ptp::{
    layout_regions, predict_tables, BitmapAllocator, BumpAllocator, PageAllocator, PageSize,
    PageSizes, PoolMapper, Region, VirtAddr,
};

/// Flush ceilings the replay counts calls above (pages per call): the TLB suite's candidates.
pub const CEILINGS: [u64; 3] = [1, 33, 512];

/// How often the replay's kernel flushes, in calls that change mapped pages: after each such
/// call, and once for every 16 (as a kernel gathers unmaps into one flush). Between two
/// flushes the tables those calls emptied wait, allocated (`vystem_ptp::Unmap`), so a map
/// meanwhile takes new pages: the pool must hold both.
pub const FLUSH_EVERY: [u64; 2] = [1, 16];

/// The tables waiting for a flush over a lifetime, flushing every `every` calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    pub every: u64,
    /// Table pages waiting at most, and the pool pages in use at most, counting them.
    pub peak_waiting: u32,
    pub peak_pool: u32,
}

/// Follows the tables waiting for the flush, operation by operation (each operation's
/// tables unlinked, the pool pages in use as if freed at once, and its call).
#[derive(Debug, Clone, Copy, Default)]
struct Gather {
    w: Waiting,
    waiting: u32,
    /// Calls that changed mapped pages since the last flush.
    calls: u64,
    call: Option<u64>,
    changed: bool,
}

impl Gather {
    fn step(&mut self, call: u64, changed: bool, unlinked: u64, used: u32) {
        if self.call != Some(call) {
            // The previous call ended: a flush once enough calls changed pages.
            if self.changed {
                self.calls += 1;
                if self.calls >= self.w.every {
                    (self.waiting, self.calls) = (0, 0);
                }
            }
            (self.call, self.changed) = (Some(call), false);
        }
        self.changed |= changed;
        self.waiting = self.waiting.saturating_add(unlinked as u32);
        self.w.peak_waiting = self.w.peak_waiting.max(self.waiting);
        self.w.peak_pool = self.w.peak_pool.max(used.saturating_add(self.waiting));
    }
}

/// One process of the input.
#[derive(Debug, Clone, Default)]
pub struct Process {
    pub id: String,
    pub program: String,
    /// (call, op); and protection changes as (call, pages).
    pub ops: Vec<(u64, Op)>,
    pub forgets: Vec<(u64, u64)>,
}

/// A bad input line: its number (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub why: String,
}

impl core::fmt::Display for BadLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Read the replay ops text.
pub fn parse(text: &str) -> Result<Vec<Process>, BadLine> {
    let mut out: Vec<Process> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: String| BadLine { line: i + 1, why };
        let words: Vec<&str> = line.split_whitespace().collect();
        let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
        let num = |w: &str| w.parse::<u64>().ok();
        match words.as_slice() {
            [] => {}
            [w, ..] if w.starts_with('#') => {}
            ["process", id, program @ ..] => out.push(Process {
                id: (*id).into(),
                program: program.join(" "),
                ..Process::default()
            }),
            [kind @ ("map" | "unmap"), s, e, call] => {
                let (Some(s), Some(e), Some(call)) = (hex(s), hex(e), num(call)) else {
                    return Err(bad(std::format!(
                        "'{line}' is not {kind} START END CALL (hex, hex, decimal)"
                    )));
                };
                if s >= e || s % 4096 != 0 || e % 4096 != 0 || e > 1 << 47 {
                    return Err(bad(std::format!(
                        "'{line}': START END must be 4 KiB aligned, START < END <= 0x800000000000"
                    )));
                }
                let Some(p) = out.last_mut() else {
                    return Err(bad(std::format!("'{line}' comes before any process line")));
                };
                let bytes = e - s;
                p.ops.push((
                    call,
                    if *kind == "map" {
                        Op::Map { virt: s, bytes }
                    } else {
                        Op::Unmap { virt: s, bytes }
                    },
                ));
            }
            ["forget", pages, call] => {
                let (Some(pages), Some(call)) = (num(pages), num(call)) else {
                    return Err(bad(std::format!(
                        "'{line}' is not forget PAGES CALL (decimal)"
                    )));
                };
                let Some(p) = out.last_mut() else {
                    return Err(bad(std::format!("'{line}' comes before any process line")));
                };
                p.forgets.push((call, pages));
            }
            _ => {
                return Err(bad(std::format!(
                "'{line}' is not process ID PROGRAM, map/unmap START END CALL or forget PAGES CALL"
            )))
            }
        }
    }
    Ok(out)
}

/// One allocator's lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Pool pages in use at most (root included) and the call at which that was first reached.
    pub peak: u32,
    pub peak_call: Option<u64>,
    pub end: u32,
    /// Per pool size, the call whose map would not fit it (None: it holds the lifetime).
    pub exhausted: Vec<(u32, Option<u64>)>,
    /// More than the largest pool: replayed up to there only.
    pub beyond_largest_pool: bool,
    pub tables_freed: u64,
    /// Table pages handed out again after a free (the bitmap's lowest-first allocation reuses
    /// freed pages before it takes new ones).
    pub tables_reused: u64,
    /// Pages held at the end beyond what the accessible set needs (bump: emptied tables kept).
    pub tables_kept_empty: u64,
    /// Per [`FLUSH_EVERY`]: the tables waiting for the flush at most, and the peak with them.
    pub waiting: Vec<Waiting>,
    pub ticks: u64,
    /// An operation the mapper refused, other than for the pool: (call, why).
    pub failed: Option<(u64, String)>,
    /// First step where the capacity model disagreed with the mapper (bitmap only): (call,
    /// predicted, held).
    pub model_mismatch: Option<(u64, u64, u32)>,
    pub model_checked: u64,
}

/// What a process's lifetime asks of the TLB (unmaps and protection changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgets {
    pub calls: u64,
    pub pages: u64,
    pub largest: u64,
    /// Calls asking for more than each of [`CEILINGS`].
    pub over: [u64; CEILINGS.len()],
}

impl Forgets {
    fn add(&mut self, pages: u64) {
        if pages == 0 {
            return;
        }
        self.calls += 1;
        self.pages += pages;
        self.largest = self.largest.max(pages);
        for (o, c) in self.over.iter_mut().zip(CEILINGS) {
            *o += (pages > c) as u64;
        }
    }
}

/// A process replayed.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub bump: Lifetime,
    pub bitmap: Lifetime,
    pub forgets: Forgets,
    /// The capacity model's peak over the lifetime, between calls: with 2 MiB pages where
    /// aligned, and with 4 KiB pages (the bitmap's peak, where the model holds and the replay
    /// did not run out of the largest pool).
    pub peak_2mib: u64,
    pub peak_4kib_model: u64,
}

/// The accessible set as the ops leave it, and the model's pool pages for it.
#[derive(Default)]
struct Live(BTreeMap<u64, u64>);

impl Live {
    fn apply(&mut self, op: Op) {
        let (s, e, map) = match op {
            Op::Map { virt, bytes } => (virt, virt + bytes, true),
            Op::Unmap { virt, bytes } => (virt, virt + bytes, false),
        };
        // Cut [s, e) out of every range, then add it back when it maps.
        let cut: Vec<(u64, u64)> = self
            .0
            .range(..e)
            .filter(|&(_, &re)| re > s)
            .map(|(&rs, &re)| (rs, re))
            .collect();
        for (rs, re) in cut {
            self.0.remove(&rs);
            if rs < s {
                self.0.insert(rs, s);
            }
            if re > e {
                self.0.insert(e, re);
            }
        }
        if map {
            self.0.insert(s, e);
        }
    }

    fn tables(&self, sizes: PageSizes) -> u64 {
        let ranges: Vec<(u64, u64)> = self.0.iter().map(|(&s, &e)| (s, e)).collect();
        let empty = Region {
            start: VirtAddr::new(0),
            pages: 0,
            size: PageSize::Size4KiB,
        };
        let mut regions = std::vec![empty; ranges.len() * 5 + 1];
        let n = layout_regions(&ranges, sizes, &mut regions).unwrap_or(0);
        predict_tables(&mut regions[..n]).map_or(u64::MAX, |t| t.total())
    }
}

/// One allocator's lifetime at the largest pool, and the used count after each operation
/// (call, used), from which each smaller pool's exhaustion follows: the allocators hand out
/// the same pages whatever the capacity. With `check_model`, the model is held to the mapper
/// at every step; `forget` gets each call's pages to forget.
fn lifetime<A: PageAllocator>(
    mem: &SimMemory,
    alloc: A,
    p: &Process,
    check_model: bool,
    clock: &impl Fn() -> u64,
    forget: &mut BTreeMap<u64, u64>,
) -> (Lifetime, Vec<(u64, u32)>) {
    let pool = mem
        .pool(0, MAX_POOL_PAGES)
        .expect("the simulated memory holds the largest pool");
    let mut m = PoolMapper::create(pool, alloc);
    let mut life = Lifetime {
        peak: m.allocator().used(),
        ..Lifetime::default()
    };
    let mut live = Live::default();
    let mut before = life.peak;
    let mut high = before;
    let mut trail = Vec::with_capacity(p.ops.len());
    let mut gathers = FLUSH_EVERY.map(|every| Gather {
        w: Waiting {
            every,
            ..Waiting::default()
        },
        ..Gather::default()
    });
    let played = play_steps(
        &mut m,
        PageSizes::ONLY_4KIB,
        p.ops.iter().map(|&(_, op)| op),
        clock,
        |i, op, s: Step| {
            let call = p.ops[i as usize].0;
            live.apply(op);
            trail.push((call, s.used));
            life.ticks += s.ticks;
            life.tables_freed += s.tables_freed;
            for g in &mut gathers {
                g.step(
                    call,
                    s.forget > 0 || s.tables_freed > 0,
                    s.tables_freed,
                    s.used,
                );
            }
            if s.forget > 0 {
                *forget.entry(call).or_default() += s.forget;
            }
            if s.used > before {
                // Lowest-first allocation: pages below the high-water mark were used before.
                life.tables_reused += (s.used.min(high) - before.min(high)) as u64;
            }
            if s.used > life.peak {
                life.peak = s.used;
                life.peak_call = Some(call);
            }
            high = high.max(s.used);
            before = s.used;
            if check_model && life.model_mismatch.is_none() {
                let want = live.tables(PageSizes::ONLY_4KIB);
                life.model_checked += 1;
                if want != s.used as u64 {
                    life.model_mismatch = Some((call, want, s.used));
                }
            }
        },
    );
    life.end = played.used;
    life.waiting = gathers.iter().map(|g| g.w).collect();
    if let Some(i) = played.exhausted_at {
        let call = p.ops[i as usize].0;
        life.beyond_largest_pool = true;
        life.peak = MAX_POOL_PAGES;
        life.peak_call = Some(call);
        trail.push((call, MAX_POOL_PAGES + 1));
    }
    if let Some((i, why)) = played.failed {
        life.failed = Some((p.ops[i as usize].0, std::format!("{why:?}")));
    }
    life.tables_kept_empty = (played.used as u64).saturating_sub(live.tables(PageSizes::ONLY_4KIB));
    (life, trail)
}

/// Where each pool size runs out: the first call after which the lifetime needed more.
fn exhaustion(trail: &[(u64, u32)], pools: &[u32]) -> Vec<(u32, Option<u64>)> {
    pools
        .iter()
        .map(|&n| {
            (
                n,
                trail.iter().find(|&&(_, used)| used > n).map(|&(c, _)| c),
            )
        })
        .collect()
}

/// Replay one process with both allocators, judging `pools`. `clock` times the mapper.
pub fn replay(mem: &SimMemory, p: &Process, pools: &[u32], clock: impl Fn() -> u64) -> Replayed {
    let mut forget = BTreeMap::new();
    let (mut bump, trail) = lifetime(
        mem,
        BumpAllocator::new(MAX_POOL_PAGES),
        p,
        false,
        &clock,
        &mut BTreeMap::new(),
    );
    bump.exhausted = exhaustion(&trail, pools);
    let (mut bitmap, trail) = lifetime(
        mem,
        BitmapAllocator::new(MAX_POOL_PAGES),
        p,
        true,
        &clock,
        &mut forget,
    );
    bitmap.exhausted = exhaustion(&trail, pools);
    for &(c, pages) in &p.forgets {
        *forget.entry(c).or_default() += pages;
    }
    let mut forgets = Forgets::default();
    for pages in forget.into_values() {
        forgets.add(pages);
    }
    // The model's peak over the whole lifetime, with 4 KiB pages and with 2 MiB pages where
    // aligned: what a pool would need even where the replay ran out of the largest one.
    let mut live = Live::default();
    let (mut peak_4kib_model, mut peak_2mib) = (1, 1);
    for (i, &(call, op)) in p.ops.iter().enumerate() {
        live.apply(op);
        // After the last operation of a call: a call's pieces (replace = unmap + map) count
        // once, as the mapper holds them between calls.
        if p.ops.get(i + 1).is_some_and(|&(next, _)| next == call) {
            continue;
        }
        peak_4kib_model = peak_4kib_model.max(live.tables(PageSizes::ONLY_4KIB));
        peak_2mib = peak_2mib.max(live.tables(PageSizes::UP_TO_2MIB));
    }
    Replayed {
        bump,
        bitmap,
        forgets,
        peak_2mib,
        peak_4kib_model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn a_process_replays_and_the_model_follows_the_bitmap() {
        let ps = parse("# c\nprocess 7 p\nmap 1000 3000 0\nmap 40000000 40001000 1\nunmap 1000 3000 2\nforget 3 4\n")
            .unwrap();
        assert_eq!(
            (ps.len(), ps[0].ops.len(), ps[0].forgets.clone()),
            (1, 3, vec![(4, 3)])
        );
        let mem = SimMemory::new(MAX_POOL_PAGES as u64);
        let r = replay(&mem, &ps[0], &[64], || 0);
        // Root, PDPT, a PD and PT per GiB: 6 at the peak; the first GiB's PD and PT freed.
        assert_eq!(
            (r.bitmap.peak, r.bitmap.end, r.bitmap.tables_freed),
            (6, 4, 2)
        );
        assert_eq!((r.bump.end, r.bump.tables_kept_empty), (6, 2));
        assert_eq!((r.bitmap.model_checked, r.bitmap.model_mismatch), (3, None));
        assert_eq!((r.forgets.calls, r.forgets.pages), (2, 5));
        assert_eq!(r.bitmap.exhausted, vec![(64, None)]);
    }

    #[test]
    fn tables_wait_for_the_flush_between_calls_and_longer_when_gathered() {
        // Calls 0 and 1 each unlink 3 tables; call 2 maps (needs 2 new pages at 10 used).
        let mut each = Gather {
            w: Waiting {
                every: 1,
                ..Waiting::default()
            },
            ..Gather::default()
        };
        let mut two = Gather {
            w: Waiting {
                every: 2,
                ..Waiting::default()
            },
            ..Gather::default()
        };
        for g in [&mut each, &mut two] {
            g.step(0, true, 3, 8);
            g.step(1, true, 3, 5);
            g.step(2, false, 0, 7);
        }
        // After each call: 3 wait at most; the peak counts them (8 + 3).
        assert_eq!((each.w.peak_waiting, each.w.peak_pool), (3, 11));
        // Every 2 calls: calls 0 and 1 gather 6, flushed only once call 1 ends.
        assert_eq!((two.w.peak_waiting, two.w.peak_pool), (6, 11));
    }

    #[test]
    fn bad_lines_are_named_with_their_number() {
        for (text, line) in [
            ("map 1000 2000 0\n", 1),
            ("process 1 x\n\nmap 2000 1000 0\n", 3),
            ("process 1 x\nforget x 1\n", 2),
            ("process 1 x\nmap 1000 1000000000000 0\n", 2),
        ] {
            assert_eq!(parse(text).unwrap_err().line, line, "{text}");
        }
    }
}
