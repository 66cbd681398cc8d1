// The bitmap's free+alloc pairs at 50 % fill, built like the alloc suite's churn benchmark (distinct victims among the pages in use, xorshift from the run seed),
// timed 40 times from the same state (best of 40 per set-up, 300 set-ups): built against lab/vystem-ptp at 99e796b with
// Cargo.toml [dependencies] vystem-ptp = { path = "lab/vystem-ptp" }, cargo build --release. Output:
//   n 512: per op min 7.24 p50 7.50
//   n 4096: per op min 7.34 p50 7.50
use vystem_ptp::{BitmapAllocator, PageAllocator};
fn rdtsc() -> u64 { unsafe { core::arch::x86_64::_rdtsc() } }
struct Rng(u64);
impl Rng { fn next(&mut self) -> u64 { self.0 ^= self.0 << 13; self.0 ^= self.0 >> 7; self.0 ^= self.0 << 17; self.0 } }
fn main() {
    let n: u32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(512);
    let keep = n / 2;
    let pairs = 1024.min(keep as usize - 1);
    let mut rng = Rng(24301 | 1);
    let mut best = u64::MAX; let mut all = vec![];
    let mut slow = 0u64;
    for _ in 0..300 {
        let mut a = BitmapAllocator::new(n);
        let mut live = vec![false; n as usize];
        while let Ok(p) = a.allocate() { live[p as usize] = true; }
        let mut to_free = n - keep;
        while to_free > 0 { let p = 1 + (rng.next() % (n as u64 - 1)) as u32; if live[p as usize] { a.free(p).unwrap(); live[p as usize] = false; to_free -= 1; } }
        let mut victims = vec![];
        while victims.len() < pairs { let p = 1 + (rng.next() % (n as u64 - 1)) as u32; if live[p as usize] { live[p as usize] = false; victims.push(p); } }
        let snap = a.clone();
        let mut t = u64::MAX;
        for _ in 0..40 {
            a = snap.clone();
            let t0 = rdtsc();
            for &v in &victims { let _ = std::hint::black_box(a.free(std::hint::black_box(v))); let _ = std::hint::black_box(a.allocate()); }
            t = t.min(rdtsc() - t0);
        }
        best = best.min(t); all.push(t);
        let _ = slow;
    }
    all.sort();
    println!("n {n}: per op min {:.2} p50 {:.2}", best as f64 / (2 * pairs) as f64, all[all.len()/2] as f64 / (2*pairs) as f64);
}
