//! The cross-CPU part of the flush policy: which CPUs must forget a changed mapping, and how
//! to reach them. Before AMD's INVLPGB, x86 had one way: an inter-processor interrupt to each
//! CPU that may cache the address space, each running its own [`FlushPolicy`] and
//! acknowledging. INVLPGB + TLBSYNC broadcasts the invalidation in hardware instead; whether
//! it beats the IPIs depends on the CPU count, which [`broadcast_from`] measures.

use crate::flush::{Decision, FlushPolicy, FlushRange, RoundCost};

/// A set of CPUs by index (bit `i` = CPU `i`; 0 is the boot CPU), up to 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: CpuSet = CpuSet(0);

    /// CPUs `0..n` (all 64 for `n >= 64`).
    pub const fn first(n: u32) -> CpuSet {
        if n >= 64 {
            CpuSet(u64::MAX)
        } else {
            CpuSet((1u64 << n) - 1)
        }
    }

    /// CPUs `from..to` (empty when `to <= from`; indices above 63 are not in any set).
    pub const fn range(from: u32, to: u32) -> CpuSet {
        CpuSet(CpuSet::first(to).0 & !CpuSet::first(from).0)
    }

    /// Whether CPU `cpu` is in the set (never for `cpu >= 64`).
    pub const fn contains(self, cpu: u32) -> bool {
        cpu < 64 && self.0 & (1 << cpu) != 0
    }

    /// The set plus `cpu` (unchanged for `cpu >= 64`).
    #[must_use]
    pub const fn with(self, cpu: u32) -> CpuSet {
        if cpu < 64 {
            CpuSet(self.0 | 1 << cpu)
        } else {
            self
        }
    }

    /// The set minus `cpu`.
    #[must_use]
    pub const fn without(self, cpu: u32) -> CpuSet {
        if cpu < 64 {
            CpuSet(self.0 & !(1 << cpu))
        } else {
            self
        }
    }

    /// Number of CPUs in the set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set has no CPU.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The CPUs in the set, lowest index first.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&i| self.contains(i))
    }
}

/// How one shootdown reaches the other CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// No other CPU may cache the address space: the local flush is all.
    Nobody,
    /// An IPI to each of `targets`; each runs `each` (its own policy's decision) and acknowledges.
    Ipi {
        /// The CPUs to interrupt.
        targets: CpuSet,
        /// What each of them does with the range.
        each: Decision,
    },
    /// One INVLPGB broadcast over the range (every CPU), then TLBSYNC.
    Broadcast,
}

/// Per-CPU flush policy plus the cross-CPU choice.
///
/// # Example
///
/// ```
/// use vystem_ptp::flush::RoundCost;
/// use vystem_ptp::shootdown::{broadcast_from, CpuSet, Reach, ShootdownPolicy};
/// use vystem_ptp::{Decision, FlushPolicy, FlushRange, PageSize, VirtAddr};
///
/// let range = FlushRange::of_pages(VirtAddr::new(0x1000), 8, PageSize::Size4KiB).unwrap();
/// // IPIs only: CPU 0 changed the tables, CPUs 1 and 3 run the address space too.
/// let ipi = ShootdownPolicy::ipi(FlushPolicy::LINUX);
/// let active = CpuSet::EMPTY.with(0).with(1).with(3);
/// assert_eq!(
///     ipi.plan(active, 0, &range),
///     Reach::Ipi { targets: CpuSet(0b1010), each: Decision::PerPage(8) }
/// );
/// assert_eq!(ipi.plan(CpuSet::first(1), 0, &range), Reach::Nobody);
///
/// // Measured (here: modelled) costs per target count: IPIs 1000 each, a broadcast 2500.
/// let costs = [1u64, 2, 4, 8].map(|n| RoundCost { pages: n, per_page: 1000.0 * n as f64, full: 2500.0 });
/// let with_invlpgb = ShootdownPolicy { broadcast_from: broadcast_from(&costs), ..ipi };
/// assert_eq!(with_invlpgb.broadcast_from, Some(4));
/// assert_eq!(with_invlpgb.plan(CpuSet::first(5), 0, &range), Reach::Broadcast);
/// range.ignore();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShootdownPolicy {
    /// What each CPU does with a range (the sender's own flush, and each target's).
    pub local: FlushPolicy,
    /// From how many target CPUs one INVLPGB broadcast is cheaper than the IPIs (measured:
    /// [`broadcast_from`]); `None` where the CPU has no INVLPGB or it never won.
    pub broadcast_from: Option<u32>,
}

impl ShootdownPolicy {
    /// IPIs only (no INVLPGB), each target under `local`.
    pub const fn ipi(local: FlushPolicy) -> ShootdownPolicy {
        ShootdownPolicy {
            local,
            broadcast_from: None,
        }
    }

    /// How to make every CPU in `active` other than `this` forget `range`. `active`: the CPUs
    /// that may cache the address space (those that have loaded it since it was last flushed
    /// everywhere); the others are left alone.
    pub fn plan(&self, active: CpuSet, this: u32, range: &FlushRange) -> Reach {
        let targets = active.without(this);
        let each = self.local.decide(range);
        if targets.is_empty() || each == Decision::Nothing {
            return Reach::Nobody;
        }
        match self.broadcast_from {
            Some(n) if targets.len() >= n => Reach::Broadcast,
            _ => Reach::Ipi { targets, each },
        }
    }
}

/// One measured point: the cost of reaching `targets` CPUs by IPI (`per_page` field) and by
/// broadcast (`full` field), reusing [`RoundCost`] with `pages` = the target count.
pub type TargetCost = RoundCost;

/// The smallest measured target count from which the broadcast is never dearer than the IPIs
/// (`None`: the IPIs won at every count measured). Points sorted by target count.
pub fn broadcast_from(costs: &[TargetCost]) -> Option<u32> {
    crate::flush::crossover(costs).map(|n| n.min(u32::MAX as u64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_size::PageSize;

    /// `pages` 4 KiB pages from 0x1000 (0: a change that touched no mapping).
    fn range(pages: u64) -> FlushRange {
        FlushRange::new(
            0x1000,
            0x1000 + pages.max(1) * 4096 - 1,
            PageSize::Size4KiB,
            pages,
        )
    }

    #[test]
    fn a_range_of_pages_is_checked() {
        use x86_64::VirtAddr;
        let r = FlushRange::of_pages(VirtAddr::new(0x20_0000), 3, PageSize::Size2MiB).unwrap();
        assert_eq!(
            (r.pages(), r.invlpg_count(), r.start().as_u64()),
            (3, 3, 0x20_0000)
        );
        assert_eq!(
            FlushRange::of_pages(VirtAddr::new(0x1000), 0, PageSize::Size4KiB),
            None
        );
        let top = VirtAddr::new(0xffff_ffff_ffff_f000);
        assert!(FlushRange::of_pages(top, 1, PageSize::Size4KiB).is_some());
        assert_eq!(FlushRange::of_pages(top, 2, PageSize::Size4KiB), None);
        assert_eq!(
            FlushRange::of_pages(top, u64::MAX, PageSize::Size1GiB),
            None
        );
    }

    #[test]
    fn sets_count_and_name_their_cpus() {
        assert_eq!(CpuSet::first(3), CpuSet(0b111));
        assert_eq!(CpuSet::first(64), CpuSet(u64::MAX));
        let mut it = CpuSet::range(1, 4).iter();
        assert_eq!(
            (it.next(), it.next(), it.next(), it.next()),
            (Some(1), Some(2), Some(3), None)
        );
        assert_eq!(CpuSet::range(4, 1), CpuSet::EMPTY);
        assert_eq!(CpuSet::EMPTY.with(70), CpuSet::EMPTY);
        assert!(!CpuSet(u64::MAX).contains(64));
        assert_eq!(CpuSet::first(4).without(0).len(), 3);
    }

    #[test]
    fn only_other_active_cpus_are_interrupted_each_with_its_policy() {
        let p = ShootdownPolicy::ipi(FlushPolicy::with_ceiling(32));
        let active = CpuSet(0b1011); // CPUs 0, 1, 3 run the address space; 2 does not
        assert_eq!(
            p.plan(active, 0, &range(8)),
            Reach::Ipi {
                targets: CpuSet(0b1010),
                each: Decision::PerPage(8)
            }
        );
        assert_eq!(
            p.plan(active, 1, &range(33)),
            Reach::Ipi {
                targets: CpuSet(0b1001),
                each: Decision::Full
            }
        );
        assert_eq!(p.plan(CpuSet(0b1), 0, &range(8)), Reach::Nobody);
        assert_eq!(p.plan(active, 0, &range(0)), Reach::Nobody);
    }

    #[test]
    fn the_broadcast_takes_over_from_the_measured_target_count() {
        let costs = [1u64, 2, 3, 4, 7].map(|n| RoundCost {
            pages: n,
            per_page: 1000.0 * n as f64,
            full: 2500.0,
        });
        assert_eq!(broadcast_from(&costs), Some(3));
        let p = ShootdownPolicy {
            local: FlushPolicy::LINUX,
            broadcast_from: broadcast_from(&costs),
        };
        let all = CpuSet::first(8);
        assert!(matches!(
            p.plan(CpuSet::first(3), 0, &range(1)),
            Reach::Ipi { .. }
        ));
        assert_eq!(p.plan(CpuSet::first(4), 0, &range(1)), Reach::Broadcast);
        assert_eq!(p.plan(all, 0, &range(1)), Reach::Broadcast);
        let never = costs.map(|c| RoundCost { full: 1e9, ..c });
        assert_eq!(broadcast_from(&never), None);
    }
}
