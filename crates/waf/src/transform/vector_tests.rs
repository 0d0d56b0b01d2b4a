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
