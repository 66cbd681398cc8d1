//! The benchmarks and contenders the tools ask for by role ("the shootdown benchmark", "the
//! lab's bitmap contender"), each name taken from where it is declared: a report, a table or a
//! plot names none of them itself (`ptp-host facts`, key `roles`).

use super::contender::Contender;
use super::{alloc, churn, map, ptp, shootdown, tlb};
use vystem_ptp::{BitmapAllocator, BumpAllocator};

/// A name and the role the tools know it by.
pub struct Role {
    pub role: &'static str,
    pub name: &'static str,
    pub what: &'static str,
}

const fn role(role: &'static str, name: &'static str, what: &'static str) -> Role {
    Role { role, name, what }
}

pub const BENCHES: &[Role] = &[
    role(
        "pool_build",
        ptp::BUILD.name,
        "building a modifiable PTP: what a larger pool costs at boot",
    ),
    role(
        "bitmap_init",
        alloc::BITMAP_INIT.name,
        "the bitmap allocator set up from the bootloader's counter",
    ),
    role(
        "bitmap_alloc_full",
        alloc::BITMAP_CHURN_95.name,
        "a bitmap allocation with the pool 95 % full",
    ),
    role(
        "unmap_4KiB",
        map::UNMAP_1GIB_4KIB.name,
        "unmapping 1 GiB of 4 KiB pages",
    ),
    role(
        "unmap_2MiB",
        map::UNMAP_64GIB_2MIB.name,
        "unmapping 64 GiB of 2 MiB pages",
    ),
    role(
        "unmap_1GiB",
        map::UNMAP_64GIB_1GIB.name,
        "unmapping 64 GiB of 1 GiB pages",
    ),
    role(
        "churn",
        churn::CHURN.name,
        "bump against bitmap under a changing mapping set",
    ),
    role(
        "shootdown",
        shootdown::SHOOTDOWN.name,
        "the cross-CPU TLB shootdown by IPI",
    ),
    role(
        "shootdown_invlpgb",
        shootdown::INVLPGB.name,
        "the cross-CPU shootdown by INVLPGB broadcast",
    ),
    role(
        "crossover",
        tlb::CROSSOVER.name,
        "where a full flush starts to beat per-page invalidation",
    ),
];

pub const CONTENDERS: &[Role] = &[
    role(
        "bitmap",
        <BitmapAllocator as Contender>::NAME,
        "the lab's bitmap allocator",
    ),
    role(
        "bump",
        <BumpAllocator as Contender>::NAME,
        "the lab's bump allocator (Vystem's own)",
    ),
    role(
        "modifiable_ptp",
        ptp::MODIFIABLE,
        "a modifiable PTP (self-mapped)",
    ),
    role("unmodifiable_ptp", ptp::UNMODIFIABLE, "an unmodifiable PTP"),
    role(
        "shootdown_ipi",
        shootdown::IPI,
        "a shootdown's round trip by IPI",
    ),
    role("map_range", map::MAP_RANGE, "our batched map_range"),
    role(
        "peer_map",
        map::PEER_MAP_TO,
        "the x86_64 crate's map_to loop",
    ),
    role(
        "store_limit",
        map::STORE_LIMIT,
        "a memset of the bytes a mapping writes",
    ),
    role(
        "unmap_bitmap",
        map::UNMAP_BITMAP,
        "our unmap_range, emptied tables freed to the bitmap",
    ),
    role(
        "unmap_bump",
        map::UNMAP_BUMP,
        "our unmap_range with bump (tables kept)",
    ),
    role(
        "peer_unmap",
        map::PEER_UNMAP,
        "the x86_64 crate's unmap loop and clean_up",
    ),
    role(
        "read_clear_limit",
        map::READ_CLEAR_LIMIT,
        "every entry read and cleared",
    ),
];
