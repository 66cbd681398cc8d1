//! The bump/counter allocator of the Blastproof bootloader: one counter, no freeing.

use super::{AllocError, FreeError, PageAllocator};

/// A counter over a pool's pages: page `counter()` is the next handed out, nothing is ever
/// freed ([`FreeError::Unsupported`]). What a bootloader needs, and what the kernel's
/// [`BitmapAllocator`](super::BitmapAllocator) takes over from.
///
/// # Example
///
/// ```
/// use vystem_ptp::{AllocError, BitmapAllocator, BumpAllocator, FreeError, PageAllocator};
///
/// let mut bump = BumpAllocator::new(64);
/// assert_eq!(bump.used(), 1); // the root
/// assert_eq!(bump.allocate(), Ok(1));
/// assert_eq!(bump.allocate(), Ok(2));
/// assert_eq!(bump.free(2), Err(FreeError::Unsupported));
/// // Hand-over: the kernel's bitmap starts where the counter stopped.
/// let mut bitmap = BitmapAllocator::from_counter(bump.capacity(), bump.counter());
/// assert_eq!(bitmap.allocate(), Ok(3));
/// while bump.allocate().is_ok() {}
/// assert_eq!(bump.allocate(), Err(AllocError::Exhausted { capacity: 64 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpAllocator {
    next: u32,
    capacity: u32,
}

impl BumpAllocator {
    /// A fresh counter over `capacity` pages (at least 1): page 0 (the root) is already taken.
    pub fn new(capacity: u32) -> Self {
        BumpAllocator {
            next: 1,
            capacity: capacity.max(1),
        }
    }

    /// The counter value, as handed to the kernel's bitmap ([`super::BitmapAllocator::from_counter`]).
    pub fn counter(&self) -> u32 {
        self.next
    }
}

impl PageAllocator for BumpAllocator {
    #[inline]
    fn allocate(&mut self) -> Result<u32, AllocError> {
        if self.next < self.capacity {
            self.next += 1;
            Ok(self.next - 1)
        } else {
            Err(AllocError::Exhausted {
                capacity: self.capacity,
            })
        }
    }

    fn free(&mut self, index: u32) -> Result<(), FreeError> {
        if index >= self.capacity {
            Err(FreeError::OutOfPool {
                index,
                capacity: self.capacity,
            })
        } else if index == super::ROOT_PAGE {
            Err(FreeError::Root)
        } else {
            Err(FreeError::Unsupported)
        }
    }

    fn capacity(&self) -> u32 {
        self.capacity
    }

    fn used(&self) -> u32 {
        self.next
    }

    fn is_allocated(&self, index: u32) -> bool {
        index < self.next
    }

    fn can_free(&self) -> bool {
        false
    }

    /// The next `out.len()` pages of the counter.
    fn allocate_many(&mut self, out: &mut [u32]) -> Result<(), AllocError> {
        if out.len() > (self.capacity - self.next) as usize {
            return Err(AllocError::Exhausted {
                capacity: self.capacity,
            });
        }
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.next + i as u32;
        }
        self.next += out.len() as u32;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_many_takes_the_next_pages_or_none() {
        let mut a = BumpAllocator::new(10);
        let mut out = [0u32; 4];
        assert_eq!(a.allocate_many(&mut out), Ok(()));
        assert_eq!((out, a.used()), ([1, 2, 3, 4], 5));
        let mut six = [0u32; 6];
        assert_eq!(
            a.allocate_many(&mut six),
            Err(AllocError::Exhausted { capacity: 10 })
        );
        assert_eq!((six, a.used()), ([0; 6], 5));
        let mut five = [0u32; 5];
        assert_eq!(a.allocate_many(&mut five), Ok(()));
        assert_eq!((five, a.left()), ([5, 6, 7, 8, 9], 0));
    }

    #[test]
    fn counts_up_then_exhausts() {
        let mut a = BumpAllocator::new(64);
        assert_eq!(a.used(), 1);
        for want in 1..64 {
            assert_eq!(a.allocate(), Ok(want));
        }
        assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: 64 }));
        assert_eq!(a.used(), 64);
        assert_eq!(a.left(), 0);
    }

    #[test]
    fn a_zero_page_pool_still_has_its_root() {
        let mut a = BumpAllocator::new(0);
        assert_eq!((a.capacity(), a.used(), a.left()), (1, 1, 0));
        assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: 1 }));
    }

    #[test]
    fn free_is_an_error_never_a_panic() {
        let mut a = BumpAllocator::new(64);
        a.allocate().unwrap();
        assert_eq!(a.free(1), Err(FreeError::Unsupported));
        assert_eq!(a.free(0), Err(FreeError::Root));
        assert_eq!(
            a.free(64),
            Err(FreeError::OutOfPool {
                index: 64,
                capacity: 64
            })
        );
        assert_eq!(a.used(), 2);
    }
}
