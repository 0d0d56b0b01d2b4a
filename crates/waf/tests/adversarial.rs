//! Adversarial inputs of 256 KiB and 1 MiB through the engine's public inspection API (the
//! same calls the gateway makes: `inspect_head`, then `inspect_body`, then `verdict`), with the
//! shipped rule set at paranoia 4 (every rule active) and an inspection limit above 1 MiB.
//!
//! No ReDoS and no quadratic blow-up: for each shape the time and the peak heap of the 1 MiB
//! input must stay within a ratio of the 256 KiB one (linear is 4x, quadratic 16x). Ratios,
//! not absolute times, so a slow or busy machine cannot fail the test; each time is the best of
//! a few interleaved runs. Nesting and part counts are capped: those inputs end in a body error
//! (the gateway answers 400) whatever their size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use palisade_waf::body::{MAX_DEPTH, MAX_PARTS};
use palisade_waf::{BodyError, Inspection, Policy, PolicyConfig, RequestHead, RuleSet};

/// Counts live heap bytes and their peak, so memory can be bounded like time.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to `System` unchanged and only updates two counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The heap counters are process-wide: tests of this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SMALL: usize = 256 * 1024;
const LARGE: usize = 1024 * 1024;
/// 1 MiB may take at most this many times as long as 256 KiB (linear: 4, quadratic: 16).
const TIME_RATIO_MAX: f64 = 9.0;
/// Same bound for the peak heap growth during the inspection.
const MEMORY_RATIO_MAX: f64 = 9.0;
/// Interleaved runs per size; the fastest counts.
const RUNS: usize = 3;

fn rules() -> RuleSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    match RuleSet::load_dir(&dir) {
        Ok(rs) => {
            // The heap counters are process-wide: the compile's background thread must be
            // done before inspections are measured.
            rs.wait_background();
            rs
        }
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    }
}

fn policy(rs: &RuleSet) -> Policy {
    let cfg: PolicyConfig =
        serde_saphyr::from_str("paranoia: 4\ninspection_limit: 4194304\n").expect("policy");
    Policy::compile(&cfg, rs).expect("policy compiles")
}

/// Where the adversarial bytes go.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// The query string.
    Query,
    /// A header value.
    Header,
    /// The body, with this content type.
    Body(&'static str),
}

/// One request shape: `make(n)` builds about `n` bytes of it.
struct Shape {
    name: &'static str,
    place: Place,
    make: fn(usize) -> Vec<u8>,
    /// The body error every size must end in (the caps), if any.
    capped: Option<BodyError>,
}

/// One multipart part (boundary `b`).
const PART: &str = "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n";

fn repeat(unit: &str, n: usize) -> Vec<u8> {
    unit.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(n / unit.len() * unit.len())
        .collect()
}

fn json_string(inner: Vec<u8>) -> Vec<u8> {
    let mut v = b"{\"q\":\"".to_vec();
    v.extend(inner);
    v.extend_from_slice(b"\"}");
    v
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "deep json arrays",
            place: Place::Body("application/json"),
            make: |n| [repeat("[", n / 2), repeat("]", n / 2)].concat(),
            capped: Some(BodyError::TooDeep { limit: MAX_DEPTH }),
        },
        Shape {
            name: "deep json objects",
            place: Place::Body("application/json"),
            make: |n| [repeat("{\"a\":", n * 5 / 6), repeat("}", n / 6)].concat(),
            capped: Some(BodyError::TooDeep { limit: MAX_DEPTH }),
        },
        Shape {
            name: "deep xml",
            place: Place::Body("application/xml"),
            make: |n| [repeat("<a>", n / 2), repeat("</a>", n / 2)].concat(),
            capped: Some(BodyError::TooDeep { limit: MAX_DEPTH }),
        },
        Shape {
            name: "many multipart parts",
            place: Place::Body("multipart/form-data; boundary=b"),
            make: |n| {
                let mut v = repeat(
                    "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n",
                    n,
                );
                v.extend_from_slice(b"--b--\r\n");
                v
            },
            capped: Some(BodyError::TooManyParts { limit: MAX_PARTS }),
        },
        Shape {
            name: "many json keys",
            place: Place::Body("application/json"),
            make: |n| {
                let mut v = b"{".to_vec();
                v.extend(repeat("\"a'\":\"<b>\",", n));
                v.extend_from_slice(b"\"z\":1}");
                v
            },
            capped: None,
        },
        Shape {
            name: "json backslashes",
            place: Place::Body("application/json"),
            make: |n| json_string(repeat("\\\\", n)),
            capped: None,
        },
        Shape {
            name: "json unicode escapes",
            place: Place::Body("application/json"),
            make: |n| json_string(repeat("\\u003c", n)),
            capped: None,
        },
        Shape {
            name: "percent run in query",
            place: Place::Query,
            make: |n| [b"q=".to_vec(), repeat("%", n)].concat(),
            capped: None,
        },
        Shape {
            name: "percent run in form body",
            place: Place::Body("application/x-www-form-urlencoded"),
            make: |n| [b"q=".to_vec(), repeat("%", n)].concat(),
            capped: None,
        },
        Shape {
            name: "repeated %25 (layered decoding)",
            place: Place::Query,
            make: |n| [b"q=%".to_vec(), repeat("25", n), b"3Cscript".to_vec()].concat(),
            capped: None,
        },
        Shape {
            name: "repeated %25 in a form body",
            place: Place::Body("application/x-www-form-urlencoded"),
            make: |n| [b"q=%".to_vec(), repeat("25", n), b"27".to_vec()].concat(),
            capped: None,
        },
        Shape {
            name: "ampersands",
            place: Place::Query,
            make: |n| repeat("&", n),
            capped: None,
        },
        Shape {
            name: "ampersands in a form body",
            place: Place::Body("application/x-www-form-urlencoded"),
            make: |n| repeat("&a=", n),
            capped: None,
        },
        Shape {
            name: "angle brackets",
            place: Place::Body("text/plain"),
            make: |n| repeat("<", n),
            capped: None,
        },
        Shape {
            name: "tag soup",
            place: Place::Body("text/html"),
            make: |n| repeat("<a <b onx=<c <script", n),
            capped: None,
        },
        Shape {
            name: "single quotes",
            place: Place::Query,
            make: |n| [b"q=".to_vec(), repeat("'", n)].concat(),
            capped: None,
        },
        Shape {
            name: "sql comment and quote soup",
            place: Place::Body("application/x-www-form-urlencoded"),
            make: |n| [b"q=".to_vec(), repeat("'/*--/*'or(", n)].concat(),
            capped: None,
        },
        Shape {
            name: "backslashes",
            place: Place::Query,
            make: |n| [b"q=".to_vec(), repeat("\\", n)].concat(),
            capped: None,
        },
        Shape {
            name: "html entities",
            place: Place::Body("text/plain"),
            make: |n| repeat("&#x26;amp;&#", n),
            capped: None,
        },
        Shape {
            name: "long base64",
            place: Place::Query,
            make: |n| {
                [
                    b"q=".to_vec(),
                    repeat("PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg", n),
                ]
                .concat()
            },
            capped: None,
        },
        Shape {
            name: "long base64 body",
            place: Place::Body("application/x-www-form-urlencoded"),
            make: |n| [b"q=".to_vec(), repeat("QUFB", n)].concat(),
            capped: None,
        },
        Shape {
            name: "path traversal run",
            place: Place::Query,
            make: |n| [b"f=".to_vec(), repeat("..%2f./\\/", n)].concat(),
            capped: None,
        },
        Shape {
            name: "long header value",
            place: Place::Header,
            make: |n| repeat("a'<%25\\", n),
            capped: None,
        },
    ]
}

/// One inspection; returns (time, peak heap growth, inspection).
fn run(rs: &RuleSet, p: &Policy, shape: &Shape, input: &[u8]) -> (Duration, usize, Inspection) {
    let mut headers = HeaderMap::new();
    let (query, body, ctype) = match shape.place {
        Place::Query => (Some(input), &b""[..], None),
        Place::Header => {
            headers.insert(
                "x-adversarial",
                HeaderValue::from_bytes(input).expect("header value"),
            );
            (None, &b""[..], None)
        }
        Place::Body(ct) => (None, input, Some(ct.as_bytes())),
    };
    let head = RequestHead {
        method: "POST",
        path: b"/api/items",
        query,
        headers: &headers,
        authority: None,
    };
    let mut out = Inspection::new();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let t = Instant::now();
    rs.inspect_head(p, &head, &mut out);
    rs.inspect_body(p, ctype, body, &mut out);
    let _ = out.verdict(p);
    let elapsed = t.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (elapsed, peak, out)
}

/// Best-of-`RUNS` time and peak heap at two sizes, checking the caps; returns the ratios and a
/// report line.
fn measure(
    rs: &RuleSet,
    p: &Policy,
    shape: &Shape,
    small: usize,
    large: usize,
) -> (f64, f64, String) {
    let small_input = (shape.make)(small);
    let large_input = (shape.make)(large);
    let (mut t_small, mut t_large) = (Duration::MAX, Duration::MAX);
    let (mut m_small, mut m_large) = (0, 0);
    for _ in 0..RUNS {
        for (input, t, m) in [
            (&small_input, &mut t_small, &mut m_small),
            (&large_input, &mut t_large, &mut m_large),
        ] {
            let (dt, mem, out) = run(rs, p, shape, input);
            *t = (*t).min(dt);
            *m = (*m).max(mem);
            if let Some(want) = &shape.capped {
                assert_eq!(
                    out.body_error(),
                    Some(want),
                    "{}: the cap must turn into a body error (400) at {} bytes",
                    shape.name,
                    input.len()
                );
            }
        }
    }
    // Floors keep ratios of tiny figures meaningful (timer and allocator granularity).
    let t_ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-4);
    let m_ratio = m_large.max(64 * 1024) as f64 / m_small.max(64 * 1024) as f64;
    let line = format!(
        "{:<34} {:>5}K {:>9.2?} {:>8} B | {:>5}K {:>9.2?} {:>8} B | x{:.1} time x{:.1} heap",
        shape.name,
        small / 1024,
        t_small,
        m_small,
        large / 1024,
        t_large,
        m_large,
        t_ratio,
        m_ratio
    );
    (t_ratio, m_ratio, line)
}

#[test]
fn adversarial_inputs_take_linear_time_and_memory_and_caps_hold() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rs = rules();
    let p = policy(&rs);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for shape in shapes() {
        let (t_ratio, m_ratio, line) = measure(&rs, &p, &shape, SMALL, LARGE);
        report.push(line);
        if t_ratio <= TIME_RATIO_MAX && m_ratio <= MEMORY_RATIO_MAX {
            continue;
        }
        // A constant-factor step (e.g. a lazy DFA giving way to a slower linear engine past
        // some size) can make one 4x step look steep; quadratic growth is steep at every
        // scale. Confirm on the next 4x step before calling it super-linear.
        let (t2, m2, line) = measure(&rs, &p, &shape, 2 * SMALL, 2 * LARGE);
        report.push(line);
        if t_ratio > TIME_RATIO_MAX && t2 > TIME_RATIO_MAX {
            failures.push(format!("{}: time x{t_ratio:.1} then x{t2:.1}", shape.name));
        }
        if m_ratio > MEMORY_RATIO_MAX && m2 > MEMORY_RATIO_MAX {
            failures.push(format!("{}: heap x{m_ratio:.1} then x{m2:.1}", shape.name));
        }
    }
    let report = report.join("\n");
    eprintln!("{report}");
    assert!(
        failures.is_empty(),
        "super-linear shapes: {failures:?}\n{report}"
    );
}

#[test]
fn caps_hold_just_past_the_limit_and_not_before() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rs = rules();
    let p = policy(&rs);
    let json = |depth: usize| [repeat("[", depth), repeat("]", depth)].concat();
    let multipart = |parts: usize| {
        let mut v = repeat(PART, parts * PART.len());
        v.extend_from_slice(b"--b--\r\n");
        v
    };
    let body_error = |ct: &'static str, body: &[u8]| {
        let shape = Shape {
            name: "cap",
            place: Place::Body(ct),
            make: |_| Vec::new(),
            capped: None,
        };
        run(&rs, &p, &shape, body).2.body_error().cloned()
    };
    assert_eq!(body_error("application/json", &json(MAX_DEPTH)), None);
    assert_eq!(
        body_error("application/json", &json(MAX_DEPTH + 1)),
        Some(BodyError::TooDeep { limit: MAX_DEPTH })
    );
    let ct = "multipart/form-data; boundary=b";
    assert_eq!(body_error(ct, &multipart(MAX_PARTS)), None);
    assert_eq!(
        body_error(ct, &multipart(MAX_PARTS + 1)),
        Some(BodyError::TooManyParts { limit: MAX_PARTS })
    );
}
