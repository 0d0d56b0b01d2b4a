//! Configuration types for the guard, as they appear in the gateway's config file under
//! `guard:`. Unknown keys are errors; every field has a default (see `docs/GUARD.md`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use governor::Quota;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Everything the guard needs: IP lists, throttling, auto-ban and connection limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Allow/deny lists, feeds and trusted proxies.
    pub ip: IpConfig,
    /// Per-IP and global rate limits and the keyed-state cap.
    pub throttle: ThrottleConfig,
    /// Auto-ban; `None` (absent) disables it.
    pub autoban: Option<AutoBanConfig>,
    /// Per-IP connection cap, read timeouts, body rate and header caps.
    pub connections: ConnectionConfig,
}

impl GuardConfig {
    /// Checks what serde cannot: ranges and unique feed names. `Guard::new` calls it;
    /// `palisade check` should too.
    pub fn validate(&self) -> Result<(), crate::GuardError> {
        let err = |m: String| Err(crate::GuardError::Config(m));
        let mut names = std::collections::HashSet::new();
        for f in &self.ip.feeds {
            if f.name.trim().is_empty() {
                return err(format!("feed {} has an empty name", f.path.display()));
            }
            if f.name == crate::feeds::CONFIG_ALLOW || f.name == crate::feeds::CONFIG_DENY {
                return err(format!(
                    "feed name {:?} is reserved for ip.allow/ip.deny",
                    f.name
                ));
            }
            if !names.insert(f.name.as_str()) {
                return err(format!(
                    "feed name {:?} is used twice (names must be unique)",
                    f.name
                ));
            }
        }
        if self.throttle.max_keys == 0 {
            return err("throttle.max_keys must be at least 1".into());
        }
        if let Some(a) = &self.autoban {
            if !(1..=10_000).contains(&a.threshold) {
                return err(format!(
                    "autoban.threshold is {} (allowed 1 to 10000)",
                    a.threshold
                ));
            }
            if a.window_secs == 0 || a.ban_secs == 0 {
                return err("autoban.window_secs and autoban.ban_secs must be at least 1".into());
            }
            if a.max_tracked == 0 {
                return err("autoban.max_tracked must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// IP reputation settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpConfig {
    /// CIDRs that are always allowed (list name `config-allow`).
    pub allow: Vec<IpNet>,
    /// CIDRs that are always denied (list name `config-deny`).
    pub deny: Vec<IpNet>,
    /// Feed files, reloaded every `reload_interval_secs` and on config reload.
    pub feeds: Vec<FeedConfig>,
    /// Seconds between feed reloads (default 300). 0 disables scheduled reloads.
    pub reload_interval_secs: u64,
    /// When an allow list matches, skip the later stages (throttle, API key, WAF). Default true.
    pub allow_short_circuits: bool,
    /// Peers whose forwarding headers are believed (load balancers, CDNs). Default: none.
    pub trusted_proxies: Vec<IpNet>,
    /// Which header a trusted proxy writes the client address into. Default `x-forwarded-for`.
    pub client_ip_header: ClientIpHeader,
}

impl Default for IpConfig {
    fn default() -> Self {
        IpConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            feeds: Vec::new(),
            reload_interval_secs: 300,
            allow_short_circuits: true,
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
        }
    }
}

/// The forwarding header trusted proxies maintain. Only one is read: a header the proxy does
/// not maintain is entirely client-controlled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// One feed file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The list name reported in decisions (e.g. `spamhaus-drop`).
    pub name: String,
    /// Path of the file.
    pub path: PathBuf,
    /// File format.
    pub format: FeedFormat,
    /// Whether the feed allows or denies. Default deny.
    #[serde(default = "default_deny")]
    pub action: Action,
}

fn default_deny() -> Action {
    Action::Deny
}

/// Feed file formats (see `docs/GUARD.md` for examples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// One CIDR or address per line; `#` starts a comment.
    Plain,
    /// Spamhaus DROP/EDROP: `1.2.3.0/24 ; SBL123`; `;` starts a comment.
    Spamhaus,
    /// FireHOL netset: CIDRs and bare addresses; `#` starts a comment.
    Firehol,
}

/// What a list does with a matching address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through (and, with `allow_short_circuits`, skip later stages).
    Allow,
    /// Answer 403.
    Deny,
}

impl Action {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

/// A rate with burst: `{ per_second: 10, burst: 20 }` or `{ per_minute: 600 }`.
/// Exactly one of `per_second` / `per_minute`; `burst` defaults to the per-period amount.
/// The gateway uses this type for per-route limits too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawRate", into = "RawRate")]
pub struct Rate {
    /// Requests allowed per `period`.
    pub amount: NonZeroU32,
    /// The period `amount` refers to.
    pub period: RatePeriod,
    /// How many requests may arrive at once after a quiet spell.
    pub burst: NonZeroU32,
}

/// The period of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePeriod {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
}

/// The file form of [`Rate`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    /// Requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// Burst size (default: the amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl TryFrom<RawRate> for Rate {
    type Error = String;
    fn try_from(r: RawRate) -> Result<Rate, String> {
        let (amount, period) = match (r.per_second, r.per_minute) {
            (Some(n), None) => (n, RatePeriod::Second),
            (None, Some(n)) => (n, RatePeriod::Minute),
            (Some(_), Some(_)) => {
                return Err("rate sets both per_second and per_minute (set exactly one)".into())
            }
            (None, None) => return Err("rate needs per_second or per_minute".into()),
        };
        let amount = NonZeroU32::new(amount)
            .ok_or("rate amount must be at least 1 (remove the limit to disable it)")?;
        let burst = match r.burst {
            None => amount,
            Some(b) => NonZeroU32::new(b).ok_or("burst must be at least 1")?,
        };
        Ok(Rate {
            amount,
            period,
            burst,
        })
    }
}

impl From<Rate> for RawRate {
    fn from(r: Rate) -> RawRate {
        let n = Some(r.amount.get());
        let (per_second, per_minute) = match r.period {
            RatePeriod::Second => (n, None),
            RatePeriod::Minute => (None, n),
        };
        RawRate {
            per_second,
            per_minute,
            burst: Some(r.burst.get()),
        }
    }
}

impl Rate {
    /// `amount` per second with `burst`.
    pub fn per_second(amount: NonZeroU32, burst: NonZeroU32) -> Rate {
        Rate {
            amount,
            period: RatePeriod::Second,
            burst,
        }
    }

    /// `amount` per minute with `burst`.
    pub fn per_minute(amount: NonZeroU32, burst: NonZeroU32) -> Rate {
        Rate {
            amount,
            period: RatePeriod::Minute,
            burst,
        }
    }

    /// The time one request's allowance takes to replenish.
    pub fn replenish_interval(&self) -> Duration {
        let period = match self.period {
            RatePeriod::Second => Duration::from_secs(1),
            RatePeriod::Minute => Duration::from_secs(60),
        };
        (period / self.amount.get()).max(Duration::from_nanos(1))
    }

    /// The governor quota (GCRA parameters) for this rate.
    pub fn quota(&self) -> Quota {
        let q = match Quota::with_period(self.replenish_interval()) {
            Some(q) => q,
            None => Quota::per_second(self.amount),
        };
        q.allow_burst(self.burst)
    }
}

/// Throttling settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Limit per client IP. Default none.
    pub per_ip: Option<Rate>,
    /// Limit over all requests. Default none.
    pub global: Option<Rate>,
    /// Cap on keys (IPs) held by each keyed limiter (default 100,000). When full, the entry
    /// with the least throttling information is evicted (see `docs/GUARD.md`).
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            per_ip: None,
            global: None,
            max_keys: 100_000,
        }
    }
}

/// Auto-ban settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoBanConfig {
    /// Violations (blocks, throttles) within the window that trigger a ban. Default 20.
    pub threshold: u32,
    /// The window, in seconds. Default 60.
    pub window_secs: u64,
    /// Ban duration, in seconds. Default 900.
    pub ban_secs: u64,
    /// JSON file bans are persisted to and loaded from. Default none (bans live in memory).
    pub state_file: Option<PathBuf>,
    /// Cap on IPs whose recent violations are tracked (default 100,000).
    pub max_tracked: usize,
}

impl Default for AutoBanConfig {
    fn default() -> Self {
        AutoBanConfig {
            threshold: 20,
            window_secs: 60,
            ban_secs: 900,
            state_file: None,
            max_tracked: 100_000,
        }
    }
}

/// Connection guards. Applied by the gateway at the listener and body phases.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Concurrent connections per client IP (default 256; 0 = unlimited).
    pub max_per_ip: u32,
    /// Time allowed to receive the request headers, ms (default 10,000).
    pub header_timeout_ms: u64,
    /// Time allowed between body reads, ms (default 30,000).
    pub body_timeout_ms: u64,
    /// Minimum average body rate after the grace period, bytes/s (default 512; 0 = off).
    pub min_body_rate_bps: u64,
    /// Grace period before the minimum body rate applies, ms (default 5,000).
    pub body_rate_grace_ms: u64,
    /// Maximum number of request headers (default 100).
    pub max_header_count: usize,
    /// Maximum total size of the request headers in bytes (default 32 KiB).
    pub max_header_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_per_ip: 256,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            min_body_rate_bps: 512,
            body_rate_grace_ms: 5_000,
            max_header_count: 100,
            max_header_bytes: 32 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses_from_yaml() {
        let yaml = r#"
ip:
  allow: [10.0.0.0/8, "2001:db8::/32"]
  deny: [203.0.113.0/24]
  feeds:
    - { name: spamhaus-drop, path: /var/lib/palisade/drop.txt, format: spamhaus }
    - { name: partners, path: partners.txt, format: plain, action: allow }
  reload_interval_secs: 60
  allow_short_circuits: false
  trusted_proxies: [127.0.0.1/32]
  client_ip_header: forwarded
throttle:
  per_ip: { per_second: 10, burst: 20 }
  global: { per_minute: 6000 }
  max_keys: 5000
autoban: { threshold: 5, window_secs: 30, ban_secs: 60, state_file: bans.json }
connections: { max_per_ip: 8, min_body_rate_bps: 100 }
"#;
        let c: GuardConfig = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ip.allow.len(), 2);
        assert_eq!(c.ip.feeds[0].action, Action::Deny);
        assert_eq!(c.ip.feeds[1].action, Action::Allow);
        assert_eq!(c.ip.feeds[0].format, FeedFormat::Spamhaus);
        assert_eq!(c.ip.client_ip_header, ClientIpHeader::Forwarded);
        let per_ip = c.throttle.per_ip.unwrap_or_else(|| panic!("per_ip"));
        assert_eq!(per_ip.burst.get(), 20);
        assert_eq!(per_ip.replenish_interval(), Duration::from_millis(100));
        let global = c.throttle.global.unwrap_or_else(|| panic!("global"));
        assert_eq!(global.burst.get(), 6000, "burst defaults to the amount");
        assert_eq!(global.replenish_interval(), Duration::from_millis(10));
        assert_eq!(c.autoban.as_ref().map(|a| a.threshold), Some(5));
        assert_eq!(c.autoban.as_ref().map(|a| a.max_tracked), Some(100_000));
        assert_eq!(c.connections.max_per_ip, 8);
        assert_eq!(c.connections.max_header_count, 100, "default kept");
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        let msg = |yaml: &str| {
            let c: GuardConfig = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
            c.validate().err().map(|e| e.to_string())
        };
        assert_eq!(msg("{}"), None);
        assert_eq!(
            msg("autoban: { threshold: 0 }").as_deref(),
            Some("invalid guard config: autoban.threshold is 0 (allowed 1 to 10000)")
        );
        assert_eq!(
            msg("ip: { feeds: [ { name: a, path: x, format: plain }, { name: a, path: y, format: plain } ] }").as_deref(),
            Some("invalid guard config: feed name \"a\" is used twice (names must be unique)")
        );
        assert_eq!(
            msg("ip: { feeds: [ { name: config-deny, path: x, format: plain } ] }").as_deref(),
            Some(
                "invalid guard config: feed name \"config-deny\" is reserved for ip.allow/ip.deny"
            )
        );
        assert_eq!(
            msg("throttle: { max_keys: 0 }").as_deref(),
            Some("invalid guard config: throttle.max_keys must be at least 1")
        );
    }

    #[test]
    fn empty_config_gets_defaults() {
        let c: GuardConfig = serde_saphyr::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, GuardConfig::default());
        assert!(c.ip.allow_short_circuits);
        assert_eq!(c.ip.reload_interval_secs, 300);
        assert!(c.autoban.is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = serde_saphyr::from_str::<GuardConfig>("ip: { alow: [] }\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("alow"), "{e}");
        let e = serde_saphyr::from_str::<GuardConfig>(
            "throttle: { per_ip: { per_second: 1, brust: 2 } }\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("brust"), "{e}");
    }

    #[test]
    fn rate_needs_exactly_one_period_and_nonzero_amounts() {
        let both = serde_saphyr::from_str::<Rate>("{ per_second: 1, per_minute: 2 }")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(both.contains("both per_second and per_minute"), "{both}");
        let none = serde_saphyr::from_str::<Rate>("{ burst: 2 }")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(none.contains("needs per_second or per_minute"), "{none}");
        let zero = serde_saphyr::from_str::<Rate>("{ per_second: 0 }")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(zero.contains("at least 1"), "{zero}");
    }

    #[test]
    fn rate_round_trips_and_builds_quota() {
        let r: Rate = serde_saphyr::from_str("{ per_minute: 30, burst: 5 }")
            .unwrap_or_else(|e| panic!("{e}"));
        let q = r.quota();
        assert_eq!(q.burst_size().get(), 5);
        assert_eq!(q.replenish_interval(), Duration::from_secs(2));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(json, r#"{"per_minute":30,"burst":5}"#);
    }
}
