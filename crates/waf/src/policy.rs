//! Per-route policy: mode, paranoia, threshold, limits and exclusions, compiled against one
//! [`RuleSet`] into bitsets.
//!
//! Exclusion semantics (each entry of `exclusions`):
//! * `rule_ids`/`tags` only: those rules are off for the route;
//! * `targets` only: those targets are ignored by every rule;
//! * both: those rules ignore those targets (everywhere the rule looks: query, body form,
//!   JSON, multipart, XML, headers, cookies).
//!
//! `rule_ids` and `tags` together select the union of both. Unknown ids, tags and targets are
//! errors, so a typo cannot silently change what is protected.

use serde::Deserialize;

use crate::bitset::Bitset;
use crate::error::PolicyError;
use crate::ruleset::RuleSet;
use crate::target::{parse_excl_target, ExclTarget};

/// What the route does with the verdict.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Enforce: block at the threshold.
    #[default]
    Block,
    /// Log what would be blocked, let it through.
    Detect,
    /// No inspection.
    Off,
}

/// What happens to a body larger than the inspection limit.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Answer 413.
    #[default]
    Reject,
    /// Inspect the first `inspection_limit` bytes, pass the rest uninspected (counted).
    #[serde(alias = "pass-uninspected")]
    PassUninspected,
}

/// One exclusion as configured.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExclusionConfig {
    /// Rule ids.
    #[serde(default)]
    pub rule_ids: Vec<u32>,
    /// Rule tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Targets such as `args:q`, `json:user.bio`, `headers:referer`, `cookies:sid`, `path`.
    #[serde(default)]
    pub targets: Vec<String>,
}

fn default_paranoia() -> u8 {
    1
}
fn default_threshold() -> u32 {
    5
}
fn default_limit() -> usize {
    131_072
}

/// A route's WAF policy as configured (raw).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// block | detect | off (default block).
    #[serde(default)]
    pub mode: Mode,
    /// Paranoia level 1-4 (default 1): rules with paranoia ≤ this are active.
    #[serde(default = "default_paranoia")]
    pub paranoia: u8,
    /// Anomaly score at which the request is blocked (default 5).
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Body bytes inspected (default 131072).
    #[serde(default = "default_limit")]
    pub inspection_limit: usize,
    /// What to do past the inspection limit (default reject).
    #[serde(default)]
    pub over_limit: OverLimit,
    /// Exclusions.
    #[serde(default)]
    pub exclusions: Vec<ExclusionConfig>,
    /// In block mode, go on inspecting after the score reached the threshold, so events and
    /// the security log list every rule a blocked request matched (default false: inspection
    /// stops there, the verdict is the same, an attack costs less to turn away).
    #[serde(default)]
    pub complete_matches: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: Mode::Block,
            paranoia: 1,
            threshold: 5,
            inspection_limit: default_limit(),
            over_limit: OverLimit::Reject,
            exclusions: Vec::new(),
            complete_matches: false,
        }
    }
}

/// A [`PolicyConfig`] compiled against one [`RuleSet`]. Recompile it when the rule set is
/// reloaded ([`Policy::is_for`] tells whether it matches).
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) ruleset_uid: u64,
    /// Unique per compiled policy (never 0): what [`crate::clean`] binds its memory to.
    pub(crate) uid: u64,
    /// Mode.
    pub mode: Mode,
    /// Paranoia level.
    pub paranoia: u8,
    /// Blocking threshold.
    pub threshold: u32,
    /// Body bytes inspected.
    pub inspection_limit: usize,
    /// Over-limit behaviour.
    pub over_limit: OverLimit,
    /// Inspect on past the threshold in block mode ([`PolicyConfig::complete_matches`]).
    pub complete_matches: bool,
    pub(crate) active: Bitset,
    pub(crate) excl: Vec<(ExclTarget, Bitset)>,
    /// Bit `i`: the header name [`COMMON_HEADER_NAMES`]`[i]` matches no rule under this policy
    /// (found when the policy is compiled), so it is not inspected in requests.
    pub(crate) clean_header_names: u64,
}

/// Header names (lowercase, as the `http` crate gives them) that browsers, API clients and
/// proxies send on nearly every request. What the engine finds in a header *name* depends only
/// on the rule set, the policy and the name, so [`Policy::compile`] inspects each of these once
/// and requests skip those that matched nothing; any other name is inspected as usual.
pub(crate) const COMMON_HEADER_NAMES: [&[u8]; 40] = [
    b"host",
    b"user-agent",
    b"accept",
    b"accept-language",
    b"accept-encoding",
    b"accept-charset",
    b"referer",
    b"cookie",
    b"connection",
    b"keep-alive",
    b"content-type",
    b"content-length",
    b"content-encoding",
    b"transfer-encoding",
    b"origin",
    b"cache-control",
    b"pragma",
    b"authorization",
    b"x-api-key",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    b"x-requested-with",
    b"if-none-match",
    b"if-modified-since",
    b"upgrade-insecure-requests",
    b"dnt",
    b"te",
    b"priority",
    b"expect",
    b"sec-fetch-site",
    b"sec-fetch-mode",
    b"sec-fetch-dest",
    b"sec-fetch-user",
    b"sec-ch-ua",
    b"sec-ch-ua-mobile",
    b"sec-ch-ua-platform",
    b"traceparent",
];

/// Slot of a name in [`NAME_SLOTS`], from its length and last two bytes (no two common names
/// share one).
const fn name_slot(name: &[u8]) -> usize {
    let n = name.len();
    let (last, before) = match name {
        [.., b, l] => (*l as usize, *b as usize),
        [l] => (*l as usize, *l as usize),
        [] => (0, 0),
    };
    (n.wrapping_mul(5) + last * 11 + before) & 255
}

/// Per slot, 1 + the index of the common header name there (0: none), built at compile time.
/// Two names sharing a slot would leave the second out (a test checks that none does).
static NAME_SLOTS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < COMMON_HEADER_NAMES.len() {
        let slot = name_slot(COMMON_HEADER_NAMES[i]);
        if t[slot] == 0 {
            t[slot] = i as u8 + 1;
        }
        i += 1;
    }
    t
};

/// The index of `name` in [`COMMON_HEADER_NAMES`]: one table look-up and one comparison.
#[inline]
pub(crate) fn common_header_name(name: &[u8]) -> Option<usize> {
    let i = usize::from(*NAME_SLOTS.get(name_slot(name))?).checked_sub(1)?;
    (COMMON_HEADER_NAMES.get(i)? == &name).then_some(i)
}

impl Policy {
    /// Compiles `cfg` against `rules`.
    pub fn compile(cfg: &PolicyConfig, rules: &RuleSet) -> Result<Policy, PolicyError> {
        if !(1..=4).contains(&cfg.paranoia) {
            return Err(PolicyError::Paranoia(cfg.paranoia));
        }
        if cfg.threshold == 0 {
            return Err(PolicyError::Threshold);
        }
        let n = rules.len();
        let mut active = Bitset::new(n);
        for (i, r) in rules.rules.iter().enumerate() {
            if r.paranoia <= cfg.paranoia {
                active.set(i);
            }
        }
        let mut excl = Vec::new();
        for ex in &cfg.exclusions {
            if ex.rule_ids.is_empty() && ex.tags.is_empty() && ex.targets.is_empty() {
                return Err(PolicyError::EmptyExclusion);
            }
            let mut selected = Bitset::new(n);
            for id in &ex.rule_ids {
                match rules.by_id.get(id) {
                    Some(&i) => selected.set(i),
                    None => return Err(PolicyError::UnknownRule(*id)),
                }
            }
            for tag in &ex.tags {
                if !rules.tags.contains(tag) {
                    return Err(PolicyError::UnknownTag(tag.clone()));
                }
                for (i, r) in rules.rules.iter().enumerate() {
                    if r.tags.contains(tag) {
                        selected.set(i);
                    }
                }
            }
            let by_rule = !(ex.rule_ids.is_empty() && ex.tags.is_empty());
            if ex.targets.is_empty() {
                active.and_not(&selected);
                continue;
            }
            let which = if by_rule { selected } else { Bitset::full(n) };
            for t in &ex.targets {
                let target =
                    parse_excl_target(t).ok_or_else(|| PolicyError::UnknownTarget(t.clone()))?;
                excl.push((target, which.clone()));
            }
        }
        let mut p = Policy {
            ruleset_uid: rules.uid,
            uid: crate::ruleset::NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            mode: cfg.mode,
            paranoia: cfg.paranoia,
            threshold: cfg.threshold,
            inspection_limit: cfg.inspection_limit,
            over_limit: cfg.over_limit,
            complete_matches: cfg.complete_matches,
            active,
            excl,
            clean_header_names: 0,
        };
        p.clean_header_names = rules.clean_header_names(&p, &COMMON_HEADER_NAMES);
        Ok(p)
    }

    /// True when this policy was compiled against `rules` (after a reload, recompile).
    pub fn is_for(&self, rules: &RuleSet) -> bool {
        self.ruleset_uid == rules.uid
    }

    /// Number of rules active under this policy.
    pub fn active_rules(&self) -> usize {
        self.active.ones().count()
    }
}

#[cfg(test)]
mod header_name_tests {
    use super::{common_header_name, COMMON_HEADER_NAMES};

    /// Every common name has a slot of its own; other names (and near misses) are not found.
    #[test]
    fn every_common_name_is_found_and_no_other() {
        assert!(COMMON_HEADER_NAMES.len() <= 64);
        for (i, n) in COMMON_HEADER_NAMES.iter().enumerate() {
            assert_eq!(
                common_header_name(n),
                Some(i),
                "{}",
                String::from_utf8_lossy(n)
            );
        }
        for n in [
            &b""[..],
            b"hosts",
            b"hostx",
            b"Host",
            b"x-api-keys",
            b"user-agen",
            b"x-scanner",
            b"acunetix-aspect",
        ] {
            assert_eq!(
                common_header_name(n),
                None,
                "{}",
                String::from_utf8_lossy(n)
            );
        }
    }
}
