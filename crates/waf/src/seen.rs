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
}

/// The per-request memory. Its buffers are kept from request to request.
#[derive(Debug)]
pub(crate) struct Seen {
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
    pub fn check_insert(&mut self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let hash = self.hasher.hash_one((kind as u8, name, value));
        if self.find(hash, kind, name, value) {
            return true;
        }
        self.insert_hashed(hash, kind, name, value);
        false
    }

    /// True when `(kind, name, value)` is remembered.
    pub fn contains(&self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        self.find(
            self.hasher.hash_one((kind as u8, name, value)),
            kind,
            name,
            value,
        )
    }

    /// Remembers `(kind, name, value)` (not already remembered); false when it is too long or
    /// the set is full.
    pub fn insert(&mut self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        if value.len() > self.max_value || name.len() > self.max_value {
            return false;
        }
        let hash = self.hasher.hash_one((kind as u8, name, value));
        self.insert_hashed(hash, kind, name, value)
    }

    fn find(&self, hash: u64, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        let (entries, arena) = (&self.entries, &self.arena);
        let same = |&i: &u32| {
            entries.get(i as usize).is_some_and(|e| {
                let (s, n, v) = (e.start as usize, e.name_len as usize, e.value_len as usize);
                e.hash == hash
                    && e.kind == kind as u8
                    && arena.get(s..s + n) == Some(name)
                    && arena.get(s + n..s + n + v) == Some(value)
            })
        };
        self.table.find(hash, same).is_some()
    }

    fn insert_hashed(&mut self, hash: u64, kind: Kind, name: &[u8], value: &[u8]) -> bool {
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
            kind: kind as u8,
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
