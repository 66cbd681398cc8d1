//! The bitmap allocator of the Shelter kernel: one bit per pool page, a next-free hint (no word
//! below it has a free page), and a summary with one bit per bitmap word that still has a free
//! page. Allocation takes the hint's word when it has room (filling a pool sequentially never
//! looks further); otherwise the summary finds the next word with room in a `trailing_zeros`,
//! not a scan over full words, which matters once random frees have scattered the holes.

use super::{AllocError, FreeError, PageAllocator, ROOT_PAGE};
use crate::pool::MAX_POOL_PAGES;

const WORDS: usize = MAX_POOL_PAGES as usize / 64;
const SUMMARY: usize = WORDS / 64;

/// One bit per pool page, up to [`MAX_POOL_PAGES`] (an 8 KiB bitmap, plus its summary): it
/// frees, and after random frees still finds a free page without scanning full words.
///
/// # Example
///
/// ```
/// use vystem_ptp::{BitmapAllocator, FreeError, PageAllocator};
///
/// let mut a = BitmapAllocator::new(4096);
/// let (p, q) = (a.allocate().unwrap(), a.allocate().unwrap());
/// assert_eq!((p, q, a.used()), (1, 2, 3));
/// a.free(p).unwrap();
/// assert_eq!(a.free(p), Err(FreeError::NotAllocated { index: p }));
/// assert_eq!(a.free(0), Err(FreeError::Root));
/// assert_eq!(a.allocate(), Ok(p)); // the lowest free page comes back first
/// assert_eq!(a.left(), 4096 - 3);
/// ```
#[derive(Clone)]
pub struct BitmapAllocator {
    /// Bit set = page in use. Bits past `capacity` are set so they are never handed out.
    words: [u64; WORDS],
    /// Bit `w` set = `words[w]` has a free page (only for words inside the capacity).
    nonfull: [u64; SUMMARY],
    capacity: u32,
    /// Bitmap words covering the capacity.
    cap_words: usize,
    used: u32,
    /// No bitmap word below this one has a free page.
    hint: usize,
}

impl core::fmt::Debug for BitmapAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BitmapAllocator")
            .field("capacity", &self.capacity)
            .field("used", &self.used)
            .field("hint", &self.hint)
            .finish()
    }
}

impl BitmapAllocator {
    /// A fresh bitmap over `capacity` pages (at most [`MAX_POOL_PAGES`]): only the root is taken.
    pub fn new(capacity: u32) -> Self {
        Self::from_counter(capacity, 1)
    }

    /// The bootloader-to-kernel hand-over: pages `0..counter` are in use (a bump allocator's
    /// counter), the rest free. `capacity` is clamped to `1..=`[`MAX_POOL_PAGES`], `counter` to
    /// `1..=capacity`.
    pub fn from_counter(capacity: u32, counter: u32) -> Self {
        let mut a = BitmapAllocator {
            words: [0; WORDS],
            nonfull: [0; SUMMARY],
            capacity: 0,
            cap_words: 0,
            used: 0,
            hint: 0,
        };
        a.reset_from_counter(capacity, counter);
        a
    }

    /// [`BitmapAllocator::from_counter`] in place, in O(N/64): only the pool's own words are
    /// written (whole words, not bits); words past the capacity are never read.
    pub fn reset_from_counter(&mut self, capacity: u32, counter: u32) {
        // A pool always has its root page: at least one page.
        let capacity = capacity.clamp(1, MAX_POOL_PAGES);
        let counter = counter.clamp(1, capacity);
        self.capacity = capacity;
        self.used = counter;
        let full = counter as usize / 64;
        let cap_words = (capacity as usize).div_ceil(64);
        self.cap_words = cap_words;
        self.words[..full].fill(!0);
        self.words[full..cap_words].fill(0);
        if !counter.is_multiple_of(64) {
            self.words[full] = (1u64 << (counter % 64)) - 1;
        }
        // Padding past the capacity counts as used so `allocate` never returns it.
        let cap = capacity as usize;
        if !cap.is_multiple_of(64) {
            self.words[cap / 64] |= !0u64 << (cap % 64);
        }
        // The summary: only words from `full` on can have a free page.
        self.nonfull[..cap_words.div_ceil(64)].fill(0);
        for w in full..cap_words {
            if self.words[w] != !0 {
                self.nonfull[w / 64] |= 1 << (w % 64);
            }
        }
        self.hint = full;
    }

    /// Take the lowest free page of `words[w]` (which has one).
    #[inline(always)]
    fn take(&mut self, w: usize, word: u64) -> u32 {
        let bit = (!word).trailing_zeros();
        let now = word | (1 << bit);
        self.words[w] = now;
        if now == !0 {
            self.nonfull[w / 64] &= !(1 << (w % 64));
        }
        self.used += 1;
        self.hint = w;
        w as u32 * 64 + bit
    }

    /// The hint's word is full: the summary names the next word with room.
    #[inline(never)]
    fn allocate_after_full_word(&mut self) -> Result<u32, AllocError> {
        let w = self.next_nonfull(self.hint + 1, self.cap_words);
        if w >= self.cap_words {
            self.hint = self.cap_words;
            return Err(AllocError::Exhausted {
                capacity: self.capacity,
            });
        }
        let word = self.words[w];
        Ok(self.take(w, word))
    }

    /// The first word at or after `from` with a free page, from the summary; `cap_words` if
    /// there is none.
    fn next_nonfull(&self, from: usize, cap_words: usize) -> usize {
        let mut s = from / 64;
        if s >= SUMMARY {
            return cap_words;
        }
        let mut m = self.nonfull[s] & (!0u64 << (from % 64));
        loop {
            if m != 0 {
                return (s * 64 + m.trailing_zeros() as usize).min(cap_words);
            }
            s += 1;
            if s * 64 >= cap_words {
                return cap_words;
            }
            m = self.nonfull[s];
        }
    }

    fn check(&self, index: u32) -> Result<(), FreeError> {
        if index >= self.capacity {
            Err(FreeError::OutOfPool {
                index,
                capacity: self.capacity,
            })
        } else if index == ROOT_PAGE {
            Err(FreeError::Root)
        } else {
            Ok(())
        }
    }
}

impl PageAllocator for BitmapAllocator {
    #[inline]
    fn allocate(&mut self) -> Result<u32, AllocError> {
        // Fast path: the hint's word has room (always, while a pool fills up in order).
        let w = self.hint;
        if w < self.cap_words {
            let word = self.words[w];
            if word != !0 {
                return Ok(self.take(w, word));
            }
        }
        self.allocate_after_full_word()
    }

    #[inline]
    fn free(&mut self, index: u32) -> Result<(), FreeError> {
        self.check(index)?;
        let (w, bit) = (index as usize / 64, index % 64);
        let word = self.words[w];
        if word & (1 << bit) == 0 {
            return Err(FreeError::NotAllocated { index });
        }
        self.words[w] = word & !(1 << bit);
        // Only a word that was full is missing from the summary: no store otherwise, which
        // keeps frees off the summary word every other free also writes.
        if word == !0 {
            self.nonfull[w / 64] |= 1 << (w % 64);
        }
        self.used -= 1;
        self.hint = self.hint.min(w);
        Ok(())
    }

    fn capacity(&self) -> u32 {
        self.capacity
    }

    fn used(&self) -> u32 {
        self.used
    }

    fn is_allocated(&self, index: u32) -> bool {
        index < self.capacity && self.words[index as usize / 64] & (1 << (index % 64)) != 0
    }

    fn can_free(&self) -> bool {
        true
    }

    /// Word by word: each word's bits of the range checked all in use, then cleared, in two
    /// passes over the words (all or none).
    fn free_range(&mut self, first: u32, count: u32) -> Result<(), FreeError> {
        if count == 0 {
            return Ok(());
        }
        // The error is the first page, in order, that cannot be freed.
        if first == ROOT_PAGE {
            return Err(FreeError::Root);
        }
        let end = first as u64 + count as u64;
        if first >= self.capacity {
            return Err(FreeError::OutOfPool {
                index: first,
                capacity: self.capacity,
            });
        }
        let past = end > self.capacity as u64;
        let (first, end) = (first as usize, end.min(self.capacity as u64) as usize);
        let mask = |w: usize| {
            let lo = first.max(w * 64) - w * 64;
            let hi = end.min(w * 64 + 64) - w * 64;
            (if hi == 64 { !0u64 } else { (1u64 << hi) - 1 }) & (!0u64 << lo)
        };
        let (w0, w1) = (first / 64, (end - 1) / 64);
        for w in w0..=w1 {
            let (m, word) = (mask(w), self.words[w]);
            if word & m != m {
                let bit = (!word & m).trailing_zeros();
                return Err(FreeError::NotAllocated {
                    index: (w * 64) as u32 + bit,
                });
            }
        }
        if past {
            return Err(FreeError::OutOfPool {
                index: self.capacity,
                capacity: self.capacity,
            });
        }
        for w in w0..=w1 {
            self.words[w] &= !mask(w);
            self.nonfull[w / 64] |= 1 << (w % 64);
        }
        self.used -= count;
        self.hint = self.hint.min(w0);
        Ok(())
    }

    /// Word by word: the free bits of each word with room, lowest first, in one pass over the
    /// word held in a register (a fresh word hands out its 64 pages in a plain loop).
    fn allocate_many(&mut self, out: &mut [u32]) -> Result<(), AllocError> {
        if out.len() > self.left() as usize {
            return Err(AllocError::Exhausted {
                capacity: self.capacity,
            });
        }
        let mut k = 0;
        let mut w = self.hint;
        while k < out.len() {
            // Enough free pages exist, so a word with room is found before the capacity.
            if w >= self.cap_words || self.words[w] == !0 {
                w = self.next_nonfull(w + 1, self.cap_words);
                if w >= self.cap_words {
                    break; // never: `left` counted them
                }
            }
            let mut word = self.words[w];
            let base = w as u32 * 64;
            if word == 0 && out.len() - k >= 64 {
                for (i, slot) in out[k..k + 64].iter_mut().enumerate() {
                    *slot = base + i as u32;
                }
                word = !0;
                k += 64;
            } else {
                while word != !0 && k < out.len() {
                    let bit = (!word).trailing_zeros();
                    word |= 1 << bit;
                    out[k] = base + bit;
                    k += 1;
                }
            }
            self.words[w] = word;
            if word == !0 {
                self.nonfull[w / 64] &= !(1 << (w % 64));
            }
            self.hint = w;
        }
        self.used += k as u32;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_bitmap_holds_only_the_root() {
        let mut a = BitmapAllocator::new(100);
        assert_eq!((a.used(), a.left()), (1, 99));
        assert!(a.is_allocated(0) && !a.is_allocated(1));
        for want in 1..100 {
            assert_eq!(a.allocate(), Ok(want));
        }
        // Padding bits 100..128 of the last word are never handed out.
        assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: 100 }));
    }

    #[test]
    fn from_counter_matches_a_bump_hand_over() {
        for (cap, counter) in [
            (64, 1),
            (64, 64),
            (4096, 63),
            (4096, 64),
            (4096, 65),
            (65536, 4000),
        ] {
            let mut a = BitmapAllocator::from_counter(cap, counter);
            assert_eq!(a.used(), counter, "cap {cap} counter {counter}");
            for i in 0..cap {
                assert_eq!(a.is_allocated(i), i < counter, "page {i}");
            }
            if counter < cap {
                assert_eq!(a.allocate(), Ok(counter));
            } else {
                assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: cap }));
            }
        }
    }

    #[test]
    fn reset_from_counter_reuses_a_dirty_bitmap() {
        let mut a = BitmapAllocator::new(4096);
        while a.allocate().is_ok() {}
        a.reset_from_counter(100, 70);
        assert_eq!((a.capacity(), a.used()), (100, 70));
        for i in 0..100 {
            assert_eq!(a.is_allocated(i), i < 70, "page {i}");
        }
        assert!(
            !a.is_allocated(100) && !a.is_allocated(4000),
            "past the capacity is not the pool"
        );
        assert_eq!(
            a.free(4000),
            Err(FreeError::OutOfPool {
                index: 4000,
                capacity: 100
            })
        );
        for want in 70..100 {
            assert_eq!(a.allocate(), Ok(want));
        }
        assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: 100 }));
    }

    #[test]
    fn out_of_range_sizes_are_clamped_not_panics() {
        let mut a = BitmapAllocator::new(0);
        assert_eq!((a.capacity(), a.used(), a.left()), (1, 1, 0));
        assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: 1 }));
        let b = BitmapAllocator::from_counter(1 << 20, 1 << 30);
        assert_eq!((b.capacity(), b.used()), (MAX_POOL_PAGES, MAX_POOL_PAGES));
    }

    #[test]
    fn free_errors_are_values() {
        let mut a = BitmapAllocator::new(64);
        let p = a.allocate().unwrap();
        assert_eq!(a.free(p), Ok(()));
        assert_eq!(a.free(p), Err(FreeError::NotAllocated { index: p }));
        assert_eq!(a.free(0), Err(FreeError::Root));
        assert_eq!(
            a.free(64),
            Err(FreeError::OutOfPool {
                index: 64,
                capacity: 64
            })
        );
        assert_eq!(
            a.free(u32::MAX),
            Err(FreeError::OutOfPool {
                index: u32::MAX,
                capacity: 64
            })
        );
        assert_eq!(a.used(), 1);
    }

    #[test]
    fn freed_low_page_is_reused_first() {
        let mut a = BitmapAllocator::new(256);
        let pages: [u32; 200] = core::array::from_fn(|_| a.allocate().unwrap());
        a.free(pages[150]).unwrap();
        a.free(pages[3]).unwrap();
        assert_eq!(a.allocate(), Ok(pages[3]));
        assert_eq!(a.allocate(), Ok(pages[150]));
        assert_eq!(a.allocate(), Ok(201));
    }
}
