//! KeyStore against real files: hashes only, atomic replacement, errors with file:line:col.

use std::sync::Arc;

use palisade_keys::{KeyHash, KeyStore, ManualClock, StoreError};

#[test]
fn the_key_file_holds_the_hash_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let store = KeyStore::open(&path).unwrap();
    let (rec, key) = store.create("ci", "alice", "gold", None).unwrap();
    let secret = &key[16..];
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains(&rec.id));
    let hash = serde_json::to_string(&KeyHash::of(&key)).unwrap();
    assert!(text.contains(hash.trim_matches('"')), "{text}");
    // Nor in Debug or Serialize of anything the store hands out.
    let listed = format!(
        "{:?} {}",
        store.list(),
        serde_json::to_string(&store.list()).unwrap()
    );
    assert!(
        !listed.contains(secret) && !listed.contains("sha256:"),
        "{listed}"
    );
    assert!(!format!("{store:?}").contains(secret));
    // Rotation replaces the hash.
    let new = store.rotate(&rec.id).unwrap();
    let text2 = std::fs::read_to_string(&path).unwrap();
    assert!(!text2.contains(hash.trim_matches('"')));
    assert!(!text2.contains(&new[16..]));
}

#[test]
fn keys_have_the_documented_shape_and_unique_ids() {
    let store = KeyStore::in_memory();
    let mut ids = std::collections::HashSet::new();
    for i in 0..200 {
        let (rec, key) = store.create(&format!("k{i}"), "o", "p", None).unwrap();
        assert_eq!(key.len(), palisade_keys::KEY_LEN);
        assert!(key.starts_with("pk_") && rec.id.starts_with("key_"));
        assert_eq!(&key[3..15], &rec.id[4..], "the id is inside the key");
        assert_eq!(&key[15..16], "_");
        assert!(key[16..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(palisade_keys::is_valid_id(&rec.id));
        assert!(ids.insert(rec.id));
    }
    assert_eq!(store.list().len(), 200);
}

#[test]
fn a_store_reopened_from_its_file_has_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let clock = Arc::new(ManualClock::at_utc(2026, 11, 24, 10, 30, 0).unwrap());
    let store = KeyStore::open(&path).unwrap().with_clock(clock);
    let exp = time::macros::datetime!(2027-01-01 00:00 UTC);
    let (a, _) = store.create("a", "alice", "gold", Some(exp)).unwrap();
    let (b, _) = store.create("b", "bob", "free", None).unwrap();
    store.revoke(&b.id).unwrap();
    let again = KeyStore::open(&path).unwrap();
    assert_eq!(again.list(), store.list());
    let a2 = again.get(&a.id).unwrap();
    assert_eq!(a2.created, time::macros::datetime!(2026-11-24 10:30 UTC));
    assert_eq!(a2.expires, Some(exp));
    assert!(again.get(&b.id).unwrap().revoked);
    assert!(again.get("key_000000000000").is_none());
}

#[test]
fn a_missing_file_is_an_empty_store_created_on_first_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let store = KeyStore::open(&path).unwrap();
    assert!(store.list().is_empty());
    assert!(!path.exists());
    store.create("a", "o", "p", None).unwrap();
    assert!(path.exists());
}

fn open_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, text).unwrap();
    KeyStore::open(&path)
        .unwrap_err()
        .to_string()
        .replace(&path.display().to_string(), "keys.json")
}

#[test]
fn a_bad_key_file_is_refused_with_file_line_and_column() {
    assert_eq!(
        open_err("{\"version\": 1,\n  \"keys\": [\n    {\"id\": 5}]}"),
        "keys.json:3:12: invalid type: integer `5`, expected a string"
    );
    let e = open_err("{\"version\": 1, \"keys\": [], \"extra\": true}");
    assert!(
        e.starts_with("keys.json:1:") && e.contains("unknown field `extra`"),
        "{e}"
    );
    assert_eq!(
        open_err("{\"version\": 2, \"keys\": []}"),
        "keys.json: key file version 2 is not supported (this build reads version 1)"
    );
    let rec = |id: &str| {
        format!(
            r#"{{"id":"{id}","name":"n","owner":"o","plan":"p","created":"2026-11-24T00:00:00Z",
               "revoked":false,"hash":"sha256:{}"}}"#,
            "0".repeat(64)
        )
    };
    assert_eq!(
        open_err(&format!(r#"{{"version":1,"keys":[{}]}}"#, rec("key_bad"))),
        "keys.json: key id `key_bad` is malformed (expected `key_` and 12 letters or digits)"
    );
    let one = rec("key_abcdefghijkl");
    assert_eq!(
        open_err(&format!(r#"{{"version":1,"keys":[{one},{one}]}}"#)),
        "keys.json: key id `key_abcdefghijkl` appears twice"
    );
    let e = open_err(&format!(
        r#"{{"version":1,"keys":[{}]}}"#,
        one.replace(&"0".repeat(64), "zz")
    ));
    assert!(
        e.contains("expected `sha256:` and 64 lowercase hex digits"),
        "{e}"
    );
}

#[test]
fn a_failed_reload_keeps_the_keys_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let store = KeyStore::open(&path).unwrap();
    store.create("a", "o", "p", None).unwrap();
    let before = store.generation();
    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        store.reload(),
        Err(StoreError::Parse { line: 1, .. })
    ));
    assert_eq!(store.list().len(), 1);
    assert_eq!(store.generation(), before);
}

#[test]
fn concurrent_creates_from_two_stores_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let a = KeyStore::open(&path).unwrap();
    let b = KeyStore::open(&path).unwrap();
    std::thread::scope(|s| {
        for store in [&a, &b] {
            s.spawn(move || {
                for i in 0..25 {
                    store.create(&format!("k{i}"), "o", "p", None).unwrap();
                }
            });
        }
    });
    assert_eq!(KeyStore::open(&path).unwrap().list().len(), 50);
}
