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
        Seen {
            recent: [0; RECENT],
            table: HashTable::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
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
        let hash = self.hasher.hash_one((kind as u8, name, value));
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
        e.kind == p.kind as u8
            && n == p.name.len()
            && v == p.value.len()
            && e.name_words == p.name_words
            && e.value_words == p.value_words
            && (n <= 16 || self.arena.get(s..s + n) == Some(p.name))
            && (v <= 16 || self.arena.get(s + n..s + n + v) == Some(p.value))
    }

    /// True when `(kind, name, value)` is remembered.
    pub fn contains(&self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let p = Probe::new(kind, name, value);
        self.recent_is(slot(&p), &p)
            || self
                .find(self.hasher.hash_one((kind as u8, name, value)), &p)
                .is_some()
    }

    /// Remembers `(kind, name, value)` (not already remembered); false when it is too long or
    /// the set is full.
    pub fn insert(&mut self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let p = Probe::new(kind, name, value);
        let hash = self.hasher.hash_one((kind as u8, name, value));
        let added = self.insert_hashed(hash, &p);
        if added {
            self.set_recent(slot(&p), self.entries.len() as u32 - 1);
        }
        added
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
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(value);
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
