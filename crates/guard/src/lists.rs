//! Allow and deny lists of IPv4/IPv6 CIDRs, compiled into longest-prefix-match tables.
//!
//! Precedence (also in `docs/GUARD.md`):
//! 1. An address on any **allow** list is allowed, whatever the deny lists say.
//! 2. Otherwise, an address on any **deny** list is denied.
//! 3. Within one kind, the **longest** (most specific) matching prefix names the list reported;
//!    for the same prefix on several lists of one kind, the list added first (config before
//!    feeds, feeds in config order) is reported.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) and prefixes (`::ffff:1.2.3.0/120`) are turned
//! into IPv4 before they are stored or looked up.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

use crate::config::Action;
use crate::prefix::PrefixTable;

/// The list that matched an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListHit {
    /// The list's name (`config-allow`, `config-deny`, or the feed's name).
    pub list: Arc<str>,
    /// Allow or deny.
    pub action: Action,
    /// The matching prefix (the longest on that list kind).
    pub net: IpNet,
}

impl fmt::Display for ListHit {
    /// `deny:spamhaus-drop 1.2.3.0/24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {}", self.action.as_str(), self.list, self.net)
    }
}

/// One stored prefix.
#[derive(Debug, Clone)]
struct Entry {
    list: Arc<str>,
    net: IpNet,
}

/// Compiled allow and deny lists. Immutable; rebuild and swap to change (see
/// [`crate::FeedSet`]).
#[derive(Debug, Clone, Default)]
pub struct IpLists {
    allow: PrefixTable,
    deny: PrefixTable,
    allow_entries: Box<[Entry]>,
    deny_entries: Box<[Entry]>,
}

/// Collects prefixes for an [`IpLists`].
#[derive(Debug, Default)]
pub struct IpListsBuilder {
    allow: Vec<Entry>,
    deny: Vec<Entry>,
}

/// Turns IPv4-mapped IPv6 addresses into IPv4; other addresses are returned unchanged.
#[inline]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Turns an IPv4-mapped IPv6 prefix of length ≥ 96 into the IPv4 prefix it denotes, and drops
/// host bits.
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if n.prefix_len() >= 96 {
            if let Some(v4) = n.network().to_ipv4_mapped() {
                if let Ok(v4net) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(v4net.trunc());
                }
            }
        }
    }
    net.trunc()
}

impl IpListsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one prefix to the list `list` of kind `action`.
    pub fn add(&mut self, list: &Arc<str>, action: Action, net: IpNet) -> &mut Self {
        let e = Entry {
            list: Arc::clone(list),
            net: canonical_net(net),
        };
        match action {
            Action::Allow => self.allow.push(e),
            Action::Deny => self.deny.push(e),
        }
        self
    }

    /// Adds many prefixes to one list.
    pub fn extend(
        &mut self,
        list: &Arc<str>,
        action: Action,
        nets: impl IntoIterator<Item = IpNet>,
    ) -> &mut Self {
        for n in nets {
            self.add(list, action, n);
        }
        self
    }

    /// Compiles the lists. Cost is `O(n log n)`; do it off the request path.
    pub fn build(self) -> IpLists {
        fn table(entries: &[Entry]) -> PrefixTable {
            let items: Vec<(IpNet, u32)> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.net, u32::try_from(i).unwrap_or(u32::MAX - 1)))
                .collect();
            PrefixTable::build(&items)
        }
        IpLists {
            allow: table(&self.allow),
            deny: table(&self.deny),
            allow_entries: self.allow.into_boxed_slice(),
            deny_entries: self.deny.into_boxed_slice(),
        }
    }
}

impl IpLists {
    /// Lists with no entries: every lookup is `None`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The list deciding `ip`: an allow hit if any allow list matches, else the deny hit, else
    /// `None`. Never allocates (the list name is a shared `Arc<str>`).
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<ListHit> {
        let ip = canonical_ip(ip);
        if let Some(e) = self
            .allow
            .lookup(ip)
            .and_then(|i| self.allow_entries.get(i as usize))
        {
            return Some(ListHit {
                list: Arc::clone(&e.list),
                action: Action::Allow,
                net: e.net,
            });
        }
        self.deny
            .lookup(ip)
            .and_then(|i| self.deny_entries.get(i as usize))
            .map(|e| ListHit {
                list: Arc::clone(&e.list),
                action: Action::Deny,
                net: e.net,
            })
    }

    /// Number of allow prefixes.
    pub fn allow_len(&self) -> usize {
        self.allow.len()
    }

    /// Number of deny prefixes.
    pub fn deny_len(&self) -> usize {
        self.deny.len()
    }

    /// Number of address runs in the compiled tables (memory grows ~8–24 bytes per run).
    pub fn runs(&self) -> usize {
        self.allow.runs() + self.deny.runs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn lists() -> IpLists {
        let cfg_allow: Arc<str> = "config-allow".into();
        let cfg_deny: Arc<str> = "config-deny".into();
        let drop: Arc<str> = "spamhaus-drop".into();
        let mut b = IpListsBuilder::new();
        b.add(&cfg_allow, Action::Allow, net("10.1.2.3/32"))
            .add(&cfg_deny, Action::Deny, net("10.0.0.0/8"))
            .add(&drop, Action::Deny, net("10.1.0.0/16"))
            .add(&drop, Action::Deny, net("198.51.100.0/24"))
            .add(&cfg_deny, Action::Deny, net("198.51.100.0/24"))
            .add(&drop, Action::Deny, net("::ffff:192.0.2.0/120"))
            .add(&cfg_deny, Action::Deny, net("2001:db8::/32"));
        b.build()
    }

    #[test]
    fn allow_wins_over_a_longer_deny() {
        let l = lists();
        let hit = l.lookup(ip("10.1.2.3")).unwrap_or_else(|| panic!("no hit"));
        assert_eq!(hit.action, Action::Allow);
        assert_eq!(hit.to_string(), "allow:config-allow 10.1.2.3/32");
    }

    #[test]
    fn longest_deny_prefix_names_the_list() {
        let l = lists();
        let hit = l.lookup(ip("10.1.9.9")).map(|h| h.to_string());
        assert_eq!(hit.as_deref(), Some("deny:spamhaus-drop 10.1.0.0/16"));
        let hit = l.lookup(ip("10.9.9.9")).map(|h| h.to_string());
        assert_eq!(hit.as_deref(), Some("deny:config-deny 10.0.0.0/8"));
        assert_eq!(l.lookup(ip("11.0.0.1")), None);
    }

    #[test]
    fn same_prefix_on_two_lists_reports_the_first_added() {
        let l = lists();
        let hit = l.lookup(ip("198.51.100.7")).map(|h| h.list.to_string());
        assert_eq!(hit.as_deref(), Some("spamhaus-drop"));
    }

    #[test]
    fn ipv4_mapped_addresses_and_prefixes_are_normalised() {
        let l = lists();
        // Mapped address against an IPv4 prefix.
        let hit = l.lookup(ip("::ffff:10.1.9.9")).map(|h| h.to_string());
        assert_eq!(hit.as_deref(), Some("deny:spamhaus-drop 10.1.0.0/16"));
        // Mapped prefix stored as IPv4, matched by a plain IPv4 address.
        let hit = l.lookup(ip("192.0.2.77")).map(|h| h.to_string());
        assert_eq!(hit.as_deref(), Some("deny:spamhaus-drop 192.0.2.0/24"));
        assert_eq!(
            l.lookup(ip("2001:db8::1")).map(|h| h.action),
            Some(Action::Deny)
        );
        assert_eq!(l.lookup(ip("2001:db9::1")), None);
    }

    #[test]
    fn canonical_net_keeps_ordinary_v6_and_truncates() {
        assert_eq!(canonical_net(net("2001:db8::1/32")), net("2001:db8::/32"));
        assert_eq!(canonical_net(net("::ffff:1.2.3.4/128")), net("1.2.3.4/32"));
        assert_eq!(canonical_net(net("::ffff:0:0/96")), net("0.0.0.0/0"));
        assert_eq!(canonical_net(net("::/64")), net("::/64"));
    }
}
