//! The flush ceiling calibrated for a workload's flush sizes (`flush::calibrate_for`), held to
//! what it promises on random CPUs (measured rounds) and random workloads.

use proptest::prelude::*;
use vystem_ptp::flush::{calibrate_for, cost_at, expected_cost, RoundCost, MAX_CEILING};
use vystem_ptp::FlushSize;

/// Rounds measured at increasing page counts, each strategy's cost anywhere in 1..1e6.
fn cpus() -> impl Strategy<Value = Vec<RoundCost>> {
    prop::collection::btree_set(1u64..2048, 1..12).prop_flat_map(|sizes| {
        let n = sizes.len();
        (
            Just(sizes),
            prop::collection::vec((1u32..1_000_000, 1u32..1_000_000), n),
        )
            .prop_map(|(sizes, c)| {
                sizes
                    .into_iter()
                    .zip(c)
                    .map(|(pages, (p, f))| RoundCost {
                        pages,
                        per_page: p.into(),
                        full: f.into(),
                    })
                    .collect()
            })
    })
}

fn workloads() -> impl Strategy<Value = Vec<FlushSize>> {
    prop::collection::vec(
        (1u64..4096, 0u64..1000).prop_map(|(pages, count)| FlushSize { pages, count }),
        1..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn on_its_own_workload_the_weighted_ceiling_beats_every_fixed_one(
        costs in cpus(), sizes in workloads(), fixed in prop_oneof![0u64..600, Just(33), Just(u64::MAX)]
    ) {
        match calibrate_for(&costs, &sizes) {
            None => prop_assert!(sizes.iter().all(|s| s.count == 0)),
            Some((policy, cost)) => {
                prop_assert_eq!(Some(cost), expected_cost(&costs, &sizes, policy.ceiling));
                prop_assert!(policy.ceiling <= costs.last().unwrap().pages.min(MAX_CEILING));
                prop_assert!(cost <= expected_cost(&costs, &sizes, fixed).unwrap());
            }
        }
    }

    #[test]
    fn with_all_the_weight_on_one_size_it_picks_the_cheaper_strategy_there(
        costs in cpus(), pick in any::<prop::sample::Index>(), between in any::<bool>(), count in 1u64..100
    ) {
        // A measured size, or one between two (costed on the line between them); above
        // MAX_CEILING only a full flush is considered.
        let costs: Vec<RoundCost> = costs.into_iter().filter(|c| c.pages <= MAX_CEILING).collect();
        prop_assume!(!costs.is_empty());
        let i = pick.index(costs.len());
        let pages = match costs.get(i + 1) {
            Some(next) if between && next.pages > costs[i].pages + 1 => costs[i].pages + 1,
            _ => costs[i].pages,
        };
        let (policy, _) = calibrate_for(&costs, &[FlushSize { pages, count }]).unwrap();
        let per_page = cost_at(&costs, pages, u64::MAX).unwrap();
        let full = cost_at(&costs, pages, 0).unwrap();
        // Page by page only where it is cheaper (a tie flushes everything).
        prop_assert_eq!(policy.ceiling >= pages, per_page < full, "{} pages: {} / {}", pages, per_page, full);
    }
}
