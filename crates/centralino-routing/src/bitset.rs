//! A growable bitset over agent indices: eligibility and readiness sets whose
//! intersection is a few word-wise ANDs.

#[derive(Debug, Clone, Default)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub fn set(&mut self, i: usize, on: bool) {
        let w = i / 64;
        if w >= self.words.len() {
            if !on {
                return;
            }
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (i % 64);
        if on {
            self.words[w] |= bit;
        } else {
            self.words[w] &= !bit;
        }
    }

    pub fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Calls `f` for every index in both sets, in ascending order.
    pub fn for_each_and(&self, other: &BitSet, mut f: impl FnMut(usize)) {
        for (w, (a, b)) in self.words.iter().zip(&other.words).enumerate() {
            let mut x = a & b;
            while x != 0 {
                let bit = x.trailing_zeros() as usize;
                f(w * 64 + bit);
                x &= x - 1;
            }
        }
    }

    /// The first index ≥ `from` in both sets, wrapping around to 0 once.
    pub fn next_and_wrapping(&self, other: &BitSet, from: usize) -> Option<usize> {
        let n = self.words.len().min(other.words.len());
        if n == 0 {
            return None;
        }
        let start_w = (from / 64).min(n);
        for step in 0..=n {
            let w = (start_w + step) % n;
            let mut x = self.words[w] & other.words[w];
            if step == 0 && w == from / 64 {
                x &= u64::MAX << (from % 64);
            }
            if x != 0 {
                return Some(w * 64 + x.trailing_zeros() as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_iteration_and_wrapping_search() {
        let mut a = BitSet::default();
        let mut b = BitSet::default();
        for i in [1, 5, 64, 130, 200] {
            a.set(i, true);
        }
        for i in [5, 64, 131, 200] {
            b.set(i, true);
        }
        let mut seen = vec![];
        a.for_each_and(&b, |i| seen.push(i));
        assert_eq!(seen, vec![5, 64, 200]);
        assert_eq!(a.next_and_wrapping(&b, 6), Some(64));
        assert_eq!(a.next_and_wrapping(&b, 65), Some(200));
        assert_eq!(a.next_and_wrapping(&b, 201), Some(5));
        assert_eq!(a.next_and_wrapping(&b, 0), Some(5));
        a.set(5, false);
        a.set(10_000, false);
        assert!(!a.get(5) && !a.get(10_000) && a.get(64));
        assert_eq!(a.next_and_wrapping(&BitSet::default(), 0), None);
    }
}
