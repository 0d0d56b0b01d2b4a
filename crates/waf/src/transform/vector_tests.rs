//! The one table-driven test over `vectors/<name>.yaml` for every transform.

use super::Transform;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    input_hex: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    output_hex: Option<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| {
            let h = super::hex_val(p[0]).unwrap_or(0);
            let l = p.get(1).and_then(|&c| super::hex_val(c)).unwrap_or(0);
            h << 4 | l
        })
        .collect()
}

fn bytes(text: &Option<String>, hex: &Option<String>) -> Vec<u8> {
    match (text, hex) {
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h),
        _ => panic!("a vector needs exactly one of input/input_hex (output/output_hex)"),
    }
}

#[test]
fn every_transform_passes_its_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/transform/vectors");
    let mut failures = Vec::new();
    for t in Transform::ALL {
        let path = dir.join(format!("{}.yaml", t.name()));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (every transform needs vectors)", path.display()));
        let vectors: Vec<Vector> =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(vectors.len() >= 3, "{}: too few vectors", path.display());
        for (i, v) in vectors.iter().enumerate() {
            let input = bytes(&v.input, &v.input_hex);
            let want = bytes(&v.output, &v.output_hex);
            let mut out = Vec::new();
            let changed = t.apply(&input, &mut out);
            let got = if changed { out } else { input.clone() };
            if got != want {
                failures.push(format!(
                    "{} vector {i}: input {:?}: want {:?}, got {:?}",
                    t.name(),
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&got)
                ));
            }
            if changed && got == input {
                failures.push(format!(
                    "{} vector {i}: reported a change but none",
                    t.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table-driven `compress_whitespace`, `remove_whitespace` and `cmd_line` against the
/// byte-at-a-time versions they replaced (kept here as the reference).
mod reference {
    use proptest::prelude::*;

    fn ws_len(input: &[u8], i: usize) -> usize {
        match input.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | 0xA0) => 1,
            Some(0xC2) if input.get(i + 1) == Some(&0xA0) => 2,
            _ => 0,
        }
    }

    fn compress(input: &[u8]) -> Option<Vec<u8>> {
        let needed = (0..input.len())
            .any(|i| ws_len(input, i) > 0 && (input[i] != b' ' || ws_len(input, i + 1) > 0));
        if !needed {
            return None;
        }
        let (mut out, mut i) = (Vec::new(), 0);
        while i < input.len() {
            let n = ws_len(input, i);
            if n == 0 {
                out.push(input[i]);
                i += 1;
                continue;
            }
            out.push(b' ');
            i += n;
            while ws_len(input, i) > 0 {
                i += ws_len(input, i);
            }
        }
        Some(out)
    }

    fn remove(input: &[u8]) -> Option<Vec<u8>> {
        if !(0..input.len()).any(|i| ws_len(input, i) > 0) {
            return None;
        }
        let (mut out, mut i) = (Vec::new(), 0);
        while i < input.len() {
            let n = ws_len(input, i);
            if n == 0 {
                out.push(input[i]);
                i += 1;
            } else {
                i += n;
            }
        }
        Some(out)
    }

    fn cmd_line(input: &[u8]) -> Option<Vec<u8>> {
        let quick = input.iter().enumerate().any(|(i, &b)| {
            matches!(
                b,
                b'\\'
                    | b'"'
                    | b'\''
                    | b'^'
                    | b','
                    | b';'
                    | b'\t'
                    | b'\n'
                    | b'\r'
                    | 0x0B
                    | 0x0C
                    | 0xA0
                    | 0xC2
            ) || b.is_ascii_uppercase()
                || (b == b' ' && matches!(input.get(i + 1), Some(b' ' | b'/' | b'(') | None))
        });
        if !quick {
            return None;
        }
        let (mut out, mut pending, mut i) = (Vec::new(), false, 0);
        while i < input.len() {
            let b = input[i];
            let n = ws_len(input, i);
            if n > 0 || b == b',' || b == b';' {
                pending = true;
                i += n.max(1);
                continue;
            }
            match b {
                b'\\' | b'"' | b'\'' | b'^' => {}
                b'/' | b'(' => {
                    pending = false;
                    out.push(b);
                }
                _ => {
                    if pending {
                        out.push(b' ');
                        pending = false;
                    }
                    out.push(b.to_ascii_lowercase());
                }
            }
            i += 1;
        }
        if pending {
            out.push(b' ');
        }
        (out.as_slice() != input).then_some(out)
    }

    fn run(f: fn(&[u8], &mut Vec<u8>) -> bool, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = b"stale".to_vec();
        f(input, &mut out).then_some(out)
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b' '),
                Just(b'\t'),
                Just(0xC2u8),
                Just(0xA0u8),
                Just(b'A'),
                Just(b'a'),
                Just(b','),
                Just(b';'),
                Just(b'\''),
                Just(b'^'),
                Just(b'/'),
                Just(b'('),
                any::<u8>(),
            ],
            0..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn table_driven_whitespace_and_cmd_line_agree_with_the_reference(input in bytes()) {
            use crate::transform::{cmd_line, compress_whitespace, remove_whitespace};
            prop_assert_eq!(run(compress_whitespace::apply, &input), compress(&input));
            prop_assert_eq!(run(remove_whitespace::apply, &input), remove(&input));
            prop_assert_eq!(run(cmd_line::apply, &input), cmd_line(&input));
        }
    }
}
