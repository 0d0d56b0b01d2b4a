//! A small fixed-size bitset over rule indexes.

/// Bitset over rule indexes; all sets of one rule set have the same number of words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub fn new(bits: usize) -> Bitset {
        Bitset {
            words: vec![0; bits.div_ceil(64)],
        }
    }
    pub fn full(bits: usize) -> Bitset {
        let mut b = Bitset::new(bits);
        for i in 0..bits {
            b.set(i);
        }
        b
    }
    #[inline]
    pub fn set(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    #[inline]
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
    /// Resizes (and clears) to hold `bits` bits.
    pub fn reset(&mut self, bits: usize) {
        let n = bits.div_ceil(64);
        self.words.clear();
        self.words.resize(n, 0);
    }
    /// True when the two sets share a bit.
    #[inline]
    pub fn intersects(&self, other: &Bitset) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
    #[inline]
    pub fn copy_from(&mut self, other: &Bitset) {
        if self.words.len() == other.words.len() {
            // Sets of one rule set have the same length: a word loop, no `memcpy` call.
            for (a, b) in self.words.iter_mut().zip(&other.words) {
                *a = *b;
            }
        } else {
            self.words.clear();
            self.words.extend_from_slice(&other.words);
        }
    }
    #[inline]
    pub fn or_with(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }
    #[inline]
    pub fn and_with(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
    }
    #[inline]
    pub fn and_not(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !*b;
        }
    }
    /// Number of 64-bit words.
    pub fn words(&self) -> usize {
        self.words.len()
    }
    /// First set bit at or after `from`.
    #[inline]
    pub fn next_one(&self, from: usize) -> Option<usize> {
        let mut wi = from / 64;
        let mut w = self.words.get(wi)? & (!0u64).checked_shl((from % 64) as u32).unwrap_or(0);
        loop {
            if w != 0 {
                return Some(wi * 64 + w.trailing_zeros() as usize);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }
    /// Iterates over set bits.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + t)
            })
        })
    }
}
