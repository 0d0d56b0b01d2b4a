//! Across requests: request-header values (and header names) that matched nothing.
//!
//! Browsers and API clients send the same `User-Agent`, `Accept`, `Accept-Encoding`,
//! `Accept-Language`, `Host`, `Origin` or API-key header on request after request. What the
//! engine finds in a value depends only on the rule set, the policy (mode, paranoia, exclusions),
//! the target kind, the header name and the value's bytes, so a header value that matched no
//! rule under a policy matches none the next time either: it is remembered and not inspected
//! again under that policy.
//!
//! What is remembered, and what never is:
//! - only values that produced **no** finding (a value that matched anything, including an
//!   already-matched rule, is inspected again on every request, so it scores on every request);
//! - only `headers` and `header_names` targets, never the `Cookie` header (a session's cookies
//!   are a client's data like its arguments), never arguments, the path or the body;
//! - entries are verified byte for byte (the hash only finds the candidate);
//! - bound to one policy of one rule set by their unique ids: another policy or a reloaded rule
//!   set starts from an empty memory;
//! - bounded: at most [`MAX_ENTRIES`] values and [`MAX_ARENA`] bytes per accumulator; when full it
//!   is emptied and starts again, so a client spraying distinct header values only keeps it cold;
//! - off while `explain` records every match.

use crate::seen::Seen;
use crate::target::Kind;

/// Most header values remembered per accumulator.
pub const MAX_ENTRIES: usize = 256;
/// Most bytes (names and values) remembered per accumulator.
pub const MAX_ARENA: usize = 32 << 10;

/// The memory of clean header values, owned by one [`crate::Inspection`].
#[derive(Debug)]
pub(crate) struct CleanHeaders {
    set: Seen,
    /// (rule set uid, policy uid) the entries were found clean under.
    owner: (u64, u64),
    /// Off: nothing is looked up or remembered.
    pub on: bool,
    /// Values not inspected in this request because they were remembered clean.
    pub hits: u32,
}

impl Default for CleanHeaders {
    fn default() -> Self {
        CleanHeaders {
            set: Seen::bounded(MAX_ENTRIES, MAX_ARENA),
            owner: (0, 0),
            on: true,
            hits: 0,
        }
    }
}

impl CleanHeaders {
    /// Binds the memory to a rule set and a policy (their uids, never 0): forgets everything
    /// remembered under another pair.
    pub fn bind(&mut self, ruleset_uid: u64, policy_uid: u64) {
        if self.owner != (ruleset_uid, policy_uid) {
            self.set.clear();
            self.owner = (ruleset_uid, policy_uid);
        }
    }

    /// Does this target take part at all?
    #[inline]
    pub fn applies(&self, kind: Kind, name: &[u8]) -> bool {
        self.on
            && self.owner.1 != 0
            && matches!(kind, Kind::Header | Kind::HeaderName)
            && !name.eq_ignore_ascii_case(b"cookie")
    }

    /// True when the value was found clean under the bound policy.
    #[inline]
    pub fn contains(&self, kind: Kind, name: &[u8], value: &[u8]) -> bool {
        self.set.contains(kind, name, value)
    }

    /// Remembers a value that matched nothing; empties the memory first when it is full.
    pub fn remember(&mut self, kind: Kind, name: &[u8], value: &[u8]) {
        if value.len() > crate::seen::MAX_VALUE || name.len() > crate::seen::MAX_VALUE {
            return; // never kept (and no reason to forget the others)
        }
        if !self.set.insert(kind, name, value) && self.set.len() > 0 {
            self.set.clear();
            self.set.insert(kind, name, value);
        }
    }

    /// Values remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_header_targets_other_than_cookie_and_only_when_bound() {
        let mut c = CleanHeaders::default();
        assert!(!c.applies(Kind::Header, b"user-agent"), "unbound");
        c.bind(1, 2);
        assert!(c.applies(Kind::Header, b"user-agent"));
        assert!(c.applies(Kind::HeaderName, b"user-agent"));
        assert!(!c.applies(Kind::Header, b"cookie"));
        assert!(!c.applies(Kind::Header, b"Cookie"));
        for k in [
            Kind::QueryArg,
            Kind::BodyArg,
            Kind::Cookie,
            Kind::Path,
            Kind::Body,
        ] {
            assert!(!c.applies(k, b"x"), "{k:?}");
        }
        c.on = false;
        assert!(!c.applies(Kind::Header, b"user-agent"));
    }

    #[test]
    fn another_policy_or_rule_set_forgets_everything() {
        let mut c = CleanHeaders::default();
        c.bind(1, 2);
        c.remember(Kind::Header, b"accept", b"*/*");
        assert!(c.contains(Kind::Header, b"accept", b"*/*"));
        c.bind(1, 2);
        assert!(c.contains(Kind::Header, b"accept", b"*/*"), "same pair");
        c.bind(1, 3);
        assert!(
            !c.contains(Kind::Header, b"accept", b"*/*"),
            "another policy"
        );
        c.remember(Kind::Header, b"accept", b"*/*");
        c.bind(4, 3);
        assert!(
            !c.contains(Kind::Header, b"accept", b"*/*"),
            "another rule set"
        );
    }

    #[test]
    fn a_full_memory_starts_again_and_stays_bounded() {
        let mut c = CleanHeaders::default();
        c.bind(1, 1);
        for i in 0..MAX_ENTRIES * 3 {
            c.remember(Kind::Header, b"x-n", i.to_string().as_bytes());
            assert!(c.len() <= MAX_ENTRIES);
        }
        let last = (MAX_ENTRIES * 3 - 1).to_string();
        assert!(c.contains(Kind::Header, b"x-n", last.as_bytes()));
        assert!(!c.contains(Kind::Header, b"x-n", b"0"), "emptied when full");
        let long = vec![b'a'; crate::seen::MAX_VALUE + 1];
        c.remember(Kind::Header, b"x-long", &long);
        assert!(
            !c.contains(Kind::Header, b"x-long", &long),
            "long values are not kept"
        );
        assert!(
            c.contains(Kind::Header, b"x-n", last.as_bytes()),
            "a long value does not empty the memory"
        );
    }
}
