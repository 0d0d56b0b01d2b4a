#![allow(dead_code)]
//! Shared helpers for the engine tests.

use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_waf::{Inspection, Policy, PolicyConfig, RequestHead, RuleSet};

pub fn fixtures() -> RuleSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
    match RuleSet::load_dir(&dir) {
        Ok(rs) => rs,
        Err(e) => panic!("fixtures do not load:\n{e}"),
    }
}

pub fn policy(rs: &RuleSet, yaml: &str) -> Policy {
    let cfg: PolicyConfig = serde_saphyr::from_str(yaml).expect("policy yaml");
    Policy::compile(&cfg, rs).expect("policy compiles")
}

pub fn default_policy(rs: &RuleSet) -> Policy {
    Policy::compile(&PolicyConfig::default(), rs).expect("default policy")
}

/// A request: `target` is `path?query`; headers as (name, value).
pub struct Req {
    pub method: String,
    pub target: Vec<u8>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub content_type: Option<Vec<u8>>,
    /// The target's authority (HTTP/2's `:authority`).
    pub authority: Option<Vec<u8>>,
}

impl Req {
    pub fn get(target: &str) -> Req {
        Req {
            method: "GET".into(),
            target: target.as_bytes().to_vec(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            content_type: None,
            authority: None,
        }
    }
    pub fn post(target: &str, ct: &str, body: &[u8]) -> Req {
        let mut r = Req::get(target);
        r.method = "POST".into();
        r.content_type = Some(ct.as_bytes().to_vec());
        r.body = body.to_vec();
        r
    }
    #[allow(dead_code)] // not every test binary sets an authority
    pub fn authority(mut self, authority: &str) -> Req {
        self.authority = Some(authority.as_bytes().to_vec());
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
        self
    }
    pub fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }
    pub fn run(&self, rs: &RuleSet, p: &Policy) -> Inspection {
        let mut out = Inspection::new();
        out.set_record_all(true);
        self.run_into(rs, p, &mut out);
        out
    }
    pub fn run_into(&self, rs: &RuleSet, p: &Policy, out: &mut Inspection) {
        let (path, query) = match self.target.iter().position(|&b| b == b'?') {
            Some(i) => (&self.target[..i], Some(&self.target[i + 1..])),
            None => (&self.target[..], None),
        };
        let head = RequestHead {
            method: &self.method,
            path,
            query,
            headers: &self.headers,
            authority: self.authority.as_deref(),
        };
        rs.inspect_head(p, &head, out);
        rs.inspect_body(p, self.content_type.as_deref(), &self.body, out);
    }
}

/// (rule id, target) pairs of the matches, sorted.
pub fn fired(i: &Inspection) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = i
        .matches()
        .iter()
        .map(|m| (m.rule_id, m.target.clone()))
        .collect();
    v.sort();
    v
}

pub fn ids(i: &Inspection) -> Vec<u32> {
    let mut v = i.rule_ids();
    v.sort();
    v
}
