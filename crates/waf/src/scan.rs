//! The phrase and factor scan: the rule set's Aho-Corasick automaton as one flat DFA table.
//!
//! Every variant of every value is scanned once for all phrases and regex factors, with every
//! overlapping match reported. `aho_corasick`'s overlapping iterator re-enters its search for
//! each match and walks the haystack through the generic `Automaton` methods, about 20
//! instructions per byte on prose. The same automaton, made at load time into a table indexed
//! by (state, byte class) with the match states numbered last (from `aho_corasick`'s trie and
//! match lists; the transitions per class are filled in here), is walked by a loop of a few
//! instructions per byte that leaves it only on a match state.
//!
//! Matches come out as `find_overlapping_iter` gives them: by end offset, then in the
//! automaton's order within a state (`tests::same_matches_as_aho_corasick` checks it on the
//! corpora and on random bytes). A haystack of a kilobyte or more (a raw body) is walked as
//! four quarters at once, the walk being a chain of dependent loads that one stream leaves the
//! CPU waiting on: the same matches, the quarters' interleaved (`split_walk` tests).

use aho_corasick::automaton::Automaton;
use aho_corasick::{nfa::noncontiguous::NFA, Anchored, MatchKind};

/// The flat DFA: the next state of state `s` on byte `b` is `trans[s << shift | classes[b]]`.
#[derive(Clone, Debug)]
pub(crate) struct Scanner {
    classes: [u8; 256],
    /// Rows are `1 << shift` entries (the classes, rounded up to a power of two): the walk's
    /// chain of dependent loads then has a shift between them, not a multiplication.
    shift: u32,
    /// The skipped bytes' class (with [`Scanner::skipping`]).
    space: u8,
    start: u32,
    /// States at or above this id are match states.
    first_match: u32,
    trans: Table,
    /// Per match state (dense id minus the first match state's): its range in `pats`.
    ranges: Vec<(u32, u32)>,
    /// Pattern ids, in the automaton's order within each match state.
    pats: Vec<u32>,
    /// Length of each pattern.
    lens: Vec<u32>,
    /// Matches of the start state (an empty pattern), reported at offset 0.
    start_pats: (u32, u32),
    /// Length of the longest pattern.
    max_len: usize,
    /// Built with skipped bytes ([`Scanner::skipping`]): a match's length is not its span.
    skips: bool,
}

/// Haystacks at least this long are walked as four quarters at once ([`Scanner::each_match`]).
const SPLIT_MIN: usize = 1024;

/// The transition table. Two bytes per entry when the states fit (every shipped rule set):
/// half the cache lines of four-byte entries, and the walk is a chain of dependent loads,
/// where a cache miss costs more than the row arithmetic.
#[derive(Clone, Debug)]
enum Table {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

/// Walks `hay` from `at` in state `s` until a match state or the end: the new position (past
/// the byte that led to the match state) and state.
#[inline(always)]
fn walk<T: Copy + Into<u32>>(
    sc: &Scanner,
    trans: &[T],
    hay: &[u8],
    at: usize,
    s: u32,
) -> (usize, u32) {
    if trans.is_empty() {
        // Never built (see `Scanner::step`): the same walk, out of line.
        return cold(|| walk_loop(sc, trans, hay, at, s));
    }
    walk_loop(sc, trans, hay, at, s)
}

/// Runs `f` out of line: the walks' branch for an empty table.
#[cold]
#[inline(never)]
fn cold<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[inline(always)]
fn walk_loop<T: Copy + Into<u32>>(
    sc: &Scanner,
    trans: &[T],
    hay: &[u8],
    mut at: usize,
    mut s: u32,
) -> (usize, u32) {
    let step = |s: u32, b: u8| sc.step(trans, s, b);
    // Four bytes per bounds check of the haystack.
    while let Some(four) = hay.get(at..).and_then(<[u8]>::first_chunk::<4>) {
        for (k, &b) in four.iter().enumerate() {
            s = step(s, b);
            if s >= sc.first_match {
                return (at + k + 1, s);
            }
        }
        at += 4;
    }
    while let Some(&b) = hay.get(at) {
        at += 1;
        s = step(s, b);
        if s >= sc.first_match {
            break;
        }
    }
    (at, s)
}

/// Walks the texts of `hay` (of one length) in lockstep from `at`, in states `s`, until one
/// reaches a match state or the end: the new position (past the bytes that led there) and the
/// states.
#[inline(always)]
fn walk4<T: Copy + Into<u32>>(
    sc: &Scanner,
    trans: &[T],
    hay: [&[u8]; 4],
    at: usize,
    s: [u32; 4],
) -> (usize, [u32; 4]) {
    if trans.is_empty() {
        // Never built (see `Scanner::step`): the same walk, out of line.
        return cold(|| walk4_loop(sc, trans, hay, at, s));
    }
    walk4_loop(sc, trans, hay, at, s)
}

#[inline(always)]
fn walk4_loop<T: Copy + Into<u32>>(
    sc: &Scanner,
    trans: &[T],
    hay: [&[u8]; 4],
    at: usize,
    s: [u32; 4],
) -> (usize, [u32; 4]) {
    let step = |s: u32, b: u8| sc.step(trans, s, b);
    let first_match = sc.first_match;
    let [mut s0, mut s1, mut s2, mut s3] = s;
    let [a, b, c, d] = hay.map(|h| h.get(at..).unwrap_or(&[]));
    let mut n = 0;
    for (((&x0, &x1), &x2), &x3) in a.iter().zip(b).zip(c).zip(d) {
        s0 = step(s0, x0);
        s1 = step(s1, x1);
        s2 = step(s2, x2);
        s3 = step(s3, x3);
        n += 1;
        if s0.max(s1).max(s2.max(s3)) >= first_match {
            break;
        }
    }
    (at + n, [s0, s1, s2, s3])
}

/// Where a walk first reached a match state ([`Scanner::first_match`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct First {
    /// Offset past the byte that led to it.
    at: usize,
    state: u32,
}

/// Why a scanner could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    #[error("{0}")]
    Build(#[from] aho_corasick::BuildError),
    #[error("{0}")]
    Match(#[from] aho_corasick::MatchError),
    #[error("the automaton has too many states ({0})")]
    TooBig(usize),
}

impl Scanner {
    /// Builds the scanner of `patterns`, ASCII case-insensitive, standard match semantics.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Scanner, ScanError> {
        Scanner::build(patterns, None)
    }

    /// Like [`Scanner::new`], but the bytes of `skip` leave every state as it is: the scan reads
    /// the haystack as if those bytes were removed (no pattern may hold one). A match state
    /// followed by skipped bytes reports its patterns again at each of them.
    pub fn skipping<P: AsRef<[u8]>>(patterns: &[P], skip: &[u8]) -> Result<Scanner, ScanError> {
        let mut t = [false; 256];
        for &b in skip {
            t[usize::from(b)] = true;
        }
        Scanner::build(patterns, Some(&t))
    }

    fn build<P: AsRef<[u8]>>(
        patterns: &[P],
        skip: Option<&[bool; 256]>,
    ) -> Result<Scanner, ScanError> {
        Scanner::build_narrow_up_to(patterns, skip, usize::from(u16::MAX))
    }

    /// [`Scanner::build`], with two-byte entries when there are at most `narrow` states.
    fn build_narrow_up_to<P: AsRef<[u8]>>(
        patterns: &[P],
        skip: Option<&[bool; 256]>,
        narrow: usize,
    ) -> Result<Scanner, ScanError> {
        let skip_space = skip.is_some();
        let skipped = |b: usize| skip.is_some_and(|t| t[b]);
        // The trie with its matches (in standard semantics each state's list already holds its
        // failure states' matches); the transitions are filled in below, per class only.
        let nfa = NFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(patterns)?;
        let start = nfa.start_state(Anchored::No)?;
        // Byte classes, from the patterns: a byte in no pattern (in either case) leads every
        // state of the unanchored automaton where it leads the start state, so all such bytes
        // are one class; a pattern byte is a class with its other case. (The same partition
        // as comparing the automaton's 256 columns, or a slightly finer one, for a quarter of
        // its transitions looked up at load: `tests::same_matches_as_aho_corasick`.)
        let mut in_pattern = [false; 256];
        for p in patterns {
            for &b in p.as_ref() {
                in_pattern[usize::from(b.to_ascii_lowercase())] = true;
            }
        }
        let mut classes = [0u8; 256];
        // Class 0: bytes in no pattern; then one class per pattern byte; `reps[c]` is a byte
        // of class `c`.
        let mut reps: Vec<u8> = Vec::new();
        let mut of_fold = [u8::MAX; 256];
        let other = (0..=255u8).find(|&b| {
            !skipped(usize::from(b)) && !in_pattern[usize::from(b.to_ascii_lowercase())]
        });
        if let Some(o) = other {
            reps.push(o);
        }
        for b in 0..=255u8 {
            if skipped(usize::from(b)) {
                continue;
            }
            let f = usize::from(b.to_ascii_lowercase());
            if !in_pattern[f] {
                classes[usize::from(b)] = 0;
                continue;
            }
            if of_fold[f] == u8::MAX {
                // Class ids are bytes, the skipped bytes' class included.
                if reps.len() + usize::from(skip_space) >= 256 {
                    return Err(ScanError::TooBig(reps.len()));
                }
                of_fold[f] = reps.len() as u8;
                reps.push(b);
            }
            classes[usize::from(b)] = of_fold[f];
        }
        let nclasses = reps.len();
        // Every state of the trie, breadth first (so by depth), with its transitions per class
        // as indexes into `order` (`next[k * nclasses + c]`): a trie edge leads to a new state
        // (a trie has no other way into it); a missing edge leads where the state's failure
        // state leads, already filled in as that state is shallower; the start state loops.
        // The failure state of the child along class `c` is where the parent's failure state
        // goes on `c` (the start state for the start's children). The classical construction,
        // for the classes only (`tests::same_matches_as_aho_corasick`).
        let mut order = vec![start];
        let mut fail_of: Vec<usize> = vec![0];
        let mut next: Vec<u32> = Vec::new();
        let mut k = 0;
        while let (Some(&s), Some(&f)) = (order.get(k), fail_of.get(k)) {
            for (c, &b) in reps.iter().enumerate() {
                let via_fail = if k == 0 {
                    0
                } else {
                    next.get(f * nclasses + c).copied().unwrap_or(0)
                };
                let t = nfa.next_state(Anchored::Yes, s, b);
                if nfa.is_dead(t) || t == start {
                    next.push(via_fail);
                } else {
                    next.push(order.len() as u32);
                    order.push(t);
                    fail_of.push(via_fail as usize);
                }
            }
            k += 1;
        }
        // The skipped bytes' own class, whose every transition stays where it is.
        let space_class = nclasses;
        for (b, class) in classes.iter_mut().enumerate() {
            if skipped(b) {
                *class = space_class as u8;
            }
        }
        let shift = (nclasses + usize::from(skip_space))
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        let stride = 1usize << shift;
        // Dense ids: states without a match first, match states last. A dead state (none in
        // an unanchored standard automaton) would only loop on itself, which is what a
        // non-match state with all its transitions to itself does.
        let mut dense = vec![0u32; order.len()];
        let (plain, matching): (Vec<usize>, Vec<usize>) =
            (0..order.len()).partition(|&k| !nfa.is_match(order[k]));
        for (d, &k) in plain.iter().chain(&matching).enumerate() {
            dense[k] = d as u32;
        }
        let total = order.len().saturating_mul(stride);
        if u32::try_from(total).is_err() {
            return Err(ScanError::TooBig(order.len()));
        }
        let mut trans = vec![0u32; total];
        for (k, row_next) in next.chunks_exact(nclasses.max(1)).enumerate() {
            let row = dense[k] as usize * stride;
            for (c, &tk) in row_next.iter().enumerate() {
                trans[row + c] = dense[tk as usize];
            }
            if skip_space {
                trans[row + space_class] = dense[k];
            }
        }
        // Padded to a power of two (never read past `total`, see `step`); a `vec!` of zeros
        // leaves the padding's pages untouched.
        let padded = total.max(1).next_power_of_two();
        let trans = if order.len() <= narrow.min(usize::from(u16::MAX)) {
            let mut small = vec![0u16; padded];
            for (n, &t) in small.iter_mut().zip(&trans) {
                *n = t as u16;
            }
            Table::Narrow(small)
        } else {
            trans.resize(padded, 0);
            Table::Wide(trans)
        };
        let mut ranges = Vec::with_capacity(matching.len());
        let mut pats = Vec::new();
        for &k in &matching {
            let s = order[k];
            let a = pats.len() as u32;
            for m in 0..nfa.match_len(s) {
                pats.push(nfa.match_pattern(s, m).as_u32());
            }
            ranges.push((a, pats.len() as u32));
        }
        let start_pats = matching
            .iter()
            .position(|&k| k == 0)
            .and_then(|j| ranges.get(j).copied())
            .unwrap_or((0, 0));
        let lens: Vec<u32> = (0..nfa.patterns_len())
            .map(|p| aho_corasick::PatternID::new(p).map_or(0, |pid| nfa.pattern_len(pid) as u32))
            .collect();
        let max_len = lens.iter().copied().max().unwrap_or(0) as usize;
        Ok(Scanner {
            classes,
            shift,
            space: space_class as u8,
            start: dense[0],
            first_match: plain.len() as u32,
            trans,
            ranges,
            pats,
            lens,
            start_pats,
            max_len,
            skips: skip_space,
        })
    }

    /// Calls `f` with every overlapping match in `hay`, `(pattern, start, end)`, in order, until
    /// it returns false; returns false then, true when every match was seen. (The table's width
    /// is looked at once per haystack, not per match.)
    ///
    /// A long haystack (a raw body) is walked as four quarters at once, and its matches come
    /// out of the quarters interleaved, each by its end offset ([`Scanner::each_match_split`]).
    #[inline]
    pub fn each_match(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize) -> bool) -> bool {
        // (Each quarter overlaps the next by a pattern's length: a short haystack, or a very
        // long pattern, would walk much of it twice.)
        if hay.len() >= SPLIT_MIN && self.max_len * 8 <= hay.len() {
            if let Some(all) = self.each_match_split(hay, &mut f) {
                return all;
            }
        }
        match &self.trans {
            Table::Narrow(t) => self.iter(t, hay).all(|(p, s, e)| f(p, s, e)),
            Table::Wide(t) => self.iter(t, hay).all(|(p, s, e)| f(p, s, e)),
        }
    }

    /// Where the walk of `hay` first reaches a match state, or `None` when it holds no pattern:
    /// one tight loop and no set-up for reporting, for the common value that holds nothing.
    /// With `Some`, [`Scanner::each_match_from`] reports every match from there. `None` is also
    /// returned for a haystack [`Scanner::each_match`] would walk as quarters and for a
    /// scanner with an empty pattern; call it then.
    #[inline]
    pub fn first_match(&self, hay: &[u8]) -> Option<Result<First, ()>> {
        if hay.len() >= SPLIT_MIN || self.start_pats.0 != self.start_pats.1 {
            return Some(Err(()));
        }
        let (at, s) = match &self.trans {
            Table::Narrow(t) => walk(self, t, hay, 0, self.start),
            Table::Wide(t) => walk(self, t, hay, 0, self.start),
        };
        (s >= self.first_match).then_some(Ok(First { at, state: s }))
    }

    /// [`Scanner::each_match`] for a haystack whose walk reached its first match state at
    /// `first` ([`Scanner::first_match`]): the same matches in the same order.
    pub fn each_match_from(
        &self,
        hay: &[u8],
        first: First,
        mut f: impl FnMut(usize, usize, usize) -> bool,
    ) -> bool {
        let m = (first.state - self.first_match) as usize;
        let (a, z) = self.ranges.get(m).copied().unwrap_or((0, 0));
        let pend = self.pats.get(a as usize..z as usize).unwrap_or(&[]);
        match &self.trans {
            Table::Narrow(t) => self.resume(t, hay, first, pend).all(|(p, s, e)| f(p, s, e)),
            Table::Wide(t) => self.resume(t, hay, first, pend).all(|(p, s, e)| f(p, s, e)),
        }
    }

    /// The matches of `hay` from the match state `first`, its patterns `pend` first.
    #[inline]
    fn resume<'s, 'h, T: Copy + Into<u32>>(
        &'s self,
        trans: &'s [T],
        hay: &'h [u8],
        first: First,
        pend: &'s [u32],
    ) -> Matches<'s, 'h, T> {
        Matches {
            sc: self,
            trans,
            hay,
            at: first.at,
            state: first.state,
            pend,
        }
    }

    /// [`Scanner::each_match`] over four quarters of `hay` walked in lockstep. The walk is a
    /// chain of dependent loads (each state's row is known only once the previous step is
    /// done), so one walk leaves the CPU waiting on each load; independent ones overlap (a
    /// 64 KB JSON body's raw scan: ≈ 180 µs alone, ≈ 82 µs as two halves, session 16; four
    /// quarters: −8 to −12 % of a bench `post64k` body's whole inspection, session 22). Each
    /// quarter starts at its first byte `q` in the start state, is walked on to the next
    /// quarter's start plus `longest pattern - 1` and reports the matches that start before
    /// the next quarter: every match once. The same matches as the plain walk, in another
    /// order (by end offset within each quarter).
    ///
    /// With skipped bytes a match can be longer than its pattern, so the quarters meet where
    /// the walks agree instead: the state after a byte depends only on the last `longest
    /// pattern` bytes that are not skipped, so from the point `cut` where that many have been
    /// read since a quarter's start, its walk and the previous quarter's are in the same
    /// state. Each quarter is walked to the next one's `cut` and reports the matches that end
    /// after its own `cut` (the first: all from the start). `None` when a quarter has no such
    /// point (then nothing was reported).
    fn each_match_split(
        &self,
        hay: &[u8],
        mut f: impl FnMut(usize, usize, usize) -> bool,
    ) -> Option<bool> {
        match &self.trans {
            Table::Narrow(t) => self.split_walk(t, hay, &mut f),
            Table::Wide(t) => self.split_walk(t, hay, &mut f),
        }
    }

    fn split_walk<T: Copy + Into<u32>>(
        &self,
        trans: &[T],
        hay: &[u8],
        f: &mut impl FnMut(usize, usize, usize) -> bool,
    ) -> Option<bool> {
        const N: usize = 4;
        let step = |s: u32, b: u8| self.step(trans, s, b);
        let len = hay.len();
        // Stream k starts at `from[k]` in the start state and walks to `to[k]`; it reports the
        // matches that start in `lo[k]..hi[k]` and end after `after[k]`.
        let from: [usize; N] = std::array::from_fn(|k| len * k / N);
        let mut to = [len; N];
        let mut lo = [0usize; N];
        let mut hi = [usize::MAX; N];
        let mut after = [0usize; N];
        if self.skips {
            for k in 1..N {
                let mut seen = 0;
                let mut cut = None;
                for (i, &b) in hay.iter().enumerate().skip(from[k]) {
                    if self.classes[usize::from(b)] != self.space {
                        seen += 1;
                        if seen >= self.max_len {
                            cut = Some(i + 1);
                            break;
                        }
                    }
                }
                let cut = cut?;
                to[k - 1] = cut;
                after[k] = cut;
            }
        } else {
            for k in 0..N {
                lo[k] = from[k];
                if k + 1 < N {
                    hi[k] = from[k + 1];
                    to[k] = (from[k + 1] + self.max_len.saturating_sub(1)).min(len);
                }
            }
        }
        // The empty pattern's matches, at offset 0, as the plain walk reports them.
        let (a, z) = self.start_pats;
        for &p in self.pats.get(a as usize..z as usize).unwrap_or(&[]) {
            if !f(p as usize, 0, 0) {
                return Some(false);
            }
        }
        let seg: [&[u8]; N] = std::array::from_fn(|k| hay.get(from[k]..to[k]).unwrap_or(&[]));
        let both = seg.iter().map(|s| s.len()).min().unwrap_or(0);
        let common: [&[u8]; N] = std::array::from_fn(|k| seg[k].get(..both).unwrap_or(&[]));
        let mut s = [self.start; N];
        let mut i = 0;
        while i < both {
            // The four walks on to the next match state of any (a loop of its own, whose
            // states stay in registers), then the matches of those in one.
            (i, s) = walk4(self, trans, common, i, s);
            for k in 0..N {
                let end = from[k] + i;
                if s[k] >= self.first_match
                    && end > after[k]
                    && !self.report(s[k], end, lo[k], hi[k], f)
                {
                    return Some(false);
                }
            }
        }
        // The rest of each stream, alone.
        for k in 0..N {
            let mut st = s[k];
            for (j, &b) in seg[k].iter().enumerate().skip(both) {
                st = step(st, b);
                let end = from[k] + j + 1;
                if st >= self.first_match
                    && end > after[k]
                    && !self.report(st, end, lo[k], hi[k], f)
                {
                    return Some(false);
                }
            }
        }
        Some(true)
    }

    /// The state after state `s` reads byte `b`. The table's length is a power of two past
    /// every row ([`Scanner::build`] pads it), so the index masked by `len - 1` is the index
    /// itself and always in bounds: with the length known not to be zero (the walks check it
    /// once), the compiler drops the per-byte bounds check. An empty table (none is built)
    /// gives the start state.
    #[inline(always)]
    fn step<T: Copy + Into<u32>>(&self, trans: &[T], s: u32, b: u8) -> u32 {
        let index = (s as usize) << self.shift | usize::from(self.classes[usize::from(b)]);
        trans
            .get(index & trans.len().wrapping_sub(1))
            .map_or(self.start, |&t| t.into())
    }

    /// Calls `f` with the patterns of match state `s` reached at `end` whose match starts in
    /// `lo..hi`; false when `f` says stop.
    #[inline]
    fn report(
        &self,
        s: u32,
        end: usize,
        lo: usize,
        hi: usize,
        f: &mut impl FnMut(usize, usize, usize) -> bool,
    ) -> bool {
        let m = (s - self.first_match) as usize;
        let (a, z) = self.ranges.get(m).copied().unwrap_or((0, 0));
        for &p in self.pats.get(a as usize..z as usize).unwrap_or(&[]) {
            let len = self.lens.get(p as usize).copied().unwrap_or(0) as usize;
            let start = end.saturating_sub(len);
            if (lo..hi).contains(&start) && !f(p as usize, start, end) {
                return false;
            }
        }
        true
    }

    /// Every overlapping match in `hay` by the plain walk, collected.
    #[cfg(test)]
    pub fn iter_all(&self, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        match &self.trans {
            Table::Narrow(t) => self.iter(t, hay).collect(),
            Table::Wide(t) => self.iter(t, hay).collect(),
        }
    }

    /// Every overlapping match in `hay`, collected.
    #[cfg(test)]
    pub fn matches(&self, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        self.each_match(hay, |p, s, e| {
            v.push((p, s, e));
            true
        });
        v
    }

    #[inline]
    fn iter<'s, 'h, T: Copy + Into<u32>>(
        &'s self,
        trans: &'s [T],
        hay: &'h [u8],
    ) -> Matches<'s, 'h, T> {
        let (a, z) = self.start_pats;
        Matches {
            sc: self,
            trans,
            hay,
            at: 0,
            state: self.start,
            pend: self.pats.get(a as usize..z as usize).unwrap_or(&[]),
        }
    }
}

/// Iterator over the overlapping matches of a haystack (see [`Scanner::each_match`]).
struct Matches<'s, 'h, T> {
    sc: &'s Scanner,
    trans: &'s [T],
    hay: &'h [u8],
    at: usize,
    state: u32,
    /// Patterns of the current match state not reported yet; they end at `at`.
    pend: &'s [u32],
}

impl<T: Copy + Into<u32>> Iterator for Matches<'_, '_, T> {
    type Item = (usize, usize, usize);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize, usize)> {
        let sc = self.sc;
        loop {
            if let Some((&p, rest)) = self.pend.split_first() {
                self.pend = rest;
                let len = sc.lens.get(p as usize).copied().unwrap_or(0) as usize;
                return Some((p as usize, self.at.saturating_sub(len), self.at));
            }
            let (at, s) = walk(sc, self.trans, self.hay, self.at, self.state);
            // The end of the haystack, or no match state before it. (The state after the
            // last byte may be a match state already reported: stop, do not report it again.)
            if at == self.at || s < sc.first_match {
                self.at = at;
                return None;
            }
            self.state = s;
            self.at = at;
            let m = (s - sc.first_match) as usize;
            let (a, z) = sc.ranges.get(m).copied().unwrap_or((0, 0));
            self.pend = sc.pats.get(a as usize..z as usize).unwrap_or(&[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scanner;
    use aho_corasick::{AhoCorasick, MatchKind};
    use proptest::prelude::*;

    /// `aho_corasick`'s own automaton for `patterns`, with the scanner's settings.
    fn ac_of(patterns: &[Vec<u8>]) -> AhoCorasick {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn overlapping(ac: &AhoCorasick, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        ac.find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect()
    }

    fn reference(patterns: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        overlapping(&ac_of(patterns), hay)
    }

    fn ours(patterns: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let sc = Scanner::new(patterns).unwrap_or_else(|e| panic!("{e}"));
        sc.matches(hay)
    }

    #[test]
    fn overlapping_matches_in_order() {
        let pats: Vec<Vec<u8>> = ["he", "she", "hers", "his", "SELECT", "e"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        // Ends on a match state: reported once.
        let hay = b"ushers say Select his";
        let got = ours(&pats, hay);
        assert_eq!(got, reference(&pats, hay));
        assert!(got.contains(&(4, 11, 17)), "{got:?}");
        assert!(got.contains(&(1, 1, 4)) && got.contains(&(0, 2, 4)) && got.contains(&(2, 2, 6)));
    }

    /// The shipped rule set's own patterns, over every line of both corpora, with the table of
    /// two-byte entries and with the table of four-byte entries (automata of more than 65,535
    /// states).
    #[test]
    fn same_matches_as_aho_corasick_on_the_corpora() {
        let pats = crate::ruleset::gate_tests::shipped().patterns;
        assert!(pats.len() > 100, "{} patterns", pats.len());
        let narrow = Scanner::new(&pats).unwrap_or_else(|e| panic!("{e}"));
        let wide = Scanner::build_narrow_up_to(&pats, None, 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(narrow.trans, super::Table::Narrow(_)));
        assert!(matches!(wide.trans, super::Table::Wide(_)));
        // `step` masks its index by the table's length: a power of two past every row.
        for sc in [&narrow, &wide] {
            let len = match &sc.trans {
                super::Table::Narrow(t) => t.len(),
                super::Table::Wide(t) => t.len(),
            };
            assert!(len.is_power_of_two(), "{len}");
        }
        let ac = ac_of(&pats);
        let mut hits = 0;
        for line in crate::ruleset::gate_tests::corpora_lines() {
            let want = overlapping(&ac, &line);
            let mut sorted = want.clone();
            sorted.sort_unstable();
            for sc in [&narrow, &wide] {
                let got = sc.iter_all(&line);
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&line));
                // From the first match state on: the same matches; none means none.
                match sc.first_match(&line) {
                    None => assert!(want.is_empty(), "{:?}", String::from_utf8_lossy(&line)),
                    Some(Ok(first)) => {
                        let mut from = Vec::new();
                        sc.each_match_from(&line, first, |p, s, e| {
                            from.push((p, s, e));
                            true
                        });
                        assert_eq!(from, want, "{:?}", String::from_utf8_lossy(&line));
                    }
                    Some(Err(())) => assert!(line.len() >= super::SPLIT_MIN),
                }
                // A long line is walked as quarters: the same matches, in another order.
                let mut split = sc.matches(&line);
                split.sort_unstable();
                assert_eq!(split, sorted, "{:?}", String::from_utf8_lossy(&line));
            }
            hits += want.len();
        }
        assert!(hits > 10_000, "{hits} matches");
    }

    /// Checks that the quarters' walk and `each_match` find the plain walk's matches in
    /// `text` (as sets); their number.
    fn same_split_matches(sc: &Scanner, text: &[u8]) -> usize {
        let mut want = sc.iter_all(text);
        want.sort_unstable();
        let mut got = Vec::new();
        assert_eq!(
            sc.each_match_split(text, |p, s, e| {
                got.push((p, s, e));
                true
            }),
            Some(true)
        );
        got.sort_unstable();
        assert_eq!(got, want);
        let mut each = sc.matches(text);
        each.sort_unstable();
        assert_eq!(each, want, "each_match, which splits such a text");
        want.len()
    }

    /// The quarters' walk finds the plain walk's matches, as a set, on long texts (8 KB and
    /// more) made of the corpora's lines: the raw bodies it is for, with matches on both
    /// sides of and across the quarters' boundaries.
    #[test]
    fn split_walk_finds_every_match_on_long_texts() {
        let pats = crate::ruleset::gate_tests::shipped().patterns;
        let sc = Scanner::new(&pats).unwrap_or_else(|e| panic!("{e}"));
        let lines = crate::ruleset::gate_tests::corpora_lines();
        let mut text = Vec::new();
        let mut checked = 0;
        for line in &lines {
            if checked > 50_000 {
                break;
            }
            text.extend_from_slice(line);
            text.push(b'&');
            if text.len() < 8192 {
                continue;
            }
            checked += same_split_matches(&sc, &text);
            text.clear();
        }
        assert!(checked > 10_000, "{checked} matches");
    }

    /// The same for a scanner with skipped bytes (the fast path's): its quarters meet where the
    /// walks agree, after the longest pattern's length in bytes that are not skipped. The
    /// texts hold runs of skipped bytes inside patterns and around the middle.
    #[test]
    fn split_walk_with_skipped_bytes_finds_every_match() {
        const SKIP: &[u8] = crate::plain::SKIPPED;
        let mut pats: Vec<Vec<u8>> = crate::ruleset::gate_tests::shipped()
            .patterns
            .iter()
            .map(|p| {
                p.iter()
                    .filter(|b| !SKIP.contains(b))
                    .map(u8::to_ascii_lowercase)
                    .collect()
            })
            .filter(|p: &Vec<u8>| !p.is_empty())
            .collect();
        pats.sort();
        pats.dedup();
        let sc = Scanner::skipping(&pats, SKIP).unwrap_or_else(|e| panic!("{e}"));
        let lines = crate::ruleset::gate_tests::corpora_lines();
        let (mut text, mut checked, mut texts) = (Vec::new(), 0, 0);
        for (k, line) in lines.iter().enumerate() {
            if checked > 50_000 {
                break;
            }
            // Skipped bytes inside words, and long runs of them.
            for (j, &b) in line.iter().enumerate() {
                text.push(b);
                if (j + k) % 7 == 0 {
                    text.extend_from_slice(&b"  ,;'"[..1 + (j + k) % 5]);
                }
            }
            text.extend_from_slice(if k % 3 == 0 {
                &b"          &"[..]
            } else {
                b"&"
            });
            if text.len() < 8192 {
                continue;
            }
            checked += same_split_matches(&sc, &text);
            texts += 1;
            text.clear();
        }
        assert!(
            checked > 10_000 && texts > 5,
            "{checked} matches in {texts} texts"
        );
        // Only skipped bytes after the middle (so in the last quarters): no meeting point, the
        // plain walk does it.
        let mut only = b"select union".repeat(100);
        only.extend(std::iter::repeat_n(b' ', 2000));
        assert_eq!(sc.each_match_split(&only, |_, _, _| true), None);
        let mut each = sc.matches(&only);
        each.sort_unstable();
        let mut want = sc.iter_all(&only);
        want.sort_unstable();
        assert_eq!(each, want);
    }

    proptest! {
        /// The plain walk gives the reference's matches in its order; the quarters' walk
        /// gives them as a set.
        #[test]
        fn same_matches_as_aho_corasick_on_random_bytes(
            pats in proptest::collection::vec(proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'B'), Just(b'c'), Just(b'\''), Just(0xC3u8)], 1..5), 1..12),
            hay in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'b'), Just(b'C'), Just(b'\''), Just(0xC3u8), any::<u8>()], 0..200),
        ) {
            let want = reference(&pats, &hay);
            prop_assert_eq!(ours(&pats, &hay), want.clone());
            let sc = Scanner::new(&pats).unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            sc.each_match_split(&hay, |p, s, e| {
                got.push((p, s, e));
                true
            });
            got.sort_unstable();
            let mut want = want;
            want.sort_unstable();
            prop_assert_eq!(got, want);
            // With `'` and `C` skipped (no pattern holding them): the split walk, where the
            // text has a meeting point, gives the plain walk's matches.
            let kept: Vec<Vec<u8>> = pats
                .iter()
                .map(|p| p.iter().copied().filter(|&b| b != b'\'' && b != b'C' && b != b'c').collect::<Vec<u8>>())
                .filter(|p| !p.is_empty())
                .collect();
            if !kept.is_empty() {
                let sk = Scanner::skipping(&kept, b"'Cc").unwrap_or_else(|e| panic!("{e}"));
                let mut got = Vec::new();
                let split = sk.each_match_split(&hay, |p, s, e| {
                    got.push((p, s, e));
                    true
                });
                let mut want = sk.iter_all(&hay);
                want.sort_unstable();
                got.sort_unstable();
                if split.is_some() {
                    prop_assert_eq!(got, want);
                } else {
                    prop_assert!(got.is_empty());
                }
            }
        }
    }
}
