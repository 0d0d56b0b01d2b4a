//! The longest-prefix-match table behind the IP lists.
//!
//! Built once, off the request path, from any number of CIDRs: conceptually a binary trie with
//! its leaves pushed down (leaf-pushing), stored as the trie's leaves in address order. Every
//! leaf is a maximal run of addresses whose longest matching prefix is the same (or none), so the
//! address space is cut into disjoint, sorted runs and a lookup is one binary search over a flat
//! array of run starts (`u32` for IPv4, `u128` for IPv6): `O(log n)` with no pointer chasing, and
//! about 8 bytes per IPv4 run. A /16 index narrows the IPv4 search to the runs of one /16.
//!
//! Values are `u32` indices chosen by the caller. When the same prefix is inserted twice, the
//! first insertion wins.

use std::net::IpAddr;

use ipnet::IpNet;

/// The value stored for address runs that no prefix covers.
const NONE: u32 = u32::MAX;

/// A compiled longest-prefix-match table from CIDR to a `u32` value.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTable {
    /// `(first address, value)` of each IPv4 run, sorted: one cache line holds both.
    v4_runs: Box<[(u32, u32)]>,
    /// `v4_index[h]..v4_index[h + 1]` are the runs whose start lies in the /16 `h`, plus the
    /// run covering the start of that /16.
    v4_index: Box<[u32]>,
    v6_starts: Box<[u128]>,
    v6_vals: Box<[u32]>,
    len: usize,
}

impl PrefixTable {
    /// Compiles a table from `(prefix, value)` pairs; earlier pairs win on identical prefixes.
    /// Host bits of the prefixes are ignored. `value` must not be `u32::MAX`.
    pub(crate) fn build(items: &[(IpNet, u32)]) -> PrefixTable {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, val) in items {
            debug_assert!(*val != NONE);
            match net.trunc() {
                IpNet::V4(n) => v4.push((
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.broadcast())),
                    *val,
                )),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()), *val)),
            }
        }
        let (s4, v4_vals) = flatten(v4, u128::from(u32::MAX));
        let (s6, v6_vals) = flatten(v6, u128::MAX);
        // Every start of an IPv4 run fits in u32 by construction.
        let v4_starts: Vec<u32> = s4
            .iter()
            .map(|s| u32::try_from(*s).unwrap_or(u32::MAX))
            .collect();
        let v4_index = build_v4_index(&v4_starts);
        PrefixTable {
            v4_runs: v4_starts.into_iter().zip(v4_vals).collect(),
            v4_index,
            v6_starts: s6.into_boxed_slice(),
            v6_vals: v6_vals.into_boxed_slice(),
            len: items.len(),
        }
    }

    /// The value of the longest prefix containing `ip`. `ip` must already be canonical
    /// (IPv4-mapped IPv6 turned into IPv4) for IPv4 prefixes to match it.
    #[inline]
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        let v = match ip {
            IpAddr::V4(a) => {
                let key = u32::from(a);
                let hi = (key >> 16) as usize;
                let lo = self.v4_index.get(hi).copied().unwrap_or(0) as usize;
                // One past the run covering the next /16's first address, which may also cover
                // the end of this /16.
                let up = (self.v4_index.get(hi + 1).copied().unwrap_or(0) as usize + 1)
                    .min(self.v4_runs.len());
                let slice = self.v4_runs.get(lo..up)?;
                let i = slice.partition_point(|r| r.0 <= key);
                slice.get(i.checked_sub(1)?)?.1
            }
            IpAddr::V6(a) => {
                let key = u128::from(a);
                let i = self.v6_starts.partition_point(|s| *s <= key);
                *self.v6_vals.get(i.checked_sub(1)?)?
            }
        };
        (v != NONE).then_some(v)
    }

    /// Number of prefixes the table was built from (duplicates included).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of address runs stored (a measure of memory use).
    pub(crate) fn runs(&self) -> usize {
        self.v4_runs.len() + self.v6_starts.len()
    }
}

/// `index[h]` = the run covering the first address of the /16 `h`; `index[65536]` = number of
/// runs. Runs `index[h]..=index[h+1]` then contain every run that can cover an address of /16 `h`.
fn build_v4_index(starts: &[u32]) -> Box<[u32]> {
    let mut index = vec![0u32; 65537];
    let n = u32::try_from(starts.len()).unwrap_or(u32::MAX);
    for (h, slot) in index.iter_mut().enumerate().take(65536) {
        let base = (h as u32) << 16;
        *slot = (starts.partition_point(|s| *s <= base) as u32).saturating_sub(1);
    }
    if let Some(last) = index.last_mut() {
        *last = n;
    }
    index.into_boxed_slice()
}

/// Cuts `[0, max]` into runs with one longest-match value each. `items` are `(first, last,
/// value)` of aligned prefixes (so two prefixes are either nested or disjoint).
fn flatten(mut items: Vec<(u128, u128, u32)>, max: u128) -> (Vec<u128>, Vec<u32>) {
    // Outer prefixes before the prefixes they contain; stable, so duplicates keep their order.
    items.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut starts: Vec<u128> = Vec::with_capacity(items.len() * 2 + 1);
    let mut vals: Vec<u32> = Vec::with_capacity(items.len() * 2 + 1);
    let mut push = |s: u128, v: u32| {
        if vals.last() != Some(&v) {
            starts.push(s);
            vals.push(v);
        }
    };
    // Open prefixes, innermost last: (first, last, value).
    let mut stack: Vec<(u128, u128, u32)> = Vec::new();
    // The first address not yet assigned to a run; `None` once past `max`.
    let mut cur: Option<u128> = Some(0);
    for (s, e, v) in items {
        while let Some(&(_, te, tv)) = stack.last() {
            if te >= s {
                break;
            }
            if let Some(c) = cur {
                if c <= te {
                    push(c, tv);
                }
            }
            cur = te.checked_add(1);
            stack.pop();
        }
        if let Some(&(ts, te, _)) = stack.last() {
            if ts == s && te == e {
                continue; // identical prefix: the first one wins
            }
        }
        if let Some(c) = cur {
            if c < s {
                push(c, stack.last().map_or(NONE, |t| t.2));
            }
        }
        cur = Some(s);
        stack.push((s, e, v));
    }
    while let Some((_, te, tv)) = stack.pop() {
        if let Some(c) = cur {
            if c <= te {
                push(c, tv);
            }
        }
        cur = te.checked_add(1);
    }
    if let Some(c) = cur {
        if c <= max {
            push(c, NONE);
        }
    }
    (starts, vals)
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

    /// Reference longest-prefix match by linear scan.
    fn naive(items: &[(IpNet, u32)], a: IpAddr) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for (n, v) in items {
            let n = n.trunc();
            if n.contains(&a) && best.is_none_or(|(l, _)| n.prefix_len() > l) {
                best = Some((n.prefix_len(), *v));
            }
        }
        best.map(|b| b.1)
    }

    #[test]
    fn longest_prefix_wins_and_gaps_are_empty() {
        let items = vec![
            (net("10.0.0.0/8"), 1),
            (net("10.1.0.0/16"), 2),
            (net("10.1.2.0/24"), 3),
            (net("192.168.1.7/32"), 4),
            (net("2001:db8::/32"), 5),
            (net("2001:db8:1::/48"), 6),
        ];
        let t = PrefixTable::build(&items);
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(1));
        assert_eq!(t.lookup(ip("10.1.200.1")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.255")), Some(3));
        assert_eq!(t.lookup(ip("10.1.3.0")), Some(2));
        assert_eq!(t.lookup(ip("10.2.0.0")), Some(1));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.lookup(ip("9.255.255.255")), None);
        assert_eq!(t.lookup(ip("192.168.1.7")), Some(4));
        assert_eq!(t.lookup(ip("192.168.1.8")), None);
        assert_eq!(t.lookup(ip("2001:db8:1::5")), Some(6));
        assert_eq!(t.lookup(ip("2001:db8:2::5")), Some(5));
        assert_eq!(t.lookup(ip("2001:db9::")), None);
        assert_eq!(t.lookup(ip("::")), None);
    }

    #[test]
    fn whole_space_edges_and_duplicates() {
        let items = vec![
            (net("0.0.0.0/0"), 1),
            (net("255.255.255.255/32"), 2),
            (net("0.0.0.0/32"), 3),
            (net("0.0.0.0/32"), 9),
            (net("::/0"), 4),
            (net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), 5),
        ];
        let t = PrefixTable::build(&items);
        assert_eq!(t.lookup(ip("0.0.0.0")), Some(3), "first duplicate wins");
        assert_eq!(t.lookup(ip("0.0.0.1")), Some(1));
        assert_eq!(t.lookup(ip("255.255.255.254")), Some(1));
        assert_eq!(t.lookup(ip("255.255.255.255")), Some(2));
        assert_eq!(
            t.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(5)
        );
        assert_eq!(t.lookup(ip("::1")), Some(4));
        let empty = PrefixTable::build(&[]);
        assert_eq!(empty.lookup(ip("1.2.3.4")), None);
        assert_eq!(empty.lookup(ip("::1")), None);
    }

    #[test]
    fn host_bits_are_ignored() {
        let t = PrefixTable::build(&[(net("10.1.2.3/24"), 7)]);
        assert_eq!(t.lookup(ip("10.1.2.0")), Some(7));
        assert_eq!(t.lookup(ip("10.1.2.255")), Some(7));
        assert_eq!(t.lookup(ip("10.1.3.0")), None);
    }

    /// Randomised comparison with a linear scan (deterministic xorshift, no extra crates).
    #[test]
    fn matches_linear_scan_on_random_nested_prefixes() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut items = Vec::new();
        for i in 0..400u32 {
            let r = rnd();
            // Cluster addresses so prefixes nest often.
            let a = ((r as u32) & 0x0F0F_FFFF) | 0x0A00_0000;
            let len = (rnd() % 33) as u8;
            let n = ipnet::Ipv4Net::new(a.into(), len).map(IpNet::V4);
            if let Ok(n) = n {
                items.push((n, i));
            }
            let b = (u128::from(rnd()) << 64 | u128::from(rnd())) & !(0xFFFF_u128 << 100);
            let len6 = (rnd() % 129) as u8;
            if let Ok(n) = ipnet::Ipv6Net::new(b.into(), len6) {
                items.push((IpNet::V6(n), 10_000 + i));
            }
        }
        let t = PrefixTable::build(&items);
        for _ in 0..3_000 {
            let r = rnd();
            let a = IpAddr::V4((((r as u32) & 0x0F0F_FFFF) | 0x0A00_0000).into());
            assert_eq!(t.lookup(a), naive(&items, a), "{a}");
            let b = IpAddr::V6(
                ((u128::from(rnd()) << 64 | u128::from(rnd())) & !(0xFFFF_u128 << 100)).into(),
            );
            assert_eq!(t.lookup(b), naive(&items, b), "{b}");
            let c = IpAddr::V4((rnd() as u32).into());
            assert_eq!(t.lookup(c), naive(&items, c), "{c}");
        }
    }
}
