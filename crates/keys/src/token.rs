//! The key format and its hash.
//!
//! A key reads `pk_<12 base62 id chars>_<32 base62 secret chars>` (48 bytes); its public id is
//! `key_<the same 12 chars>`. Only `SHA-256(whole key)` is stored. The id lets a lookup find the
//! one record to compare against, and the comparison of hashes is constant-time.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every key.
pub const KEY_PREFIX: &str = "pk_";
/// Prefix of every key id.
pub const ID_PREFIX: &str = "key_";
/// Random characters in a key id.
pub const ID_LEN: usize = 12;
/// Random characters in a key's secret part (32 × log2(62) ≈ 190 bits).
pub const SECRET_LEN: usize = 32;
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 12 random characters shared by a key and its id.
pub(crate) type IdChars = [u8; ID_LEN];

/// Hasher for the id index. Ids are random characters chosen by us, and a request can only look
/// ids up, never insert them, so a fast unkeyed mix is enough (no hash flooding is possible).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
}

/// `BuildHasher` of [`IdHasher`].
pub(crate) type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// The id characters of a presented key, or `None` when it is not shaped like a key (length,
/// prefix, separator). The characters themselves are not checked here: a key with a stray byte
/// finds no id or fails the hash comparison, which covers every byte.
pub(crate) fn parse_key(presented: &str) -> Option<IdChars> {
    let b = presented.as_bytes();
    if b.len() != KEY_LEN || !b.starts_with(KEY_PREFIX.as_bytes()) {
        return None;
    }
    let id = b.get(KEY_PREFIX.len()..KEY_PREFIX.len() + ID_LEN)?;
    if b.get(KEY_PREFIX.len() + ID_LEN) != Some(&b'_') {
        return None;
    }
    id.try_into().ok()
}

/// The id characters of a public key id (`key_…`), or `None` when malformed.
pub(crate) fn parse_id(id: &str) -> Option<IdChars> {
    let chars = id.strip_prefix(ID_PREFIX)?.as_bytes();
    if chars.len() != ID_LEN || !chars.iter().all(|&c| is_base62(c)) {
        return None;
    }
    chars.try_into().ok()
}

/// Whether `id` is a well-formed key id.
pub fn is_valid_id(id: &str) -> bool {
    parse_id(id).is_some()
}

fn random_base62<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    let mut filled = 0;
    let mut buf = [0u8; 64];
    while filled < N {
        getrandom::fill(&mut buf)?;
        // Rejection sampling: 248 = 4 × 62, so `b % 62` is uniform for b < 248.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if filled == N {
                break;
            }
            if let (Some(slot), Some(&c)) = (out.get_mut(filled), BASE62.get(usize::from(b % 62))) {
                *slot = c;
                filled += 1;
            }
        }
    }
    Ok(out)
}

/// Fresh random id characters.
pub(crate) fn new_id_chars() -> Result<IdChars, getrandom::Error> {
    random_base62::<ID_LEN>()
}

/// A fresh key for `id`.
pub(crate) fn new_key(id: &IdChars) -> Result<String, getrandom::Error> {
    let secret = random_base62::<SECRET_LEN>()?;
    let mut s = String::with_capacity(KEY_LEN);
    s.push_str(KEY_PREFIX);
    s.extend(id.iter().map(|&c| char::from(c)));
    s.push('_');
    s.extend(secret.iter().map(|&c| char::from(c)));
    Ok(s)
}

/// The public id string of `id`.
pub(crate) fn id_string(id: &IdChars) -> String {
    let mut s = String::with_capacity(ID_PREFIX.len() + ID_LEN);
    s.push_str(ID_PREFIX);
    s.extend(id.iter().map(|&c| char::from(c)));
    s
}

/// SHA-256 of a whole key: the only form in which keys are stored. Debug shows nothing of it;
/// it serializes as `sha256:<hex>` in the key file only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of `key`.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Constant-time comparison with the hash of `presented`.
    pub fn matches(&self, presented: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&h).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

const HASH_PREFIX: &str = "sha256:";

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
        out.push_str(HASH_PREFIX);
        for b in self.0 {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("expected `sha256:` and 64 lowercase hex digits");
        let hex = s.strip_prefix(HASH_PREFIX).ok_or_else(bad)?.as_bytes();
        if hex.len() != 64 {
            return Err(bad());
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (nibble(*hi).ok_or_else(bad)?, nibble(*lo).ok_or_else(bad)?),
                _ => return Err(bad()),
            };
            *o = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_id() {
        let id = new_id_chars().unwrap();
        let key = new_key(&id).unwrap();
        assert_eq!(key.len(), KEY_LEN);
        assert_eq!(parse_key(&key), Some(id));
        assert_eq!(parse_id(&id_string(&id)), Some(id));
        assert!(key.starts_with("pk_"));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let key = new_key(&new_id_chars().unwrap()).unwrap();
        assert_eq!(parse_key(""), None);
        assert_eq!(parse_key(&key[1..]), None);
        assert_eq!(parse_key(&format!("{key}x")), None);
        assert_eq!(parse_key(&key.replacen("pk_", "pX_", 1)), None);
        let mut bad_sep = key.clone().into_bytes();
        bad_sep[15] = b'-';
        assert_eq!(parse_key(std::str::from_utf8(&bad_sep).unwrap()), None);
        // Multi-byte UTF-8 of the right byte length parses without panicking (and then matches
        // no id, since ids are base62).
        let utf8 = format!("pk_{}_{}", "é".repeat(6), "a".repeat(32));
        assert_eq!(utf8.len(), KEY_LEN);
        assert!(parse_key(&utf8).is_some_and(|id| parse_id(&id_string(&id)).is_none()));
        let utf8 = format!("pk_{}é{}", "a".repeat(12), "a".repeat(31));
        assert_eq!(utf8.len(), KEY_LEN);
        assert_eq!(parse_key(&utf8), None);
        assert_eq!(parse_id("key_short"), None);
        assert_eq!(parse_id("kex_abcdefghijkl"), None);
    }

    #[test]
    fn secrets_use_the_whole_alphabet_and_differ() {
        let id = new_id_chars().unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for _ in 0..400 {
            let k = new_key(&id).unwrap();
            seen.extend(k[16..].bytes());
            assert!(keys.insert(k));
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn hash_matches_sha256sum_and_round_trips_through_serde() {
        // echo -n pk_abcdefghijkl_0123456789abcdefghijABCDEFGHIJ | sha256sum
        let h = KeyHash::of("pk_abcdefghijkl_0123456789abcdefghijABCDEFGHIJ");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            "\"sha256:d2d58b08effc8ed93db81c4d776dcd14e98c47fbc894436f4721d4df03f5bf7b\""
        );
        let back: KeyHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert!(h.matches("pk_abcdefghijkl_0123456789abcdefghijABCDEFGHIJ"));
        assert!(!h.matches("pk_abcdefghijkl_0123456789abcdefghijABCDEFGHIX"));
        assert_eq!(format!("{h:?}"), "KeyHash(<redacted>)");
        assert!(serde_json::from_str::<KeyHash>("\"sha256:zz\"").is_err());
        assert!(serde_json::from_str::<KeyHash>("\"md5:00\"").is_err());
    }
}
