//! Per-request memory of the values already inspected.
//!
//! Inspecting the same (kind, name, value) twice in one request gives the same findings, and a
//! rule scores once per request anyway, so the second inspection is skipped. JSON arrays of
//! objects repeat their keys (`args_names`) for every element, and enumerations repeat their
//! values: a 64 KB array of orders has a few dozen distinct keys and thousands of key
//! occurrences. Entries are verified byte for byte (the hash only finds the candidate), so a
//! hash collision can never hide a value. Memory is bounded: values longer than
//! [`MAX_VALUE`] bytes are never remembered, and past [`MAX_ENTRIES`] entries or [`MAX_ARENA`]
//! bytes nothing more is (those values are simply inspected).
//!
//! In front of the hash table, a small direct-mapped table of the entries last found or added,
//! its slot chosen from the kind, the lengths and the value's first and last bytes: a JSON
//! array's keys and repeated values are found there by comparing their bytes with one entry,
//! without hashing them (hashing the name and value through `Hash` and probing the table cost
//! ≈ 200 instructions a lookup). A slot holds only a guess, always checked against the entry
//! it names; a miss costs a few instructions and falls through to the hash table, which alone
//! decides that a value is new. The slot choice is no hash and needs no resistance to chosen
//! collisions.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::target::Kind;

/// Longest value remembered.
pub const MAX_VALUE: usize = 256;
/// Most entries remembered per request.
pub const MAX_ENTRIES: usize = 8192;
/// Most bytes (names and values) kept per request.
pub const MAX_ARENA: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Entry {
    hash: u64,
    /// Where the entry's texts longer than 16 bytes start in the arena: the name, then the
    /// value (shorter ones are all in their words).
    start: u32,
    name_len: u32,
    value_len: u32,
    kind: u8,
    /// [`words`] of the name and of the value: with the lengths, all the bytes of a text of
    /// up to 16, so such an entry is compared without reading the arena.
    name_words: (u64, u64),
    value_words: (u64, u64),
}

/// A `(kind, name, value)` being looked up, with the [`words`] of its name and value.
#[derive(Clone, Copy)]
struct Probe<'a> {
    kind: Kind,
    name: &'a [u8],
    value: &'a [u8],
    name_words: (u64, u64),
    value_words: (u64, u64),
}

impl<'a> Probe<'a> {
    #[inline]
    fn new(kind: Kind, name: &'a [u8], value: &'a [u8]) -> Probe<'a> {
        Probe {
            kind,
            name,
            value,
            name_words: words(name),
            value_words: words(value),
        }
    }
}

/// Slots of the table of recent entries (a power of two).
const RECENT: usize = 256;

/// The recent-entry slot of `(kind, name, value)`: a multiplicative mix of the kind, the
/// lengths and the value's first and last bytes (no hash of the whole: a miss only costs a
/// lookup in the hash table).
#[inline]
fn slot(p: &Probe<'_>) -> usize {
    let (head, tail) = p.value_words;
    let lens = (p.kind as u64) << 48 | (p.name.len() as u64) << 24 | p.value.len() as u64;
    let h = (lens ^ head ^ tail.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - RECENT.trailing_zeros())) as usize
}

/// The first and last eight bytes of `b` (overlapping when shorter than 16), or for a shorter
/// text overlapping loads of four bytes, or its first, middle and last byte: with the length,
/// every byte of a text of up to 16 (the loads of wyhash and rapidhash, without the hash).
#[inline]
fn words(b: &[u8]) -> (u64, u64) {
    if let (Some(h), Some(t)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        return (u64::from_le_bytes(*h), u64::from_le_bytes(*t));
    }
    if let (Some(h), Some(t)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        return (
            u64::from(u32::from_le_bytes(*h)) | u64::from(u32::from_le_bytes(*t)) << 32,
            0,
        );
    }
    match (b.first(), b.get(b.len() / 2), b.last()) {
        (Some(&x), Some(&y), Some(&z)) => {
            (u64::from(x) | u64::from(y) << 8 | u64::from(z) << 16, 0)
        }
        _ => (0, 0),
    }
}

/// The 128-bit product of `a` and `b`, its halves XORed (foldhash's and wyhash's mix).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// The per-request memory. Its buffers are kept from request to request.
#[derive(Debug)]
pub(crate) struct Seen {
    /// The index of the entry last found or added in each slot ([`slot`]). Nothing to forget
    /// between requests: an index is only a guess, checked against the entry it names.
    recent: [u32; RECENT],
    table: HashTable<u32>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    hasher: foldhash::fast::RandomState,
    /// Keys of [`Seen::hash`] for short texts, drawn from `hasher` (so per process).
    seeds: [u64; 5],
    max_entries: usize,
    max_arena: usize,
    max_value: usize,
}

impl Default for Seen {
    fn default() -> Self {
        Seen::bounded(MAX_ENTRIES, MAX_ARENA)
    }
}

impl Seen {
    /// An empty set that keeps at most `max_entries` values and `max_arena` bytes.
    pub fn bounded(max_entries: usize, max_arena: usize) -> Seen {
        Seen::bounded_values(max_entries, max_arena, MAX_VALUE)
    }

    /// Like [`Seen::bounded`], keeping values (and names) of up to `max_value` bytes.
    pub fn bounded_values(max_entries: usize, max_arena: usize, max_value: usize) -> Seen {
        let hasher = foldhash::fast::RandomState::default();
        let seeds = [0u64, 1, 2, 3, 4].map(|i| hasher.hash_one(i));
        Seen {
            recent: [0; RECENT],
            table: HashTable::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            hasher,
            seeds,
            max_entries,
            max_arena,
            max_value,
        }
    }

    /// Values remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every value (a new request).
    pub fn clear(&mut self) {
        self.table.clear();
        self.entries.clear();
        self.arena.clear();
    }

    /// True when `(kind, name, value)` was already inspected in this request; otherwise
    /// remembers it (within the bounds) and returns false.
    #[inline]
    pub fn check_insert(&mut self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let p = Probe::new(kind, name, value);
        let slot = slot(&p);
        if self.recent_is(slot, &p) {
            return true;
        }
        let hash = self.hash(&p);
        if let Some(i) = self.find(hash, &p) {
            self.set_recent(slot, i);
            return true;
        }
        if self.insert_hashed(hash, &p) {
            self.set_recent(slot, self.entries.len() as u32 - 1);
        }
        false
    }

    /// True when the recent entry of `slot` is the probe's.
    #[inline]
    fn recent_is(&self, slot: usize, p: &Probe<'_>) -> bool {
        self.recent
            .get(slot)
            .and_then(|&i| self.entries.get(i as usize))
            .is_some_and(|e| self.is(e, p))
    }

    #[inline]
    fn set_recent(&mut self, slot: usize, entry: u32) {
        if let Some(r) = self.recent.get_mut(slot) {
            *r = entry;
        }
    }

    /// Whether entry `e` holds the probe's `(kind, name, value)`: the kinds, the lengths and
    /// the [`words`], then the bytes of a name or value longer than 16.
    #[inline]
    fn is(&self, e: &Entry, p: &Probe<'_>) -> bool {
        let (s, n, v) = (e.start as usize, e.name_len as usize, e.value_len as usize);
        // The arena holds the name when it is longer than 16 bytes, then the value when it is.
        let vs = s + if n > 16 { n } else { 0 };
        e.kind == p.kind as u8
            && n == p.name.len()
            && v == p.value.len()
            && e.name_words == p.name_words
            && e.value_words == p.value_words
            && (n <= 16 || self.arena.get(s..s + n) == Some(p.name))
            && (v <= 16 || self.arena.get(vs..vs + v) == Some(p.value))
    }

    /// True when `(kind, name, value)` is remembered.
    pub fn contains(&self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let p = Probe::new(kind, name, value);
        self.recent_is(slot(&p), &p) || self.find(self.hash(&p), &p).is_some()
    }

    /// Remembers `(kind, name, value)` (not already remembered); false when it is too long or
    /// the set is full.
    pub fn insert(&mut self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let p = Probe::new(kind, name, value);
        let hash = self.hash(&p);
        let added = self.insert_hashed(hash, &p);
        if added {
            self.set_recent(slot(&p), self.entries.len() as u32 - 1);
        }
        added
    }

    /// The probe's hash. A name or value of up to 16 bytes is all in its [`words`] and length,
    /// which a folded multiply with the per-process keys mixes; a longer one is hashed whole.
    /// (Hashing the three parts through `Hash`, with its length prefixes and a call per part,
    /// cost ≈ 50 instructions a lookup, the most of one that misses.)
    #[inline]
    fn hash(&self, p: &Probe<'_>) -> u64 {
        let [k0, k1, k2, k3, k4] = self.seeds;
        let a = match p.name.len() {
            0..=16 => fold(p.name_words.0 ^ k0, p.name_words.1 ^ k1),
            _ => self.hasher.hash_one(p.name),
        };
        let b = match p.value.len() {
            0..=16 => fold(p.value_words.0 ^ k2, p.value_words.1 ^ k3),
            _ => self.hasher.hash_one(p.value),
        };
        let lens = (p.kind as u64) << 48 | (p.name.len() as u64) << 24 | p.value.len() as u64;
        fold(a ^ lens, b ^ k4)
    }

    /// The index of the probe's entry, whose hash is `hash`.
    fn find(&self, hash: u64, p: &Probe<'_>) -> Option<u32> {
        let same = |&i: &u32| {
            self.entries
                .get(i as usize)
                .is_some_and(|e| e.hash == hash && self.is(e, p))
        };
        self.table.find(hash, same).copied()
    }

    fn insert_hashed(&mut self, hash: u64, p: &Probe<'_>) -> bool {
        let (name, value) = (p.name, p.value);
        if self.entries.len() >= self.max_entries
            || self.arena.len() + name.len() + value.len() > self.max_arena
        {
            return false;
        }
        let (Ok(start), Ok(name_len), Ok(value_len), Ok(idx)) = (
            u32::try_from(self.arena.len()),
            u32::try_from(name.len()),
            u32::try_from(value.len()),
            u32::try_from(self.entries.len()),
        ) else {
            return false;
        };
        // A text of up to 16 bytes is all in its words: only longer ones go to the arena.
        if name.len() > 16 {
            self.arena.extend_from_slice(name);
        }
        if value.len() > 16 {
            self.arena.extend_from_slice(value);
        }
        self.entries.push(Entry {
            hash,
            start,
            name_len,
            value_len,
            kind: p.kind as u8,
            name_words: p.name_words,
            value_words: p.value_words,
        });
        let entries = &self.entries;
        self.table.insert_unique(hash, idx, |&i| {
            entries.get(i as usize).map_or(0, |e| e.hash)
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{Seen, MAX_ENTRIES, MAX_VALUE};
    use crate::target::Kind;

    #[test]
    fn a_value_is_seen_only_with_the_same_kind_name_and_bytes() {
        let mut s = Seen::default();
        assert!(!s.check_insert(Kind::ArgName, b"id", b"id"));
        assert!(s.check_insert(Kind::ArgName, b"id", b"id"));
        assert!(!s.check_insert(Kind::BodyArg, b"id", b"id"), "another kind");
        assert!(!s.check_insert(Kind::BodyArg, b"ix", b"id"), "another name");
        assert!(
            !s.check_insert(Kind::BodyArg, b"id", b"ix"),
            "another value"
        );
        // Name and value are not confused by where their boundary lies.
        assert!(!s.check_insert(Kind::Cookie, b"ab", b"c"));
        assert!(!s.check_insert(Kind::Cookie, b"a", b"bc"));
        s.clear();
        assert!(
            !s.check_insert(Kind::ArgName, b"id", b"id"),
            "a new request"
        );
    }

    /// The table of recent entries answers only for the very entry: texts that share their
    /// slot's inputs (lengths, first and last eight bytes) but differ in the middle, names
    /// that differ where the slot does not look, kinds, and a new request. Fails when a recent
    /// entry is trusted on its slot or on its first and last bytes alone.
    #[test]
    fn the_recent_entries_answer_only_for_the_same_entry() {
        let mut s = Seen::default();
        let a = b"0123456789-middle-A-0123456789".as_slice();
        let b = b"0123456789-middle-B-0123456789".as_slice();
        assert!(!s.check_insert(Kind::BodyArg, b"note", a));
        assert!(s.check_insert(Kind::BodyArg, b"note", a), "found again");
        assert!(!s.check_insert(Kind::BodyArg, b"note", b), "another middle");
        assert!(s.check_insert(Kind::BodyArg, b"note", b));
        assert!(!s.check_insert(Kind::BodyArg, b"nota", a), "another name");
        assert!(
            !s.check_insert(Kind::BodyArg, b"nXte", a),
            "a name's middle"
        );
        assert!(!s.check_insert(Kind::QueryArg, b"note", a), "another kind");
        // Short texts: every byte counts (lengths 1 to 16 around their loads).
        for len in 1..=16usize {
            let v: Vec<u8> = (0..len as u8).map(|i| b'a' + i).collect();
            assert!(!s.check_insert(Kind::ArgName, &v, &v), "{len}");
            for i in 0..len {
                let mut w = v.clone();
                w[i] = b'Z';
                assert!(!s.contains(Kind::ArgName, &w, &w), "{len} byte {i}");
                assert!(!s.check_insert(Kind::ArgName, &w, &w), "{len} byte {i}");
                assert!(s.check_insert(Kind::ArgName, &w, &w), "{len} byte {i}");
            }
            assert!(s.check_insert(Kind::ArgName, &v, &v), "{len}");
        }
        s.clear();
        assert!(!s.check_insert(Kind::BodyArg, b"note", a), "a new request");
        assert!(!s.contains(Kind::BodyArg, b"note", b), "a new request");
    }

    /// Names and values longer than 16 bytes are kept in the arena, shorter ones only in their
    /// words: every mix of the two is found again, and a text that differs only in its middle
    /// (where the words do not look) is not taken for it. Fails when the value is read at the
    /// wrong place in the arena (after a short name that is not there) or not compared.
    #[test]
    fn long_and_short_names_and_values_are_told_apart() {
        let mut s = Seen::default();
        let long_name = b"orders.customer.address.street".as_slice();
        let other_name = b"orders.customer.aXdress.street".as_slice();
        let long_a = b"0123456789-middle-A-0123456789".as_slice();
        let long_b = b"0123456789-middle-B-0123456789".as_slice();
        for (name, value, twin_name, twin_value) in [
            (
                long_name,
                b"short".as_slice(),
                other_name,
                b"short".as_slice(),
            ),
            (b"n".as_slice(), long_a, b"n".as_slice(), long_b),
            (long_name, long_a, long_name, long_b),
            (
                other_name,
                long_a,
                b"orders.customer.aYdress.street".as_slice(),
                long_a,
            ),
        ] {
            assert!(!s.check_insert(Kind::BodyArg, name, value));
            assert!(s.check_insert(Kind::BodyArg, name, value), "found again");
            assert!(s.contains(Kind::BodyArg, name, value));
            assert!(!s.contains(Kind::BodyArg, twin_name, twin_value), "a twin");
            assert!(
                !s.check_insert(Kind::BodyArg, twin_name, twin_value),
                "a twin"
            );
            assert!(s.check_insert(Kind::BodyArg, twin_name, twin_value));
        }
        // Past the recent-entry table: the hash table alone finds them.
        for i in 0..2000u32 {
            let v = format!("{i}-{}", "x".repeat((i % 40) as usize));
            let n = format!("{}.{i}", "k".repeat((i % 30) as usize));
            assert!(
                !s.check_insert(Kind::BodyArg, n.as_bytes(), v.as_bytes()),
                "{i}"
            );
        }
        for i in 0..2000u32 {
            let v = format!("{i}-{}", "x".repeat((i % 40) as usize));
            let n = format!("{}.{i}", "k".repeat((i % 30) as usize));
            assert!(s.contains(Kind::BodyArg, n.as_bytes(), v.as_bytes()), "{i}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut s = Seen::default();
        let long = vec![b'a'; MAX_VALUE + 1];
        assert!(!s.check_insert(Kind::BodyArg, b"n", &long));
        assert!(
            !s.check_insert(Kind::BodyArg, b"n", &long),
            "long values are not kept"
        );
        for i in 0..MAX_ENTRIES + 10 {
            s.check_insert(Kind::BodyArg, b"n", i.to_string().as_bytes());
        }
        assert_eq!(s.entries.len(), MAX_ENTRIES);
        let past = (MAX_ENTRIES + 5).to_string();
        assert!(!s.check_insert(Kind::BodyArg, b"n", past.as_bytes()));
        assert!(!s.check_insert(Kind::BodyArg, b"n", past.as_bytes()));
        assert!(s.check_insert(Kind::BodyArg, b"n", b"5"));
    }
}
