//! Which page allocator for which job? Our bump and bitmap allocators side by side with a bare
//! counter (the floor for bump), the `bitmap-allocator` crate (BitAlloc4K/64K) and
//! `buddy_system_allocator`'s FrameAllocator. Throughput is per allocator operation.
//! Speed targets (checked by `scripts/bench.sh --host` via tools/ptplab/targets.py):
//! bitmap alloc >= 2x faster than bitmap-allocator; bump within 1.2x of a bare counter.

use bitmap_allocator::{BitAlloc, BitAlloc4K, BitAlloc64K};
use buddy_system_allocator::FrameAllocator as Buddy;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lab::allocator::{BitmapAllocator, BumpAllocator, PageAllocator};
use std::hint::black_box;
use std::time::{Duration, Instant};

const N: u32 = 4096;

/// A minimal page-allocator view of each contender, so one driver times them all alike.
trait Contender {
    fn fresh() -> Self;
    fn alloc(&mut self) -> Option<u32>;
    fn free(&mut self, page: u32);
}

impl Contender for BitmapAllocator {
    fn fresh() -> Self {
        BitmapAllocator::new(N)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.allocate().ok()
    }
    #[inline]
    fn free(&mut self, page: u32) {
        PageAllocator::free(self, page).unwrap()
    }
}

impl Contender for BumpAllocator {
    fn fresh() -> Self {
        BumpAllocator::new(N)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.allocate().ok()
    }
    fn free(&mut self, _: u32) {}
}

/// The floor for a bump allocator: an increment and a bound check, nothing else. The bound is
/// a run-time value, as the bump allocator's capacity is.
struct BareCounter {
    next: u32,
    cap: u32,
}
impl Contender for BareCounter {
    fn fresh() -> Self {
        BareCounter {
            next: 1,
            cap: black_box(N),
        }
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        (self.next < self.cap).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn free(&mut self, _: u32) {}
}

struct Peer4K(Box<BitAlloc4K>);
impl Contender for Peer4K {
    fn fresh() -> Self {
        let mut b = Box::<BitAlloc4K>::default();
        b.insert(1..N as usize); // page 0 is the root, as in our pools
        Peer4K(b)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.0.alloc().map(|p| p as u32)
    }
    #[inline]
    fn free(&mut self, page: u32) {
        assert!(self.0.dealloc(page as usize));
    }
}

struct PeerBuddy(Buddy);
impl Contender for PeerBuddy {
    fn fresh() -> Self {
        let mut b = Buddy::new();
        b.add_frame(1, N as usize);
        PeerBuddy(b)
    }
    #[inline]
    fn alloc(&mut self) -> Option<u32> {
        self.0.alloc(1).map(|p| p as u32)
    }
    #[inline]
    fn free(&mut self, page: u32) {
        self.0.dealloc(page as usize, 1)
    }
}

/// Time `iters` runs of `routine` on a fresh, prepared contender each; preparation untimed.
fn timed<C: Contender>(iters: u64, prepare: impl Fn(&mut C), routine: impl Fn(&mut C)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut c = C::fresh();
        prepare(&mut c);
        let t = Instant::now();
        routine(black_box(&mut c));
        total += t.elapsed();
        black_box(&c);
    }
    total
}

fn fill<C: Contender>(c: &mut C, n: u32) -> Vec<u32> {
    (0..n).map(|_| c.alloc().expect("fill")).collect()
}

/// Pseudo-random but fixed sequence of slots (xorshift), identical for every contender.
fn slots(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        })
        .collect()
}

fn fill_then_free<C: Contender>(c: &mut Criterion, group: &str, name: &str) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements((N - 1) as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            timed::<C>(
                iters,
                |_| {},
                |c| {
                    for _ in 1..N {
                        black_box(c.alloc());
                    }
                },
            )
        })
    });
    g.finish();
}

/// Steady state at `fill_pct` % of the pool: free a random page, allocate one, 1024 times.
fn churn<C: Contender>(c: &mut Criterion, fill_pct: u32, name: &str) {
    let mut g = c.benchmark_group(format!("alloc/churn_at_{fill_pct}pct"));
    const PAIRS: usize = 1024;
    g.throughput(Throughput::Elements(2 * PAIRS as u64));
    // Which live page each pair frees, precomputed so no division is timed.
    let live_n = (N * fill_pct / 100) as usize - 1;
    let order: Vec<usize> = slots(PAIRS, 0x9e37_79b9_7f4a_7c15)
        .iter()
        .map(|s| s % live_n)
        .collect();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut a, mut live) = scattered::<C>(live_n);
                let t = Instant::now();
                for &k in &order {
                    a.free(live[k]);
                    live[k] = a.alloc().expect("a page was just freed");
                }
                total += t.elapsed();
                black_box(&live);
            }
            total
        })
    });
    g.finish();
}

/// A contender with `keep` pages allocated, scattered over the pool (fill all, free the rest
/// at random, the same pages for every contender), and the list of those pages.
fn scattered<C: Contender>(keep: usize) -> (C, Vec<u32>) {
    let mut a = C::fresh();
    let mut live = fill(&mut a, N - 1);
    for s in slots(live.len() - keep, 0x2545_f491_4f6c_dd1d) {
        let k = s % live.len();
        a.free(live.swap_remove(k));
    }
    (a, live)
}

fn free_all<C: Contender>(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group("alloc/free_all");
    g.throughput(Throughput::Elements((N - 1) as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut a = C::fresh();
                let pages = fill(&mut a, N - 1);
                let t = Instant::now();
                for &p in &pages {
                    a.free(black_box(p));
                }
                total += t.elapsed();
                black_box(&a);
            }
            total
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    fill_then_free::<BareCounter>(c, "alloc/fill", "bare-counter");
    fill_then_free::<BumpAllocator>(c, "alloc/fill", "lab-bump");
    fill_then_free::<BitmapAllocator>(c, "alloc/fill", "lab-bitmap");
    fill_then_free::<Peer4K>(c, "alloc/fill", "bitmap-allocator");
    fill_then_free::<PeerBuddy>(c, "alloc/fill", "buddy_system_allocator");

    free_all::<BitmapAllocator>(c, "lab-bitmap");
    free_all::<Peer4K>(c, "bitmap-allocator");
    free_all::<PeerBuddy>(c, "buddy_system_allocator");

    for pct in [50, 95] {
        churn::<BitmapAllocator>(c, pct, "lab-bitmap");
        churn::<Peer4K>(c, pct, "bitmap-allocator");
        churn::<PeerBuddy>(c, pct, "buddy_system_allocator");
    }

    // The bootloader -> kernel hand-over: a bitmap from the bump counter (half the pool used).
    let mut g = c.benchmark_group("alloc/init_from_counter");
    for n in [1024u32, 4096, 16384, 65536] {
        g.throughput(Throughput::Elements(n as u64));
        // In place, as the kernel re-initialises its bitmap: only the pool's N/64 words.
        let mut ours = Box::new(BitmapAllocator::new(64));
        g.bench_with_input(BenchmarkId::new("lab-bitmap", n), &n, |b, &n| {
            b.iter(|| {
                ours.reset_from_counter(black_box(n), black_box(n / 2));
                black_box(&ours);
            })
        });
        g.bench_with_input(BenchmarkId::new("bitmap-allocator", n), &n, |b, &n| {
            b.iter(|| {
                let mut a = Box::<BitAlloc64K>::default();
                a.insert(black_box(n as usize / 2)..black_box(n as usize));
                black_box(a)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = alloc;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(alloc);
