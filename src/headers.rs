//! Per-route header rules (add/replace and remove), compiled once at load time.

use crate::config::raw::RawHeaderRules;
use http::{HeaderName, HeaderValue};
use serde::Serialize;

/// Compiled header rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeaderRules {
    #[serde(serialize_with = "ser_pairs")]
    add: Vec<(HeaderName, HeaderValue)>,
    #[serde(serialize_with = "ser_names")]
    remove: Vec<HeaderName>,
}

fn ser_pairs<S: serde::Serializer>(
    v: &[(HeaderName, HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        v.iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("<binary>"))),
    )
}

fn ser_names<S: serde::Serializer>(v: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|k| k.as_str()))
}

impl HeaderRules {
    /// Validate header names and values.
    pub fn compile(raw: &RawHeaderRules) -> Result<Self, String> {
        let mut add = Vec::new();
        for (k, v) in &raw.add {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name `{k}`"))?;
            let value =
                HeaderValue::from_str(v).map_err(|_| format!("invalid value for header `{k}`"))?;
            add.push((name, value));
        }
        let mut remove = Vec::new();
        for k in &raw.remove {
            remove.push(
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("invalid header name `{k}`"))?,
            );
        }
        Ok(Self { add, remove })
    }

    /// Is there nothing to do?
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Headers to remove.
    pub fn removals(&self) -> &[HeaderName] {
        &self.remove
    }

    /// Headers to set.
    pub fn additions(&self) -> &[(HeaderName, HeaderValue)] {
        &self.add
    }
}
