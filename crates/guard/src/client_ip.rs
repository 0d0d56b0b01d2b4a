//! The client's address: the socket peer, or what a trusted proxy says in `X-Forwarded-For` or
//! `Forwarded`.
//!
//! Forwarding headers are read only when the socket peer is a trusted proxy; then the hops are
//! walked from the right (nearest) and the first hop that is not itself a trusted proxy is the
//! client (the "rightmost untrusted hop"). Everything left of it was written by the client and is
//! ignored, so a spoofed `X-Forwarded-For: 1.2.3.4` gains nothing. If a hop cannot be parsed
//! (`unknown`, an obfuscated `_id`, garbage), the walk stops and the last good hop (a trusted
//! proxy, or the peer) is the client: we never skip over a hop we cannot vouch for.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::config::ClientIpHeader;
use crate::lists::{canonical_ip, canonical_net};
use crate::prefix::PrefixTable;

/// The proxies whose forwarding headers are believed, and which header they write.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    table: PrefixTable,
    header: ClientIpHeader,
    empty: bool,
}

impl TrustedProxies {
    /// Trust `nets`, reading `header` from them.
    pub fn new(nets: &[IpNet], header: ClientIpHeader) -> Self {
        let items: Vec<(IpNet, u32)> = nets.iter().map(|n| (canonical_net(*n), 0)).collect();
        TrustedProxies {
            table: PrefixTable::build(&items),
            header,
            empty: nets.is_empty(),
        }
    }

    /// Trust nobody: the client is always the socket peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `ip` is a trusted proxy.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.empty && self.table.lookup(canonical_ip(ip)).is_some()
    }
}

/// The client address for a request from `peer` with `headers`. Never allocates.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical_ip(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    match trusted.header {
        ClientIpHeader::XForwardedFor => {
            walk(peer, headers, "x-forwarded-for", parse_xff_hop, trusted)
        }
        ClientIpHeader::Forwarded => {
            walk(peer, headers, "forwarded", parse_forwarded_element, trusted)
        }
    }
}

/// Walks the hops of header `name` from the right: trusted hops are skipped, the first
/// untrusted one is returned, and an unparseable one ends the walk at the last trusted hop.
/// Several header lines form one list, in order.
fn walk(
    peer: IpAddr,
    headers: &HeaderMap,
    name: &'static str,
    parse: fn(&str) -> Option<IpAddr>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut last = peer;
    for value in headers.get_all(name).iter().rev() {
        let Ok(value) = value.to_str() else {
            return last;
        };
        for part in value.rsplit(',') {
            match parse(part) {
                Some(ip) if trusted.contains(ip) => last = ip,
                Some(ip) => return ip,
                None => return last,
            }
        }
    }
    last
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_xff_hop(s: &str) -> Option<IpAddr> {
    parse_node(s.trim())
}

/// A node (RFC 7239 §6): an address with an optional port, IPv6 in brackets; quotes removed.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| canonical_ip(IpAddr::V6(a)));
    }
    // IPv4 with a port.
    let (host, port) = s.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https;by=…`).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    for pair in element.split(';') {
        let (k, v) = pair.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(inner) => inner.strip_suffix('"')?,
                None => v,
            };
            return parse_node(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_static(v));
        }
        h
    }
    fn xff() -> TrustedProxies {
        TrustedProxies::new(
            &[net("10.0.0.0/8"), net("2001:db8:ffff::/48")],
            ClientIpHeader::XForwardedFor,
        )
    }
    fn fwd() -> TrustedProxies {
        TrustedProxies::new(&[net("10.0.0.0/8")], ClientIpHeader::Forwarded)
    }

    #[test]
    fn spoofed_header_from_an_untrusted_peer_is_ignored() {
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(client_ip(ip("203.0.113.5"), &h, &xff()), ip("203.0.113.5"));
        let h = headers("forwarded", &["for=1.2.3.4"]);
        assert_eq!(client_ip(ip("203.0.113.5"), &h, &fwd()), ip("203.0.113.5"));
        // No trusted proxies at all.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &TrustedProxies::none()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        // The client prepended a fake hop; our proxies 10.0.0.2 and 10.0.0.1 appended theirs.
        let h = headers("x-forwarded-for", &["6.6.6.6, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("198.51.100.7"));
        // Split over several header lines.
        let h = headers("x-forwarded-for", &["6.6.6.6", "198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("198.51.100.7"));
        // Ports, brackets and IPv4-mapped forms.
        let h = headers("x-forwarded-for", &["198.51.100.7:5555"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("198.51.100.7"));
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443, 2001:db8:ffff::1"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &h, &xff()),
            ip("2001:db8::7")
        );
        let h = headers("x-forwarded-for", &["::ffff:198.51.100.7"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("198.51.100.7"));
    }

    #[test]
    fn all_hops_trusted_or_no_header_gives_the_leftmost_trusted() {
        let h = headers("x-forwarded-for", &["10.0.0.3, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.3"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &xff()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn unparseable_hop_stops_the_walk_at_the_last_trusted_hop() {
        let h = headers("x-forwarded-for", &["198.51.100.7, garbage, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.2"));
        let h = headers("x-forwarded-for", &["198.51.100.7, unknown"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.1"));
        let h = headers("x-forwarded-for", &[""]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.1"));
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_header_with_quotes_ipv6_and_ports() {
        let t = fwd();
        let h = headers(
            "forwarded",
            &["for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2;by=10.0.0.1"],
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["proto=http;for=\"198.51.100.7:8080\""]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        let h = headers("forwarded", &["for=198.51.100.7", "for=10.0.0.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        // Obfuscated and unknown nodes stop the walk.
        let h = headers(
            "forwarded",
            &["for=198.51.100.7, for=_hidden, for=10.0.0.2"],
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.2"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
        // An unterminated quote is garbage.
        let h = headers("forwarded", &["for=\"[2001:db8::1]"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A proxy that maintains X-Forwarded-For does not touch Forwarded, so a client-sent
        // Forwarded header must not be believed, and vice versa.
        let h = headers("forwarded", &["for=6.6.6.6"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff()), ip("10.0.0.1"));
        let h = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &fwd()), ip("10.0.0.1"));
    }
}
