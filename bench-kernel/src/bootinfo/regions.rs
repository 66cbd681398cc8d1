//! Free RAM as a fixed-capacity set of disjoint physical ranges: what the memory map offers,
//! minus what must not be handed out.

use super::{MAX_FREE_REGIONS, PAGE_SIZE};

/// Half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Fixed-capacity set of disjoint free ranges.
pub struct FreeRegions {
    ranges: [Range; MAX_FREE_REGIONS],
    len: usize,
    /// Set if a split did not fit (the affected piece is lost, never over-reported).
    pub truncated: bool,
}

impl FreeRegions {
    pub(super) fn new() -> Self {
        Self {
            ranges: [Range::default(); MAX_FREE_REGIONS],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(Range::len).sum()
    }

    pub(super) fn push(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if self.len == MAX_FREE_REGIONS {
            self.truncated = true;
            return;
        }
        self.ranges[self.len] = Range { start, end };
        self.len += 1;
    }

    /// Subtract `[start, end)`; a range straddling it splits in two.
    pub(super) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let old = self.ranges;
        let old_len = self.len;
        self.len = 0;
        for r in &old[..old_len] {
            if r.end <= start || r.start >= end {
                self.push(r.start, r.end);
            } else {
                self.push(r.start, start.max(r.start).min(r.end));
                self.push(end.min(r.end).max(r.start), r.end);
            }
        }
    }

    pub(super) fn page_align(&mut self) {
        let old = self.ranges;
        let old_len = self.len;
        self.len = 0;
        for r in &old[..old_len] {
            let start = r.start.next_multiple_of(PAGE_SIZE);
            let end = r.end & !(PAGE_SIZE - 1);
            self.push(start, end);
        }
    }

    pub(super) fn sort(&mut self) {
        // Insertion sort: at most a few hundred entries, no allocator.
        let s = &mut self.ranges[..self.len];
        for i in 1..s.len() {
            let mut j = i;
            while j > 0 && s[j - 1].start > s[j].start {
                s.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}
