//! What a page-table change asks of the TLB. Like the x86_64 crate's `MapperFlush`, a change
//! returns a `#[must_use]` promise; unlike it, a batched change returns the whole range it
//! touched, and the caller picks the strategy that invalidates it (one `invlpg` per page, or a
//! full CR3 reload), which is exactly the choice the TLB benchmarks measure.
//!
//! [`FlushPolicy`] makes that choice: per page up to a ceiling, one full flush above it. Linux
//! uses one fixed ceiling for every CPU (33); [`calibrate`] measures this CPU's, from timings
//! the caller takes (this crate keeps no clock of its own), and [`crossover`] / [`regret`] /
//! [`worst_ratio`] say what a fixed ceiling costs against the measured one. The lab's TLB
//! benchmarks time these very strategies ([`PageFlush`], [`FullFlush`]).

use crate::page_size::PageSize;
use x86_64::VirtAddr;

/// The virtual range a page-table change touched, which the TLB must forget: flush it
/// ([`FlushRange::flush_each`], [`FlushRange::flush_all`], [`FlushRange::flush_with`] a
/// [`FlushPolicy`]; ring 0) or [`FlushRange::ignore`] it.
///
/// # Example
///
/// ```
/// use vystem_ptp::{Decision, FlushPolicy, FlushRange, PageSize, VirtAddr};
///
/// let range = FlushRange::of_pages(VirtAddr::new(0x20_0000), 40, PageSize::Size4KiB).unwrap();
/// assert_eq!((range.pages(), range.invlpg_count()), (40, 40));
/// assert_eq!(range.addresses().nth(1), Some(VirtAddr::new(0x20_1000)));
/// // Linux's ceiling (33) flushes 40 pages all at once; a ceiling of 64 page by page.
/// assert_eq!(FlushPolicy::LINUX.decide(&range), Decision::Full);
/// assert_eq!(FlushPolicy::with_ceiling(64).decide(&range), Decision::PerPage(40));
/// range.ignore(); // in ring 0: `range.flush_with(&policy)`
/// ```
#[must_use = "a page-table change must be flushed from the TLB, or explicitly ignored"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushRange {
    start: u64,
    /// Inclusive, so a range that ends at the top of the address space needs no overflow.
    last: u64,
    /// The smallest page size changed: one `invlpg` per `step` covers the range.
    step: PageSize,
    /// Mappings changed.
    pages: u64,
    /// Page tables unlinked (and returned to the pool): their paging-structure cache entries
    /// must go too, even when no mapping changed.
    tables: u64,
}

impl FlushRange {
    pub(crate) fn new(start: u64, last: u64, step: PageSize, pages: u64) -> Self {
        FlushRange {
            start,
            last,
            step,
            pages,
            tables: 0,
        }
    }

    /// `pages` pages of `step` from `start`, changed by someone else (another CPU's request
    /// in a shootdown); `None` when empty or past the top of the address space.
    pub fn of_pages(start: VirtAddr, pages: u64, step: PageSize) -> Option<Self> {
        let bytes = pages.checked_mul(step.bytes())?;
        let last = start.as_u64().checked_add(bytes.checked_sub(1)?)?;
        Some(FlushRange::new(start.as_u64(), last, step, pages))
    }

    /// Both ranges at once: the span of the two, the smaller step, their changes summed (what
    /// a batch of unmaps flushes).
    pub(crate) fn union(self, other: FlushRange) -> FlushRange {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        FlushRange {
            start: self.start.min(other.start),
            last: self.last.max(other.last),
            step: self.step.min(other.step),
            pages: self.pages + other.pages,
            tables: self.tables + other.tables,
        }
    }

    pub(crate) fn with_tables(mut self, tables: u64) -> Self {
        self.tables = tables;
        self
    }

    /// The first address changed.
    pub fn start(&self) -> VirtAddr {
        VirtAddr::new_truncate(self.start)
    }

    /// Mappings the change removed or added.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The smallest page size changed: the stride of [`FlushRange::addresses`].
    pub fn step(&self) -> PageSize {
        self.step
    }

    /// Page tables the change unlinked.
    pub fn tables_freed(&self) -> u64 {
        self.tables
    }

    /// Nothing to invalidate: no mapping changed and no table was unlinked.
    pub fn is_empty(&self) -> bool {
        self.pages == 0 && self.tables == 0
    }

    /// The `invlpg` addresses that cover the range: one per `step`.
    pub fn addresses(&self) -> impl Iterator<Item = VirtAddr> {
        let (start, step, n) = (self.start, self.step.bytes(), self.invlpg_count());
        (0..n).map(move |i| VirtAddr::new_truncate(start + i * step))
    }

    /// One `invlpg` per `step`; it also drops the paging-structure cache entries used for that
    /// address, which covers unlinked tables.
    pub fn invlpg_count(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            (self.last - self.start) / self.step.bytes() + 1
        }
    }

    /// The caller takes responsibility (e.g. the address space is not loaded, or a later full
    /// flush covers it).
    pub fn ignore(self) {}

    /// One `invlpg` per page. Ring 0 only.
    #[inline]
    pub fn flush_each(self) {
        self.flush_pages(PageFlush::Invlpg)
    }

    /// One invalidation of `how` per page. Ring 0 only.
    #[inline]
    pub fn flush_pages(self, how: PageFlush) {
        for addr in self.addresses() {
            how.flush(addr);
        }
    }

    /// Reload CR3: drops every non-global translation. Ring 0 only.
    #[inline]
    pub fn flush_all(self) {
        FullFlush::Cr3Reload.flush();
    }
}

/// How a policy invalidates one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFlush {
    /// `invlpg`: the address in the current PCID, and its paging-structure cache entries.
    Invlpg,
    /// INVPCID type 0: the address in one PCID, loaded or not (see
    /// [`PageFlush::invpcid_address`]).
    InvpcidAddress(u16),
}

impl PageFlush {
    /// INVPCID type 0 for `pcid`.
    ///
    /// # Safety
    /// The CPU must have INVPCID (CPUID.7.0:EBX.INVPCID) and `pcid` must be below 4096; with
    /// CR4.PCIDE clear only PCID 0 exists.
    pub const unsafe fn invpcid_address(pcid: u16) -> PageFlush {
        PageFlush::InvpcidAddress(pcid)
    }

    /// Invalidate `addr` this way. Ring 0 only.
    #[inline]
    pub fn flush(self, addr: VirtAddr) {
        use x86_64::instructions::tlb::{flush_pcid, InvPcidCommand, Pcid};
        match self {
            PageFlush::Invlpg => x86_64::instructions::tlb::flush(addr),
            PageFlush::InvpcidAddress(pcid) => {
                if let Ok(pcid) = Pcid::new(pcid) {
                    // SAFETY: whoever built this variant vouched for INVPCID.
                    unsafe { flush_pcid(InvPcidCommand::Address(addr, pcid)) }
                }
            }
        }
    }
}

/// How a range is invalidated once a policy has decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// One `invlpg` per step of the range (this many).
    PerPage(u64),
    /// One full flush (a CR3 reload: every non-global translation).
    Full,
    /// Nothing changed.
    Nothing,
}

/// How a policy flushes everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullFlush {
    /// Reload CR3: every non-global translation of the current address space.
    Cr3Reload,
    /// INVPCID type 1: every non-global translation of one PCID, loaded or not (see
    /// [`FullFlush::invpcid_context`]).
    InvpcidContext(u16),
    /// INVPCID type 2: every translation of every PCID, global ones too.
    InvpcidAll,
    /// INVPCID type 3: every non-global translation of every PCID.
    InvpcidAllButGlobal,
    /// Clear and set CR4.PGE: every translation, global ones too (see
    /// [`FullFlush::pge_toggle`]).
    PgeToggle,
}

impl FullFlush {
    /// INVPCID type 1 for `pcid`.
    ///
    /// # Safety
    /// The CPU must have INVPCID (CPUID.7.0:EBX.INVPCID) and `pcid` must be below 4096; with
    /// CR4.PCIDE clear only PCID 0 exists.
    pub const unsafe fn invpcid_context(pcid: u16) -> FullFlush {
        FullFlush::InvpcidContext(pcid)
    }

    /// INVPCID type 2.
    ///
    /// # Safety
    /// The CPU must have INVPCID.
    pub const unsafe fn invpcid_all() -> FullFlush {
        FullFlush::InvpcidAll
    }

    /// INVPCID type 3.
    ///
    /// # Safety
    /// The CPU must have INVPCID.
    pub const unsafe fn invpcid_all_but_global() -> FullFlush {
        FullFlush::InvpcidAllButGlobal
    }

    /// Toggle CR4.PGE off and on.
    ///
    /// # Safety
    /// Ring 0, and CR4.PGE must be set (toggling a clear PGE would set it: no flush, and
    /// global pages from then on); nothing may change CR4 between the read and the writes
    /// (interrupts that do must be off).
    pub const unsafe fn pge_toggle() -> FullFlush {
        FullFlush::PgeToggle
    }

    /// Flush this way. Ring 0 only.
    #[inline]
    pub fn flush(self) {
        use x86_64::instructions::tlb::{flush_pcid, InvPcidCommand, Pcid};
        use x86_64::registers::control::{Cr4, Cr4Flags};
        match self {
            FullFlush::Cr3Reload => x86_64::instructions::tlb::flush_all(),
            FullFlush::InvpcidContext(pcid) => {
                if let Ok(pcid) = Pcid::new(pcid) {
                    // SAFETY: whoever built this variant vouched for INVPCID.
                    unsafe { flush_pcid(InvPcidCommand::Single(pcid)) }
                }
            }
            // SAFETY: as above.
            FullFlush::InvpcidAll => unsafe { flush_pcid(InvPcidCommand::All) },
            // SAFETY: as above.
            FullFlush::InvpcidAllButGlobal => unsafe {
                flush_pcid(InvPcidCommand::AllExceptGlobal)
            },
            FullFlush::PgeToggle => {
                let flags = Cr4::read();
                // SAFETY: whoever built this variant vouched for ring 0 and a set PGE, which
                // the second write restores.
                unsafe {
                    Cr4::write(flags - Cr4Flags::PAGE_GLOBAL);
                    Cr4::write(flags);
                }
            }
        }
    }
}

/// Per page up to `ceiling` invalidations, one full flush above it.
///
/// # Example
///
/// [`calibrate`] with a [`FlushProbe`]; here a model of a CPU where a per-page round costs
/// 10 ticks a page and a full flush 300 ticks plus 2 a page (refills), instead of timings:
///
/// ```
/// use vystem_ptp::flush::{calibrate, crossover, regret, FlushProbe};
/// use vystem_ptp::{Decision, FlushPolicy, FlushRange, PageSize, VirtAddr};
///
/// struct Model;
/// impl FlushProbe for Model {
///     fn round(&mut self, pages: u64, full: bool) -> u64 {
///         if full { 300 + 2 * pages } else { 10 * pages }
///     }
/// }
///
/// let (policy, costs) = calibrate(&mut Model, 3);
/// assert_eq!(crossover(&costs), Some(64)); // full wins from 64 pages on (428 < 640)
/// assert_eq!(policy, FlushPolicy::with_ceiling(32));
/// assert_eq!(regret(32, &costs), 0.0);
/// assert!(regret(512, &costs) > 0.0); // always page by page
///
/// let range = FlushRange::of_pages(VirtAddr::new(0x1000), 32, PageSize::Size4KiB).unwrap();
/// assert_eq!(policy.decide(&range), Decision::PerPage(32));
/// range.ignore();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// The most per-page invalidations the policy issues before it flushes everything instead.
    pub ceiling: u64,
    /// How it invalidates one page.
    pub per_page: PageFlush,
    /// How it flushes everything.
    pub full: FullFlush,
}

impl FlushPolicy {
    /// Linux's fixed ceiling (`tlb_single_page_flush_ceiling`, x86), for every CPU.
    pub const LINUX: FlushPolicy = FlushPolicy::with_ceiling(33);

    /// `ceiling`, `invlpg` and a CR3 reload.
    pub const fn with_ceiling(ceiling: u64) -> FlushPolicy {
        FlushPolicy {
            ceiling,
            per_page: PageFlush::Invlpg,
            full: FullFlush::Cr3Reload,
        }
    }

    /// What this policy does with `range`, without doing it (no privileged instruction).
    pub fn decide(&self, range: &FlushRange) -> Decision {
        match range.invlpg_count() {
            0 => Decision::Nothing,
            n if n <= self.ceiling => Decision::PerPage(n),
            _ => Decision::Full,
        }
    }
}

impl FlushRange {
    /// Invalidate the range as `policy` decides; returns the decision. Ring 0 only.
    pub fn flush_with(self, policy: &FlushPolicy) -> Decision {
        let d = policy.decide(&self);
        match d {
            Decision::PerPage(_) => self.flush_pages(policy.per_page),
            Decision::Full => policy.full.flush(),
            Decision::Nothing => {}
        }
        d
    }
}

/// The cost of one flush + refill round over `pages` pages, per strategy (any unit, the same
/// for both): what [`crossover`], [`regret`], [`worst_ratio`] and [`calibrate`] decide from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundCost {
    /// Pages flushed and refilled in the round.
    pub pages: u64,
    /// Cost flushing page by page.
    pub per_page: f64,
    /// Cost with one full flush.
    pub full: f64,
}

impl RoundCost {
    /// What a policy with `ceiling` pays at this size: per page up to it, full above.
    pub fn at_ceiling(&self, ceiling: u64) -> f64 {
        if self.pages <= ceiling {
            self.per_page
        } else {
            self.full
        }
    }

    /// What always choosing the cheaper strategy pays.
    pub fn best(&self) -> f64 {
        self.per_page.min(self.full)
    }
}

/// The smallest measured page count from which the full flush is never dearer than flushing
/// page by page (`None`: per page was cheaper at every size measured). Points must be sorted
/// by `pages`.
pub fn crossover(costs: &[RoundCost]) -> Option<u64> {
    let mut answer = None;
    for c in costs.iter().rev() {
        if c.full <= c.per_page {
            answer = Some(c.pages);
        } else {
            break;
        }
    }
    answer
}

/// The ceiling a crossover calls for: flush page by page below it.
pub fn ceiling_for(crossover: Option<u64>, costs: &[RoundCost]) -> u64 {
    match crossover {
        // The largest measured size still cheaper page by page.
        Some(n) => costs
            .iter()
            .filter(|c| c.pages < n)
            .map(|c| c.pages)
            .max()
            .unwrap_or(0),
        None => costs.last().map_or(0, |c| c.pages),
    }
}

/// What a fixed `ceiling` costs over the measured sizes against always choosing the cheaper
/// strategy: the extra cost per round, summed over the sizes (0 = never worse).
pub fn regret(ceiling: u64, costs: &[RoundCost]) -> f64 {
    costs.iter().map(|c| c.at_ceiling(ceiling) - c.best()).sum()
}

/// A fixed `ceiling`'s worst cost over the best choice at any size measured, as a ratio (1.0:
/// always the best; no sizes: 1.0).
pub fn worst_ratio(ceiling: u64, costs: &[RoundCost]) -> f64 {
    costs
        .iter()
        .map(|c| c.at_ceiling(ceiling) / c.best())
        .fold(1.0f64, f64::max)
}

/// Timings the caller takes on its own CPU for [`calibrate`]: one flush + refill round over
/// `pages` pages of a working set, flushing page by page or all at once.
pub trait FlushProbe {
    /// Cost of one round (e.g. TSC ticks), page by page (`full` false) or one full flush.
    fn round(&mut self, pages: u64, full: bool) -> u64;
}

/// The sizes [`calibrate`] measures: powers of two up to 512 (a few thousand TLB refills in
/// all: well under a millisecond on hardware).
pub const CALIBRATION_SIZES: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Measure this CPU's crossover with `probe` (the best of `tries` rounds per size and
/// strategy) and return the policy it calls for, with the costs it measured.
pub fn calibrate(
    probe: &mut impl FlushProbe,
    tries: u32,
) -> (FlushPolicy, [RoundCost; CALIBRATION_SIZES.len()]) {
    let mut costs = CALIBRATION_SIZES.map(|pages| RoundCost {
        pages,
        per_page: f64::MAX,
        full: f64::MAX,
    });
    for _ in 0..tries.max(1) {
        for c in costs.iter_mut() {
            c.per_page = c.per_page.min(probe.round(c.pages, false) as f64);
            c.full = c.full.min(probe.round(c.pages, true) as f64);
        }
    }
    let ceiling = ceiling_for(crossover(&costs), &costs);
    (FlushPolicy::with_ceiling(ceiling), costs)
}

/// How many flushes of `pages` pages a workload asks for: one point of its size distribution
/// (what `ptplab flushes` reads from lifetime traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushSize {
    /// Pages one such flush invalidates.
    pub pages: u64,
    /// How many flushes of that size.
    pub count: u64,
}

/// The highest ceiling [`calibrate_for`] considers: the largest size [`calibrate`] measures.
/// Above it, a full flush (Linux's own ceiling is far below).
pub const MAX_CEILING: u64 = CALIBRATION_SIZES[CALIBRATION_SIZES.len() - 1];

/// One flush of `pages` pages with `ceiling`, costed from measured rounds (sorted by
/// `pages`): per page up to the ceiling, full above it, each strategy's cost linear between
/// the two measured sizes around `pages`. The ceiling goes no higher than [`MAX_CEILING`]
/// nor the largest size measured; beyond the largest size measured a flush costs that
/// size's full flush. `None`: no measurement.
pub fn cost_at(costs: &[RoundCost], pages: u64, ceiling: u64) -> Option<f64> {
    let last = costs.last()?;
    if pages > last.pages {
        return Some(last.full);
    }
    let per_page = pages <= ceiling.min(MAX_CEILING);
    let pick = |c: &RoundCost| if per_page { c.per_page } else { c.full };
    let i = costs.partition_point(|c| c.pages < pages);
    let hi = &costs[i];
    if hi.pages == pages || i == 0 {
        return Some(pick(hi));
    }
    let lo = &costs[i - 1];
    let t = (pages - lo.pages) as f64 / (hi.pages - lo.pages) as f64;
    Some(pick(lo) + (pick(hi) - pick(lo)) * t)
}

/// What `ceiling` costs per flush over a workload's flush sizes ([`cost_at`] each, weighted by
/// its count). `None`: no measurement, or no flush.
pub fn expected_cost(costs: &[RoundCost], sizes: &[FlushSize], ceiling: u64) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u64);
    for s in sizes.iter().filter(|s| s.count > 0) {
        sum += cost_at(costs, s.pages, ceiling)? * s.count as f64;
        n = n.saturating_add(s.count);
    }
    (n > 0).then(|| sum / n as f64)
}

/// The ceiling that costs a workload least per flush ([`expected_cost`] over its sizes), with
/// that cost: calibration from this CPU's rounds and the sizes its programs flush, where
/// [`calibrate`] weighs every size alike. Only the sizes the workload flushes (and 0) can
/// change the cost, so they are the candidates; among equal costs the smallest ceiling wins
/// (any ceiling up to the next flushed size costs the same). `None`: no measurement, or no
/// flush.
pub fn calibrate_for(costs: &[RoundCost], sizes: &[FlushSize]) -> Option<(FlushPolicy, f64)> {
    let top = costs.last()?.pages.min(MAX_CEILING);
    let mut best = (0, expected_cost(costs, sizes, 0)?);
    for s in sizes.iter().filter(|s| s.count > 0 && s.pages <= top) {
        let cost = expected_cost(costs, sizes, s.pages)?;
        if cost < best.1 || (cost == best.1 && s.pages < best.0) {
            best = (s.pages, cost);
        }
    }
    Some((FlushPolicy::with_ceiling(best.0), best.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(per_page: u64, full: u64) -> [RoundCost; 10] {
        // Per page: `per_page` for each page; full: a fixed cost plus a refill per page.
        CALIBRATION_SIZES.map(|n| RoundCost {
            pages: n,
            per_page: (n * per_page) as f64,
            full: (full + n * 2) as f64,
        })
    }

    #[test]
    fn the_policy_flushes_page_by_page_up_to_its_ceiling() {
        let p = FlushPolicy::with_ceiling(2);
        let r = |pages| {
            FlushRange::new(
                0x1000,
                0x1000 + pages * 4096 - 1,
                crate::PageSize::Size4KiB,
                pages,
            )
        };
        assert_eq!(p.decide(&r(2)), Decision::PerPage(2));
        assert_eq!(p.decide(&r(3)), Decision::Full);
        let empty = FlushRange::new(0x1000, 0x1000, crate::PageSize::Size4KiB, 0);
        assert_eq!(p.decide(&empty), Decision::Nothing);
        assert_eq!(FlushPolicy::LINUX.decide(&r(33)), Decision::PerPage(33));
        assert_eq!(FlushPolicy::LINUX.decide(&r(34)), Decision::Full);
    }

    #[test]
    fn crossover_is_where_the_full_flush_stays_cheaper() {
        // Per page 10 each, full 300 + 2 per page: full wins from 64 pages on (640 > 428).
        let c = costs(10, 300);
        assert_eq!(crossover(&c), Some(64));
        assert_eq!(ceiling_for(Some(64), &c), 32);
        // A noisy point below the real crossover does not count: full must stay cheaper.
        let mut noisy = c;
        noisy[1].full = 1.0;
        assert_eq!(crossover(&noisy), Some(64));
        // Per page always cheaper: no crossover, flush page by page up to the largest size.
        assert_eq!(crossover(&costs(1, 10_000)), None);
        assert_eq!(ceiling_for(None, &costs(1, 10_000)), 512);
    }

    #[test]
    fn regret_is_zero_at_the_measured_ceiling_and_grows_away_from_it() {
        let c = costs(10, 300);
        assert_eq!(regret(32, &c), 0.0);
        // Ceiling 64: at 64 pages per page costs 640 instead of 428.
        assert_eq!(regret(64, &c), 640.0 - 428.0);
        // Ceiling 16: at 32 pages full costs 364 instead of 320.
        assert_eq!(regret(16, &c), 364.0 - 320.0);
        assert!(regret(33, &c) == 0.0 && regret(0, &c) > regret(16, &c));
    }

    #[test]
    fn worst_ratio_is_one_at_the_measured_ceiling_and_names_the_worst_size() {
        let c = costs(10, 300);
        assert_eq!(worst_ratio(32, &c), 1.0);
        // Ceiling 0: at 1 page full costs 302 instead of 10.
        assert_eq!(worst_ratio(0, &c), 302.0 / 10.0);
        // Ceiling 64: at 64 pages 640 instead of 428.
        assert_eq!(worst_ratio(64, &c), 640.0 / 428.0);
        assert_eq!(worst_ratio(5, &[]), 1.0);
    }

    #[test]
    fn a_policy_names_both_ways_it_flushes() {
        // SAFETY: only built, never run.
        let p = FlushPolicy {
            per_page: unsafe { PageFlush::invpcid_address(1) },
            full: unsafe { FullFlush::pge_toggle() },
            ..FlushPolicy::LINUX
        };
        assert_eq!(
            (p.ceiling, p.per_page, p.full),
            (33, PageFlush::InvpcidAddress(1), FullFlush::PgeToggle)
        );
        assert_eq!(FlushPolicy::LINUX.per_page, PageFlush::Invlpg);
    }

    fn at(pages: u64, count: u64) -> FlushSize {
        FlushSize { pages, count }
    }

    #[test]
    fn a_flush_between_measured_sizes_costs_the_line_between_them() {
        // Per page 10 a page, full 300 + 2 a page, measured at powers of two up to 512.
        let c = costs(10, 300);
        assert_eq!(cost_at(&c, 48, 64), Some(480.0)); // 320 .. 640, halfway
        assert_eq!(cost_at(&c, 48, 33), Some(396.0)); // 364 .. 428, halfway
        assert_eq!(cost_at(&c, 64, 64), Some(640.0)); // a measured size: its cost
        assert_eq!(cost_at(&c, 3, 0), Some(306.0)); // 304 .. 308
                                                    // Above the largest measured size: a full flush at its cost, whatever the ceiling.
        assert_eq!(cost_at(&c, 4096, u64::MAX), Some(300.0 + 1024.0));
        // Above MAX_CEILING a full flush, even where a larger size was measured.
        let mut wide = c.to_vec();
        wide.push(RoundCost {
            pages: 1024,
            per_page: 10240.0,
            full: 2348.0,
        });
        assert_eq!(cost_at(&wide, 768, u64::MAX), Some((1324.0 + 2348.0) / 2.0));
        assert_eq!(cost_at(&wide, 512, u64::MAX), Some(5120.0));
        assert_eq!(cost_at(&[], 1, 1), None);
    }

    #[test]
    fn the_expected_cost_weighs_each_size_by_its_flushes() {
        let c = costs(10, 300);
        // Three one-page flushes and one of 64 pages, ceiling 33: (3 * 10 + 428) / 4.
        let w = [at(1, 3), at(64, 1), at(7, 0)];
        assert_eq!(expected_cost(&c, &w, 33), Some((30.0 + 428.0) / 4.0));
        assert_eq!(expected_cost(&c, &[at(5, 0)], 33), None);
        assert_eq!(expected_cost(&[], &w, 33), None);
    }

    #[test]
    fn weighted_calibration_picks_the_flushed_size_that_costs_least() {
        let c = costs(10, 300);
        // Mostly 40-page flushes, where the full flush is cheaper (380 against 400): the
        // ceiling stays below 40; the one-page flushes keep it at 1, not 0.
        let (p, cost) = calibrate_for(&c, &[at(1, 10), at(40, 90)]).unwrap();
        assert_eq!(p.ceiling, 1);
        assert_eq!(cost, (10.0 * 10.0 + 90.0 * 380.0) / 100.0);
        // Where 40 pages are cheaper page by page (per page 5), the ceiling takes them in.
        assert_eq!(
            calibrate_for(&costs(5, 300), &[at(1, 10), at(40, 90)])
                .unwrap()
                .0
                .ceiling,
            40
        );
        // Above the largest measured size no ceiling helps: it stays where the rest puts it.
        assert_eq!(calibrate_for(&c, &[at(4096, 5)]).unwrap().0.ceiling, 0);
        assert_eq!(calibrate_for(&c, &[]), None);
    }

    struct Model {
        per_page: u64,
        full: u64,
        calls: u32,
    }

    impl FlushProbe for Model {
        fn round(&mut self, pages: u64, full: bool) -> u64 {
            self.calls += 1;
            // Every third call is disturbed (each size and strategy in one of three tries):
            // the minimum of the tries must not see it.
            let noise = if self.calls.is_multiple_of(3) {
                1000
            } else {
                0
            };
            noise
                + if full {
                    self.full + pages * 2
                } else {
                    pages * self.per_page
                }
        }
    }

    #[test]
    fn calibration_finds_the_crossover_of_the_cpu_it_measures() {
        let mut cpu = Model {
            per_page: 10,
            full: 300,
            calls: 0,
        };
        let (policy, measured) = calibrate(&mut cpu, 3);
        assert_eq!(policy, FlushPolicy::with_ceiling(32));
        assert_eq!(
            measured[6],
            RoundCost {
                pages: 64,
                per_page: 640.0,
                full: 428.0
            }
        );
        assert_eq!(cpu.calls, 3 * 2 * 10);
        let mut cheap_flush = Model {
            per_page: 100,
            full: 50,
            calls: 0,
        };
        assert_eq!(
            calibrate(&mut cheap_flush, 2).0,
            FlushPolicy::with_ceiling(0)
        );
    }
}
