//! Replays labelled corpus files through a rule set: how many attack lines it blocks and how
//! many benign lines it lets through, in the three places a value usually arrives.
//!
//! A corpus is a directory with `attacks/<class>.txt` and `benign/<name>.txt`, one value per
//! line, raw (not URL-encoded); blank lines are skipped. Every line is sent as a query
//! argument value (`GET /search?q=<line>&page=1`; lines of an `open-redirect` file as
//! `?next=<line>`, where an open redirect lives), and every [`SAMPLE`]th line (or every Nth)
//! also as a JSON body value and as a form field (`POST /api/comments`). A line is *blocked* when the request
//! reaches the policy's blocking threshold.
//!
//! Whole raw requests (`requests/attack/*.http`, `requests/benign/*.http`, LF or CRLF line
//! ends) are judged as they are, through [`crate::explain`].
//!
//! Used by `palisade rules replay` (a rule author's own corpus, before deploying) and by the
//! repository's corpus test, which holds the shipped rules to floors.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use http::HeaderMap;

use crate::{Inspection, Policy, RequestHead, RuleSet, Verdict};

/// By default every `SAMPLE`th line is also replayed as a JSON body value and a form field.
pub const SAMPLE: usize = 10;

/// Percent-encodes everything but RFC 3986 unreserved bytes.
fn pct(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len() * 3);
    for &b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// JSON string literal of `v` (lossy for invalid UTF-8, as a JSON client would be).
fn json_str(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Sends requests through one rule set and policy, reusing one inspection.
pub struct Replayer<'a> {
    rules: &'a RuleSet,
    policy: Policy,
    insp: Inspection,
    headers: HeaderMap,
}

impl<'a> Replayer<'a> {
    /// A replayer of `rules` under `policy` (compiled against `rules`).
    pub fn new(rules: &'a RuleSet, policy: Policy) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) corpus-replay"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        Replayer {
            rules,
            policy,
            insp: Inspection::default(),
            headers,
        }
    }

    /// The inspection of the last request.
    pub fn inspection(&self) -> &Inspection {
        &self.insp
    }

    fn blocked(&self) -> bool {
        self.insp.verdict(&self.policy) == Verdict::Block
    }

    /// `GET /search?<arg>=<value>&page=1`: true when blocked.
    pub fn query(&mut self, arg: &str, value: &[u8]) -> bool {
        let q = format!("{arg}={}&page=1", pct(value));
        let head = RequestHead {
            method: "GET",
            path: b"/search",
            query: Some(q.as_bytes()),
            headers: &self.headers,
            authority: None,
        };
        self.rules.inspect_head(&self.policy, &head, &mut self.insp);
        self.blocked()
    }

    /// `POST /api/comments` with `ct` and `body`: true when blocked.
    fn post(&mut self, ct: &[u8], body: &[u8]) -> bool {
        let head = RequestHead {
            method: "POST",
            path: b"/api/comments",
            query: None,
            headers: &self.headers,
            authority: None,
        };
        self.rules.inspect_head(&self.policy, &head, &mut self.insp);
        self.rules
            .inspect_body(&self.policy, Some(ct), body, &mut self.insp);
        self.blocked()
    }

    /// The value as a JSON body field `post.<arg>`: true when blocked.
    pub fn json(&mut self, arg: &str, value: &[u8]) -> bool {
        let body = format!(
            "{{\"post\":{{\"title\":\"hello\",\"{arg}\":{}}},\"tags\":[\"a\",\"b\"]}}",
            json_str(value)
        );
        self.post(b"application/json", body.as_bytes())
    }

    /// The value as a form field `<arg>`: true when blocked.
    pub fn form(&mut self, arg: &str, value: &[u8]) -> bool {
        let body = format!("title=hello&{arg}={}", pct(value));
        self.post(b"application/x-www-form-urlencoded", body.as_bytes())
    }
}

/// Counts for one corpus file at one paranoia level.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Lines replayed (as a query argument).
    pub lines: usize,
    /// Of them, blocked.
    pub hits: usize,
    /// Lines also replayed as a JSON value and a form field.
    pub sample: usize,
    /// Of them, blocked as a JSON value.
    pub sample_json_hits: usize,
    /// Of them, blocked as a form field.
    pub sample_form_hits: usize,
}

fn percent(hits: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * hits as f64 / of as f64
    }
}

impl Rate {
    /// Blocked lines as a query argument, in percent.
    pub fn pct(&self) -> f64 {
        percent(self.hits, self.lines)
    }
    /// Blocked sampled lines as a JSON value, in percent.
    pub fn json_pct(&self) -> f64 {
        percent(self.sample_json_hits, self.sample)
    }
    /// Blocked sampled lines as a form field, in percent.
    pub fn form_pct(&self) -> f64 {
        percent(self.sample_form_hits, self.sample)
    }
}

/// The lines of a corpus file: split on `\n`, a trailing `\r` dropped, blank lines skipped.
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect()
}

/// The argument the lines of a corpus file are replayed in: `next` for an `open-redirect`
/// attack file, `q` otherwise.
pub fn arg_for(file_stem: &str, attack: bool) -> &'static str {
    if attack && file_stem == "open-redirect" {
        "next"
    } else {
        "q"
    }
}

/// Replays `lines` (every one as a query argument `arg`, every `every`th, from the first, also
/// as a JSON value and a form field; `every` 0 counts as 1); `differs` gets each line whose
/// query-argument verdict is not `want_block`, with the ids of the rules that matched it.
pub fn replay_lines(
    r: &mut Replayer<'_>,
    lines: &[Vec<u8>],
    arg: &str,
    want_block: bool,
    every: usize,
    differs: &mut Vec<(Vec<u8>, Vec<u32>)>,
) -> Rate {
    let every = every.max(1);
    let mut rate = Rate::default();
    for (i, line) in lines.iter().enumerate() {
        rate.lines += 1;
        let hit = r.query(arg, line);
        if hit {
            rate.hits += 1;
        }
        if hit != want_block {
            differs.push((line.clone(), r.insp.rule_ids()));
        }
        if i % every == 0 {
            rate.sample += 1;
            if r.json(arg, line) {
                rate.sample_json_hits += 1;
            }
            if r.form(arg, line) {
                rate.sample_form_hits += 1;
            }
        }
    }
    rate
}

/// One file of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    /// `attacks/` (true) or `benign/` (false).
    pub attack: bool,
    /// The file name without `.txt`: the attack class, or the benign set's name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// None of `attacks/`, `benign/`, `requests/` exists under the directory.
    #[error("{0}: no attacks/, benign/ or requests/ directory (a corpus holds attacks/<class>.txt, benign/<name>.txt, requests/{{attack,benign}}/*.http)")]
    Empty(PathBuf),
    /// A directory or file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The files of directory `d` whose extension is `ext`, sorted.
fn files_with_ext(d: &Path, ext: &str) -> Result<Vec<PathBuf>, CorpusError> {
    let entries = std::fs::read_dir(d).map_err(|source| CorpusError::Io {
        path: d.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// The `.txt` files of `dir/attacks` and `dir/benign`, attacks first, each by name. A missing
/// subdirectory is no error; all of `attacks/`, `benign/` and `requests/` missing is.
pub fn corpus_files(dir: &Path) -> Result<Vec<CorpusFile>, CorpusError> {
    let mut out = Vec::new();
    let mut any = false;
    for (sub, attack) in [("attacks", true), ("benign", false)] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        any = true;
        out.extend(files_with_ext(&d, "txt")?.into_iter().map(|path| {
            CorpusFile {
                attack,
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
            }
        }));
    }
    if any || dir.join("requests").is_dir() {
        Ok(out)
    } else {
        Err(CorpusError::Empty(dir.to_path_buf()))
    }
}

/// The whole requests of a corpus: `dir/requests/attack/*.http` (true) and
/// `dir/requests/benign/*.http` (false), each sorted by name; none when the directories are
/// missing.
pub fn request_files(dir: &Path) -> Result<Vec<(bool, PathBuf)>, CorpusError> {
    let mut out = Vec::new();
    for (sub, attack) in [("attack", true), ("benign", false)] {
        let d = dir.join("requests").join(sub);
        if !d.is_dir() {
            continue;
        }
        out.extend(files_with_ext(&d, "http")?.into_iter().map(|p| (attack, p)));
    }
    Ok(out)
}

/// A raw request as stored (LF line ends, for readability) as it goes on the wire (CRLF).
pub fn to_wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    out
}

/// Reads a corpus file's lines ([`lines`]).
pub fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, CorpusError> {
    std::fs::read(path)
        .map(|b| lines(&b))
        .map_err(|source| CorpusError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::{arg_for, json_str, lines, pct, to_wire, Rate};

    #[test]
    fn encodings_and_lines() {
        assert_eq!(pct(b"a b&c=%"), "a%20b%26c%3D%25");
        assert_eq!(json_str(b"say \"hi\"\\\n"), "\"say \\\"hi\\\"\\\\\\u000a\"");
        assert_eq!(
            lines(b"one\r\n\n  \ntwo\n"),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        assert_eq!(
            to_wire(b"GET / HTTP/1.1\nHost: a\r\n\n"),
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        assert_eq!(arg_for("open-redirect", true), "next");
        assert_eq!(arg_for("open-redirect", false), "q");
        let r = Rate {
            lines: 4,
            hits: 1,
            sample: 0,
            ..Rate::default()
        };
        assert_eq!(r.pct(), 25.0);
        assert_eq!(r.json_pct(), 0.0);
    }
}
