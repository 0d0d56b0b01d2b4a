//! Feed files (plain CIDR lists, Spamhaus DROP, FireHOL netsets) and the [`FeedSet`] that
//! reloads them and swaps the compiled [`IpLists`] atomically.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use parking_lot::Mutex;

use crate::config::{Action, FeedConfig, FeedFormat, IpConfig};
use crate::error::GuardError;
use crate::lists::{IpLists, IpListsBuilder, ListHit};

/// The list name of `ip.allow` in decisions.
pub const CONFIG_ALLOW: &str = "config-allow";
/// The list name of `ip.deny` in decisions.
pub const CONFIG_DENY: &str = "config-deny";

/// Parses a feed's text. `path` is only used in error messages (`path:line:col: message`).
/// Blank lines and comments are skipped; a bare address is a /32 (or /128); host bits of a
/// prefix are dropped. The first bad line is an error.
pub fn parse_feed(text: &str, path: &Path, format: FeedFormat) -> Result<Vec<IpNet>, GuardError> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |col: usize, msg: String| GuardError::Feed {
            path: path.to_path_buf(),
            line,
            col,
            msg,
        };
        let comment = match format {
            FeedFormat::Plain | FeedFormat::Firehol => '#',
            FeedFormat::Spamhaus => ';',
        };
        let content = raw.split(comment).next().unwrap_or("");
        if format == FeedFormat::Spamhaus && content.trim_start().starts_with('{') {
            // Spamhaus's newer NDJSON form: {"cidr":"1.10.16.0/20","sblid":"SBL256894",…}
            if let Some(net) = spamhaus_json_line(content.trim())
                .map_err(|m| err(col_of(raw, content.trim_start()), m))?
            {
                out.push(net);
            }
            continue;
        }
        let mut tokens = content.split_whitespace();
        let Some(tok) = tokens.next() else { continue };
        let net = parse_net(tok).map_err(|m| err(col_of(raw, tok), m))?;
        if let Some(extra) = tokens.next() {
            let hint = match format {
                FeedFormat::Spamhaus => "comments start with ';'",
                _ => "one address or CIDR per line; comments start with '#'",
            };
            return Err(err(
                col_of(raw, extra),
                format!("unexpected text {extra:?} after {tok} ({hint})"),
            ));
        }
        out.push(net);
    }
    Ok(out)
}

/// 1-based character column of `part` (a sub-slice of `line`).
fn col_of(line: &str, part: &str) -> usize {
    let off = (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
    line.get(..off).map_or(1, |p| p.chars().count() + 1)
}

/// Parses `1.2.3.0/24`, `2001:db8::/32`, or a bare address.
fn parse_net(tok: &str) -> Result<IpNet, String> {
    let parsed = if tok.contains('/') {
        tok.parse::<IpNet>().ok()
    } else {
        tok.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed.map(|n| n.trunc()).ok_or_else(|| {
        format!("invalid address or CIDR {tok:?} (expected e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1)")
    })
}

/// One line of Spamhaus's NDJSON feed: the prefix, or `None` for the metadata line.
fn spamhaus_json_line(line: &str) -> Result<Option<IpNet>, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON line: {e}"))?;
    match v.get("cidr").and_then(|c| c.as_str()) {
        Some(c) => parse_net(c).map(Some),
        None if v.get("type").is_some() => Ok(None),
        None => Err("JSON line has no \"cidr\" field".to_string()),
    }
}

/// Reads and parses one feed file.
pub fn load_feed(feed: &FeedConfig) -> Result<Vec<IpNet>, GuardError> {
    let text = std::fs::read_to_string(&feed.path)
        .map_err(|e| GuardError::io(&feed.path, "cannot read feed", e))?;
    parse_feed(&text, &feed.path, feed.format)
}

/// What a [`FeedSet::reload`] did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Whether new lists were built and swapped in.
    pub swapped: bool,
    /// Feeds that failed to load; each kept its previous entries.
    pub errors: Vec<GuardError>,
    /// Feeds that were re-read (changed on disk).
    pub reread: usize,
    /// Allow prefixes now in effect.
    pub allow: usize,
    /// Deny prefixes now in effect.
    pub deny: usize,
}

/// The last good contents of one feed, with the file stamp they were read at.
#[derive(Debug, Clone)]
struct FeedState {
    nets: Arc<Vec<IpNet>>,
    stamp: Option<(SystemTime, u64)>,
}

/// The config lists plus the feed files, compiled into [`IpLists`] behind an `ArcSwap`.
/// Lookups read the current lists without locking; [`FeedSet::reload`] builds new lists off the
/// request path and swaps them in.
#[derive(Debug)]
pub struct FeedSet {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    feeds: Vec<(FeedConfig, Arc<str>)>,
    states: Mutex<Vec<FeedState>>,
    current: ArcSwap<IpLists>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl FeedSet {
    /// Loads the config lists and every feed. Any unreadable or invalid feed is an error (use
    /// at startup and on config reload, so a bad feed rejects the new config).
    pub fn load(cfg: &IpConfig) -> Result<FeedSet, GuardError> {
        let mut states = Vec::with_capacity(cfg.feeds.len());
        for f in &cfg.feeds {
            let st = stamp(&f.path);
            states.push(FeedState {
                nets: Arc::new(load_feed(f)?),
                stamp: st,
            });
        }
        let set = FeedSet {
            allow: cfg.allow.clone(),
            deny: cfg.deny.clone(),
            feeds: cfg
                .feeds
                .iter()
                .map(|f| (f.clone(), Arc::from(f.name.as_str())))
                .collect(),
            states: Mutex::new(states),
            current: ArcSwap::from_pointee(IpLists::empty()),
        };
        let lists = set.compile(&set.states.lock());
        set.current.store(Arc::new(lists));
        Ok(set)
    }

    fn compile(&self, states: &[FeedState]) -> IpLists {
        let allow: Arc<str> = CONFIG_ALLOW.into();
        let deny: Arc<str> = CONFIG_DENY.into();
        let mut b = IpListsBuilder::new();
        b.extend(&allow, Action::Allow, self.allow.iter().copied());
        b.extend(&deny, Action::Deny, self.deny.iter().copied());
        for ((feed, name), st) in self.feeds.iter().zip(states) {
            b.extend(name, feed.action, st.nets.iter().copied());
        }
        b.build()
    }

    /// Re-reads feeds whose file changed (modification time or size), rebuilds the lists and
    /// swaps them in. A feed that fails keeps its previous entries and is reported in
    /// `errors`. Call from a background task on `reload_interval_secs` and on reload; it does
    /// file I/O and `O(n log n)` work.
    pub fn reload(&self) -> ReloadReport {
        self.reload_inner(false)
    }

    /// Like [`FeedSet::reload`] but re-reads every feed even if unchanged.
    pub fn reload_all(&self) -> ReloadReport {
        self.reload_inner(true)
    }

    fn reload_inner(&self, force: bool) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut states = self.states.lock();
        for ((feed, _), st) in self.feeds.iter().zip(states.iter_mut()) {
            let now = stamp(&feed.path);
            if !force && now.is_some() && now == st.stamp {
                continue;
            }
            match load_feed(feed) {
                Ok(nets) => {
                    report.reread += 1;
                    *st = FeedState {
                        nets: Arc::new(nets),
                        stamp: now,
                    };
                }
                Err(e) => report.errors.push(e),
            }
        }
        if report.reread > 0 {
            let lists = self.compile(&states);
            self.current.store(Arc::new(lists));
            report.swapped = true;
        }
        let cur = self.current.load();
        report.allow = cur.allow_len();
        report.deny = cur.deny_len();
        report
    }

    /// The lists in effect now (a cheap, lock-free snapshot).
    #[inline]
    pub fn lists(&self) -> arc_swap::Guard<Arc<IpLists>> {
        self.current.load()
    }

    /// Looks `ip` up in the lists in effect now.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<ListHit> {
        self.current.load().lookup(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("feeds/x.txt")
    }
    fn nets(v: &[IpNet]) -> Vec<String> {
        v.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn plain_format_with_comments_and_bare_addresses() {
        let text = "\u{feff}# my list\n\n10.0.0.0/8\n  192.0.2.1   # one host\r\n2001:db8::/32\n10.1.2.3/16\n";
        let v = parse_feed(text, &p(), FeedFormat::Plain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            nets(&v),
            ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32", "10.1.0.0/16"]
        );
    }

    #[test]
    fn spamhaus_drop_format() {
        let text = "; Spamhaus DROP List 2024/01/01 - (c) 2024 The Spamhaus Project\n\
                    ; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\n\
                    1.10.16.0/20 ; SBL256894\n\
                    2.56.192.0/22 ; SBL459831\n";
        let v = parse_feed(text, &p(), FeedFormat::Spamhaus).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(nets(&v), ["1.10.16.0/20", "2.56.192.0/22"]);
    }

    #[test]
    fn spamhaus_ndjson_format() {
        let text = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n\
                    {\"type\":\"metadata\",\"timestamp\":1700000000,\"size\":1,\"records\":1}\n";
        let v = parse_feed(text, &p(), FeedFormat::Spamhaus).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(nets(&v), ["1.10.16.0/20"]);
        let e = parse_feed("{\"sblid\":\"x\"}\n", &p(), FeedFormat::Spamhaus)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("feeds/x.txt:1:1: JSON line has no \"cidr\" field")
        );
    }

    #[test]
    fn firehol_netset_format() {
        let text = "#\n# firehol_level1\n#\n# ipv4 hash:net ipset\n#\n0.0.0.0/8\n1.19.0.0/16\n223.254.0.1\n";
        let v = parse_feed(text, &p(), FeedFormat::Firehol).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(nets(&v), ["0.0.0.0/8", "1.19.0.0/16", "223.254.0.1/32"]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse_feed(
            "10.0.0.0/8\n  10.0.0.300/24 # bad\n",
            &p(),
            FeedFormat::Plain,
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("feeds/x.txt:2:3: invalid address or CIDR \"10.0.0.300/24\" (expected e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1)")
        );
        let e = parse_feed("1.2.3.0/24 SBL1\n", &p(), FeedFormat::Spamhaus)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("feeds/x.txt:1:12: unexpected text \"SBL1\" after 1.2.3.0/24 (comments start with ';')")
        );
        let e = parse_feed("1.2.3.0/33\n", &p(), FeedFormat::Firehol)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("feeds/x.txt:1:1: invalid address or CIDR \"1.2.3.0/33\""),
            "{e}"
        );
    }

    fn write(path: &Path, text: &str) {
        let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn feed(path: &Path, name: &str, format: FeedFormat, action: Action) -> FeedConfig {
        FeedConfig {
            name: name.into(),
            path: path.to_path_buf(),
            format,
            action,
        }
    }

    fn hit(set: &FeedSet, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
        set.lookup(ip).map(|h| h.to_string())
    }

    #[test]
    fn feed_set_reloads_and_a_bad_feed_keeps_the_old_entries() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let drop = dir.path().join("drop.txt");
        let partners = dir.path().join("partners.txt");
        write(&drop, "1.2.3.0/24 ; SBL1\n");
        write(&partners, "1.2.3.4\n");
        let cfg = IpConfig {
            deny: vec!["198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"))],
            feeds: vec![
                feed(&drop, "spamhaus-drop", FeedFormat::Spamhaus, Action::Deny),
                feed(&partners, "partners", FeedFormat::Plain, Action::Allow),
            ],
            ..IpConfig::default()
        };
        let set = FeedSet::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hit(&set, "1.2.3.9").as_deref(),
            Some("deny:spamhaus-drop 1.2.3.0/24")
        );
        assert_eq!(
            hit(&set, "1.2.3.4").as_deref(),
            Some("allow:partners 1.2.3.4/32")
        );
        assert_eq!(
            hit(&set, "198.51.100.1").as_deref(),
            Some("deny:config-deny 198.51.100.0/24")
        );

        // Unchanged files: nothing re-read, nothing swapped.
        let r = set.reload();
        assert_eq!((r.reread, r.swapped, r.errors.len()), (0, false, 0));

        // A good change is picked up.
        write(&drop, "1.2.3.0/24 ; SBL1\n5.6.0.0/16 ; SBL2\n");
        let r = set.reload_all();
        assert!(r.swapped && r.errors.is_empty());
        assert_eq!(r.deny, 3);
        assert_eq!(
            hit(&set, "5.6.7.8").as_deref(),
            Some("deny:spamhaus-drop 5.6.0.0/16")
        );

        // A bad file keeps the previous contents of that feed, and the error names the line.
        write(&drop, "5.6.0.0/16 ; SBL2\nnot-an-ip ; SBL3\n");
        let r = set.reload_all();
        assert_eq!(r.errors.len(), 1);
        let msg = r.errors[0].to_string();
        assert!(msg.ends_with("drop.txt:2:1: invalid address or CIDR \"not-an-ip\" (expected e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1)"), "{msg}");
        assert_eq!(
            hit(&set, "1.2.3.9").as_deref(),
            Some("deny:spamhaus-drop 1.2.3.0/24")
        );
        assert_eq!(
            hit(&set, "5.6.7.8").as_deref(),
            Some("deny:spamhaus-drop 5.6.0.0/16")
        );

        // A missing file too.
        std::fs::remove_file(&drop).unwrap_or_else(|e| panic!("{e}"));
        let r = set.reload();
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].to_string().contains("cannot read feed"));
        assert_eq!(
            hit(&set, "5.6.7.8").as_deref(),
            Some("deny:spamhaus-drop 5.6.0.0/16")
        );
    }

    #[test]
    fn load_rejects_a_bad_feed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("bad.netset");
        write(&f, "# ok\n1.2.3.0/24\n1.2.3.0/24/5\n");
        let cfg = IpConfig {
            feeds: vec![feed(&f, "firehol", FeedFormat::Firehol, Action::Deny)],
            ..IpConfig::default()
        };
        let e = FeedSet::load(&cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.ends_with("bad.netset:3:1: invalid address or CIDR \"1.2.3.0/24/5\" (expected e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1)"), "{e}");
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use std::path::PathBuf;

    /// Feed files are not trusted: random bytes and mutations of valid lines must give a value
    /// or an error, never a panic (deterministic xorshift, so failures reproduce).
    #[test]
    fn hostile_feed_text_never_panics() {
        let mut x: u64 = 0xDEAD_BEEF_CAFE_F00D;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet: Vec<char> = "0123456789abcdef:./;#{}\"[] \t\r\n\u{feff}é𝕏cidr,-_"
            .chars()
            .collect();
        let path = PathBuf::from("fuzz.txt");
        for _ in 0..3000 {
            let len = (rnd() % 80) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(rnd() as usize) % alphabet.len()])
                .collect();
            for f in [FeedFormat::Plain, FeedFormat::Spamhaus, FeedFormat::Firehol] {
                if let Err(e) = parse_feed(&text, &path, f) {
                    assert!(e.to_string().starts_with("fuzz.txt:"), "{e}");
                }
            }
        }
    }
}
