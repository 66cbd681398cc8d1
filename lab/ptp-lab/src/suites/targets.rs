//! The speed targets, in one table keyed by benchmark and contender: each name taken from where
//! the suite declares it. What a target is and how it is judged: `crate::target`.

use super::alloc;
use super::contender::{self, Contender};
use super::{map, peers};
use crate::platform::Place;
use crate::target::{Target, Want};
use vystem_ptp::{BitmapAllocator, BumpAllocator};

pub static TARGETS: &[Target] = &[
    Target {
        name: "map_range >= 15x faster than x86_64 map_to (1 GiB of 4 KiB pages)",
        bench: map::MAP_1GIB_4KIB.name,
        ours: map::MAP_RANGE,
        other: map::PEER_MAP_TO,
        want: Want::FasterBy(15.0),
        on: Place::Host,
    },
    Target {
        name: "map_range >= 10x faster than x86_64 map_to (64 GiB of 2 MiB pages)",
        bench: map::MAP_64GIB_2MIB.name,
        ours: map::MAP_RANGE,
        other: map::PEER_MAP_TO,
        want: Want::FasterBy(10.0),
        on: Place::Host,
    },
    Target {
        name: "map_range within 1.1x of the store limit (1 GiB of 4 KiB pages)",
        bench: map::MAP_1GIB_4KIB.name,
        ours: map::MAP_RANGE,
        other: map::STORE_LIMIT,
        want: Want::WithinOf(1.1),
        on: Place::Host,
    },
    Target {
        name: "map_range within 1.1x of the store limit (64 GiB of 2 MiB pages)",
        bench: map::MAP_64GIB_2MIB.name,
        ours: map::MAP_RANGE,
        other: map::STORE_LIMIT,
        want: Want::WithinOf(1.1),
        on: Place::Host,
    },
    Target {
        name: "warm map_range (tables present) within 1.2x of its limit, every entry read then written (1 GiB of 4 KiB pages)",
        bench: map::MAP_1GIB_4KIB.name,
        ours: map::MAP_RANGE_WARM,
        other: map::READ_STORE_LIMIT,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "warm map_range (tables present) within 1.2x of its limit, every entry read then written (64 GiB of 2 MiB pages)",
        bench: map::MAP_64GIB_2MIB.name,
        ours: map::MAP_RANGE_WARM,
        other: map::READ_STORE_LIMIT,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "unmap_range >= 20x faster than x86_64 unmap + clean_up (1 GiB of 4 KiB pages)",
        bench: map::UNMAP_1GIB_4KIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::PEER_UNMAP,
        want: Want::FasterBy(20.0),
        on: Place::Host,
    },
    Target {
        name: "unmap_range >= 20x faster than x86_64 unmap + clean_up (64 GiB of 2 MiB pages)",
        bench: map::UNMAP_64GIB_2MIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::PEER_UNMAP,
        want: Want::FasterBy(20.0),
        on: Place::Host,
    },
    // 1 GiB pages: 64 entries a call, so the walk's fixed cost per call dominates; judged
    // on its own terms (issue 34: it was 13.4x its limit, 4.7x the peer, before the emptiness
    // scans were made vectorised and skipped where they cannot matter).
    Target {
        name: "unmap_range >= 10x faster than x86_64 unmap + clean_up (64 GiB of 1 GiB pages)",
        bench: map::UNMAP_64GIB_1GIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::PEER_UNMAP,
        want: Want::FasterBy(10.0),
        on: Place::Host,
    },
    Target {
        name: "unmap_range, bitmap, within 8x of its limit, every entry read and cleared (64 GiB of 1 GiB pages: 64 entries a call)",
        bench: map::UNMAP_64GIB_1GIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::READ_CLEAR_LIMIT,
        want: Want::WithinOf(8.0),
        on: Place::Host,
    },
    // Free after flush (issue 34): holding the emptied tables until the flush, then releasing
    // them, against freeing them as they are cleared.
    Target {
        name: "deferred free within 1.03x of freeing at once (1 GiB of 4 KiB pages)",
        bench: map::UNMAP_1GIB_4KIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::UNMAP_BITMAP_NOW,
        want: Want::WithinOf(1.03),
        on: Place::Host,
    },
    Target {
        name: "deferred free within 1.03x of freeing at once (64 GiB of 2 MiB pages)",
        bench: map::UNMAP_64GIB_2MIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::UNMAP_BITMAP_NOW,
        want: Want::WithinOf(1.03),
        on: Place::Host,
    },
    // With 4 KiB pages reading each entry as it is cleared costs next to nothing over the
    // memset (1.05x): the store limit, which a limit replaces only where it prevents the target.
    Target {
        name: "unmap_range, bitmap, within 1.2x of the store limit, its bytes written (1 GiB of 4 KiB pages)",
        bench: map::UNMAP_1GIB_4KIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::STORE_LIMIT_BITMAP,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "unmap_range, bump, within 1.2x of the store limit, its bytes written (1 GiB of 4 KiB pages)",
        bench: map::UNMAP_1GIB_4KIB.name,
        ours: map::UNMAP_BUMP,
        other: map::STORE_LIMIT,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "unmap_range, bitmap, within 1.2x of its limit, every entry read and cleared (64 GiB of 2 MiB pages)",
        bench: map::UNMAP_64GIB_2MIB.name,
        ours: map::UNMAP_BITMAP,
        other: map::READ_CLEAR_LIMIT,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "unmap_range, bump, within 1.2x of its limit, every entry read and cleared (64 GiB of 2 MiB pages)",
        bench: map::UNMAP_64GIB_2MIB.name,
        ours: map::UNMAP_BUMP,
        other: map::READ_CLEAR_LIMIT,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "bitmap allocation >= 2x faster than bitmap-allocator (fill, one page a call)",
        bench: alloc::BITMAP_ALLOC_SEQ.name,
        ours: <BitmapAllocator as Contender>::NAME,
        other: peers::BITMAP_ALLOCATOR,
        want: Want::FasterBy(2.0),
        on: Place::Host,
    },
    Target {
        name: "bitmap allocation >= 2x faster than bitmap-allocator (fill, each its call for 64 pages at once)",
        bench: alloc::BITMAP_ALLOC_SEQ.name,
        ours: contender::BITMAP_BATCH,
        other: peers::BITMAP_CONTIGUOUS,
        want: Want::FasterBy(2.0),
        on: Place::Host,
    },
    Target {
        name: "bitmap free+alloc >= 2x faster than bitmap-allocator (50 % random fill)",
        bench: alloc::BITMAP_CHURN_50.name,
        ours: <BitmapAllocator as Contender>::NAME,
        other: peers::BITMAP_ALLOCATOR,
        want: Want::FasterBy(2.0),
        on: Place::Host,
    },
    Target {
        name: "bump allocation within 1.2x of a bare counter",
        bench: alloc::BUMP_ALLOC.name,
        ours: <BumpAllocator as Contender>::NAME,
        other: <contender::BareCounter as Contender>::NAME,
        want: Want::WithinOf(1.2),
        on: Place::Host,
    },
    Target {
        name: "in-kernel map_range >= 10x faster than x86_64 map_to (1 GiB of 4 KiB pages)",
        bench: map::MAP_1GIB_4KIB.name,
        ours: map::MAP_RANGE,
        other: map::PEER_MAP_TO,
        want: Want::FasterBy(10.0),
        on: Place::Kernel,
    },
    Target {
        name: "in-kernel map_range >= 10x faster than x86_64 map_to (64 GiB of 2 MiB pages)",
        bench: map::MAP_64GIB_2MIB.name,
        ours: map::MAP_RANGE,
        other: map::PEER_MAP_TO,
        want: Want::FasterBy(10.0),
        on: Place::Kernel,
    },
];

/// The targets on a value a benchmark computes, beside the code that judges them.
pub use super::tlb::VALUE_TARGETS;
