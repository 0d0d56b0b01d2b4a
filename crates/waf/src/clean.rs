//! Across requests: request-header values, header names, argument and cookie names and the
//! method that matched nothing.
//!
//! Browsers and API clients send the same `User-Agent`, `Accept`, `Accept-Encoding`,
//! `Accept-Language`, `Host`, `Origin` or API-key header on request after request, and an API's
//! argument names, JSON keys and cookie names are its schema: `page`, `sort`, `user.email`,
//! `session`, on every request. What the engine finds in a value depends only on the rule set, the
//! policy (mode, paranoia, exclusions), the target kind, the target name and the value's bytes, so
//! a value that matched no rule under a policy matches none the next time either: it is
//! remembered and not inspected again under that policy.
//!
//! What is remembered, and what never is:
//! - only values that produced **no** finding (a value that matched anything, including an
//!   already-matched rule, is inspected again on every request, so it scores on every request);
//! - only `headers` and `header_names` targets (never the `Cookie` header: a session's cookies
//!   are a client's data like its arguments), argument names (query, form, JSON keys, multipart
//!   fields, XML attributes), cookie names and the method; never argument or cookie values, the
//!   path, the URI, the query string or the body;
//! - entries are verified byte for byte (the hash only finds the candidate);
//! - bound to one policy of one rule set by their unique ids: another policy or a reloaded rule
//!   set starts from an empty memory;
//! - bounded: header values and names in one memory of at most [`MAX_ENTRIES`] values and
//!   [`MAX_ARENA`] bytes, argument and cookie names and methods in another of at most
//!   [`MAX_NAMES`] and [`MAX_ARENA`] bytes, per accumulator (so a JSON body with many keys cannot
//!   push the headers out); when one is full it is emptied and starts again, so a client spraying
//!   distinct values only keeps it cold;
//! - off while `explain` records every match.

use crate::seen::Seen;
use crate::target::Kind;

/// Most header values and names remembered per accumulator.
pub const MAX_ENTRIES: usize = 256;
/// Most argument names, cookie names and methods remembered per accumulator.
pub const MAX_NAMES: usize = 1024;
/// Most bytes (names and values) remembered per accumulator, in each memory.
pub const MAX_ARENA: usize = 32 << 10;
/// Most header blocks remembered (see [`CleanMemory::contains_block`]).
pub const MAX_BLOCKS: usize = 64;
/// Longest header block remembered, in bytes.
pub const MAX_BLOCK: usize = 8 << 10;

/// Which memory a target uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Header values and header names.
    Headers,
    /// Argument names, cookie names, the method.
    Names,
}

/// The memory of clean values, owned by one [`crate::Inspection`].
#[derive(Debug)]
pub(crate) struct CleanMemory {
    headers: Seen,
    names: Seen,
    /// Whole header blocks (every header but `Cookie`, names and values) all of whose values
    /// were found clean together: a client that sends the same headers on every request is
    /// cleared with one look-up instead of one per header name and value.
    blocks: Seen,
    /// (rule set uid, policy uid) the entries were found clean under.
    owner: (u64, u64),
    /// Off: nothing is looked up or remembered.
    pub on: bool,
    /// Values not inspected in this request because they were remembered clean.
    pub hits: u32,
}

impl Default for CleanMemory {
    fn default() -> Self {
        CleanMemory {
            headers: Seen::bounded(MAX_ENTRIES, MAX_ARENA),
            names: Seen::bounded(MAX_NAMES, MAX_ARENA),
            blocks: Seen::bounded_values(MAX_BLOCKS, MAX_BLOCKS * MAX_BLOCK / 8, MAX_BLOCK),
            owner: (0, 0),
            on: true,
            hits: 0,
        }
    }
}

impl CleanMemory {
    /// Binds the memory to a rule set and a policy (their uids, never 0): forgets everything
    /// remembered under another pair.
    pub fn bind(&mut self, ruleset_uid: u64, policy_uid: u64) {
        if self.owner != (ruleset_uid, policy_uid) {
            self.headers.clear();
            self.names.clear();
            self.blocks.clear();
            self.owner = (ruleset_uid, policy_uid);
        }
    }

    /// The memory this target takes part in, if any.
    #[inline]
    pub fn applies(&self, kind: Kind, name: &[u8]) -> Option<Slot> {
        if !self.on || self.owner.1 == 0 {
            return None;
        }
        match kind {
            Kind::Header | Kind::HeaderName if !name.eq_ignore_ascii_case(b"cookie") => {
                Some(Slot::Headers)
            }
            Kind::ArgName | Kind::CookieName | Kind::Method => Some(Slot::Names),
            _ => None,
        }
    }

    fn set(&self, slot: Slot) -> &Seen {
        match slot {
            Slot::Headers => &self.headers,
            Slot::Names => &self.names,
        }
    }

    /// True when the value was found clean under the bound policy.
    #[inline]
    pub fn contains(&self, slot: Slot, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        self.set(slot).contains(kind, name, value)
    }

    /// Remembers a value that matched nothing; empties its memory first when it is full.
    pub fn remember(&mut self, slot: Slot, kind: Kind, name: &[u8], value: &[u8]) {
        if value.len() > crate::seen::MAX_VALUE || name.len() > crate::seen::MAX_VALUE {
            return; // never kept (and no reason to forget the others)
        }
        let set = match slot {
            Slot::Headers => &mut self.headers,
            Slot::Names => &mut self.names,
        };
        if !set.insert(kind, name, value) && set.len() > 0 {
            set.clear();
            set.insert(kind, name, value);
        }
    }

    /// True when header blocks can be remembered now (the memory is on and bound).
    #[inline]
    pub fn blocks_apply(&self) -> bool {
        self.on && self.owner.1 != 0
    }

    /// True when the header block `key` (see `Engine::headers_known`) was found clean.
    #[inline]
    pub fn contains_block(&self, key: &[u8]) -> bool {
        self.blocks.contains(Kind::Header, b"", key)
    }

    /// Remembers a header block all of whose names and values matched nothing; empties the
    /// block memory first when it is full.
    pub fn remember_block(&mut self, key: &[u8]) {
        if key.len() > MAX_BLOCK {
            return;
        }
        if !self.blocks.insert(Kind::Header, b"", key) && self.blocks.len() > 0 {
            self.blocks.clear();
            self.blocks.insert(Kind::Header, b"", key);
        }
    }

    /// Values remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.headers.len() + self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_targets_take_part_and_only_when_bound() {
        let mut c = CleanMemory::default();
        assert_eq!(c.applies(Kind::Header, b"user-agent"), None, "unbound");
        c.bind(1, 2);
        assert_eq!(c.applies(Kind::Header, b"user-agent"), Some(Slot::Headers));
        assert_eq!(
            c.applies(Kind::HeaderName, b"user-agent"),
            Some(Slot::Headers)
        );
        assert_eq!(c.applies(Kind::Header, b"cookie"), None);
        assert_eq!(c.applies(Kind::Header, b"Cookie"), None);
        for k in [Kind::ArgName, Kind::CookieName, Kind::Method] {
            assert_eq!(c.applies(k, b"x"), Some(Slot::Names), "{k:?}");
        }
        for k in [
            Kind::QueryArg,
            Kind::BodyArg,
            Kind::Cookie,
            Kind::Path,
            Kind::Uri,
            Kind::Query,
            Kind::Body,
            Kind::Filename,
            Kind::PartHeader,
        ] {
            assert_eq!(c.applies(k, b"x"), None, "{k:?}");
        }
        c.on = false;
        assert_eq!(c.applies(Kind::Header, b"user-agent"), None);
        assert_eq!(c.applies(Kind::ArgName, b"page"), None);
    }

    #[test]
    fn names_do_not_push_headers_out() {
        let mut c = CleanMemory::default();
        c.bind(1, 1);
        c.remember(Slot::Headers, Kind::Header, b"accept", b"*/*");
        for i in 0..MAX_NAMES * 2 {
            let n = format!("key{i}");
            c.remember(Slot::Names, Kind::ArgName, n.as_bytes(), n.as_bytes());
        }
        assert!(c.contains(Slot::Headers, Kind::Header, b"accept", b"*/*"));
    }

    #[test]
    fn another_policy_or_rule_set_forgets_everything() {
        let mut c = CleanMemory::default();
        c.bind(1, 2);
        c.remember(Slot::Headers, Kind::Header, b"accept", b"*/*");
        assert!(c.contains(Slot::Headers, Kind::Header, b"accept", b"*/*"));
        c.bind(1, 2);
        assert!(
            c.contains(Slot::Headers, Kind::Header, b"accept", b"*/*"),
            "same pair"
        );
        c.bind(1, 3);
        assert!(
            !c.contains(Slot::Headers, Kind::Header, b"accept", b"*/*"),
            "another policy"
        );
        c.remember(Slot::Headers, Kind::Header, b"accept", b"*/*");
        c.bind(4, 3);
        assert!(
            !c.contains(Slot::Headers, Kind::Header, b"accept", b"*/*"),
            "another rule set"
        );
    }

    #[test]
    fn a_full_memory_starts_again_and_stays_bounded() {
        let mut c = CleanMemory::default();
        c.bind(1, 1);
        for i in 0..MAX_ENTRIES * 3 {
            c.remember(
                Slot::Headers,
                Kind::Header,
                b"x-n",
                i.to_string().as_bytes(),
            );
            assert!(c.len() <= MAX_ENTRIES);
        }
        let last = (MAX_ENTRIES * 3 - 1).to_string();
        assert!(c.contains(Slot::Headers, Kind::Header, b"x-n", last.as_bytes()));
        assert!(
            !c.contains(Slot::Headers, Kind::Header, b"x-n", b"0"),
            "emptied when full"
        );
        let long = vec![b'a'; crate::seen::MAX_VALUE + 1];
        c.remember(Slot::Headers, Kind::Header, b"x-long", &long);
        assert!(
            !c.contains(Slot::Headers, Kind::Header, b"x-long", &long),
            "long values are not kept"
        );
        assert!(
            c.contains(Slot::Headers, Kind::Header, b"x-n", last.as_bytes()),
            "a long value does not empty the memory"
        );
    }
}
