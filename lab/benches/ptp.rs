//! What does building a PTP cost, per pool size? A modifiable PTP (the pool self-mapped RW+NX)
//! against an unmodifiable one (root only), from a fresh pool each run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lab::allocator::BitmapAllocator;
use lab::ptp::Ptp;
use lab::sim::SimMemory;
use std::hint::black_box;
use std::time::{Duration, Instant};
use x86_64::VirtAddr;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("ptp/build");
    for n in [1024u32, 4096, 16384] {
        let mem = SimMemory::new(n as u64);
        let pool = mem.pool(0, n).unwrap();
        let self_map = VirtAddr::new(0xffff_ff00_0000_0000);
        g.bench_with_input(BenchmarkId::new("modifiable", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut alloc = Box::new(BitmapAllocator::new(n));
                for _ in 0..iters {
                    alloc.reset_from_counter(n, 1); // a fresh bitmap, untimed; the PTP borrows it
                    let t = Instant::now();
                    let ptp =
                        Ptp::modifiable(black_box(pool), &mut *alloc, black_box(self_map)).unwrap();
                    total += t.elapsed();
                    black_box(ptp.self_map_tables());
                }
                total
            })
        });
        g.bench_with_input(BenchmarkId::new("unmodifiable", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut alloc = Box::new(BitmapAllocator::new(n));
                for _ in 0..iters {
                    alloc.reset_from_counter(n, 1);
                    let t = Instant::now();
                    let ptp = Ptp::unmodifiable(black_box(pool), &mut *alloc);
                    total += t.elapsed();
                    black_box(ptp.cr3_frame());
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = ptp;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(ptp);
