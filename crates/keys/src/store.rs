//! [`KeyStore`]: API key records in a JSON file, with each key kept only as its SHA-256.
//!
//! Every change is a read-modify-write of the whole file under an exclusive lock on
//! `<file>.lock`, written to a temporary file and renamed over the old one, so the gateway and the
//! `palisade keys` command can both change keys without losing each other's changes, and a crash
//! leaves the old file or the new one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::{Clock, SystemClock};
use crate::fsutil::{write_atomic, FileLock};
use crate::token::{self, KeyHash};

/// What is known about a key, without the key: safe to list, log and return from the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, `key_` and 12 base62 characters; also inside the key itself.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// Who the key was issued to.
    pub owner: String,
    /// Name of the key's usage plan.
    pub plan: String,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When the key stops working (403 `api_key_expired` from then on); never when absent.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires: Option<OffsetDateTime>,
    /// When the secret was last replaced by [`KeyStore::rotate`].
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub rotated: Option<OffsetDateTime>,
    /// A revoked key is refused with 403 `api_key_revoked`.
    pub revoked: bool,
}

impl KeyRecord {
    /// Whether the key has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| OffsetDateTime::from(now) >= e)
    }
}

/// A record with the hash of its key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredKey {
    pub record: KeyRecord,
    pub hash: KeyHash,
    /// After a rotation with a grace period: the old key's hash, accepted until the instant.
    pub previous: Option<(KeyHash, OffsetDateTime)>,
}

/// The old key of a rotation with a grace period, in the key file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousKey {
    hash: KeyHash,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
}

/// The key file's layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    id: String,
    name: String,
    owner: String,
    plan: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    expires: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    rotated: Option<OffsetDateTime>,
    revoked: bool,
    hash: KeyHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<PreviousKey>,
}

const FILE_VERSION: u32 = 1;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or locking the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file is not valid JSON of the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The key file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The key file parsed but holds something impossible (bad id, duplicate id, version).
    #[error("{path}: {message}")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No key has this id.
    #[error("no API key with id `{0}` (see `palisade keys list`)")]
    NotFound(String),
    /// The plan named for a new key does not exist.
    #[error("usage plan `{plan}` does not exist (known plans: {known})")]
    UnknownPlan {
        /// The plan asked for.
        plan: String,
        /// The plans that exist, comma-separated.
        known: String,
    },
    /// A key needs a name and a plan.
    #[error("the key's `{0}` must not be empty")]
    Empty(&'static str),
    /// A new key would already be expired.
    #[error("expiry {0} is not in the future")]
    ExpiryInPast(OffsetDateTime),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// API key records, kept in memory and (unless in-memory) in a JSON file.
pub struct KeyStore {
    path: Option<PathBuf>,
    keys: RwLock<Arc<Vec<StoredKey>>>,
    write: Mutex<()>,
    generation: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("keys", &self.keys.read().len())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens the key file at `path`; a missing file is an empty store (created on first change).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let keys = read_file(&path)?;
        Ok(Self {
            path: Some(path),
            keys: RwLock::new(Arc::new(keys)),
            write: Mutex::new(()),
            generation: AtomicU64::new(0),
            clock: Arc::new(SystemClock),
        })
    }

    /// A store that lives only in memory (tests, benchmarks).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            keys: RwLock::new(Arc::new(Vec::new())),
            write: Mutex::new(()),
            generation: AtomicU64::new(0),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for creation and rotation times and the expiry check at creation.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A number that changes whenever the set of keys changes (in this process).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Creates a key and returns its record and the key itself. The key is shown here once and
    /// never again: only its hash is kept. The plan's existence is checked by the caller
    /// ([`crate::KeyAuth::create`] does it).
    pub fn create(
        &self,
        name: &str,
        owner: &str,
        plan: &str,
        expires: Option<OffsetDateTime>,
    ) -> Result<(KeyRecord, String), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Empty("name"));
        }
        if plan.is_empty() {
            return Err(StoreError::Empty("plan"));
        }
        let now = OffsetDateTime::from(self.clock.now());
        if let Some(e) = expires {
            if e <= now {
                return Err(StoreError::ExpiryInPast(e));
            }
        }
        self.mutate(|keys| {
            let id = loop {
                let id = token::new_id_chars().map_err(StoreError::Random)?;
                let id = token::id_string(&id);
                if !keys.iter().any(|k| k.record.id == id) {
                    break id;
                }
            };
            let chars = token::parse_id(&id).ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let key = token::new_key(&chars).map_err(StoreError::Random)?;
            let record = KeyRecord {
                id,
                name: name.to_owned(),
                owner: owner.to_owned(),
                plan: plan.to_owned(),
                created: now,
                expires,
                rotated: None,
                revoked: false,
            };
            keys.push(StoredKey {
                record: record.clone(),
                hash: KeyHash::of(&key),
                previous: None,
            });
            Ok((record, key))
        })
    }

    /// Every key's record, oldest first.
    pub fn list(&self) -> Vec<KeyRecord> {
        self.keys.read().iter().map(|k| k.record.clone()).collect()
    }

    /// The record of key `id`.
    pub fn get(&self, id: &str) -> Option<KeyRecord> {
        self.keys
            .read()
            .iter()
            .find(|k| k.record.id == id)
            .map(|k| k.record.clone())
    }

    /// Replaces key `id`'s secret and returns the new key (shown once); the old key stops working
    /// at once. The id, plan and quota usage stay.
    pub fn rotate(&self, id: &str) -> Result<String, StoreError> {
        self.rotate_with_grace(id, std::time::Duration::ZERO)
    }

    /// Like [`KeyStore::rotate`], but the old key keeps working for `grace` (zero: it stops at
    /// once), so clients can switch without an outage. A second rotation ends an earlier grace.
    pub fn rotate_with_grace(
        &self,
        id: &str,
        grace: std::time::Duration,
    ) -> Result<String, StoreError> {
        let now = OffsetDateTime::from(self.clock.now());
        self.mutate(|keys| {
            let k = keys
                .iter_mut()
                .find(|k| k.record.id == id)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let chars = token::parse_id(id).ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let key = token::new_key(&chars).map_err(StoreError::Random)?;
            let old = std::mem::replace(&mut k.hash, KeyHash::of(&key));
            k.previous = (!grace.is_zero()).then(|| (old, now + grace));
            k.record.rotated = Some(now);
            Ok(key)
        })
    }

    /// Revokes key `id` (idempotent) and returns its record.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, StoreError> {
        self.mutate(|keys| {
            let k = keys
                .iter_mut()
                .find(|k| k.record.id == id)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            k.record.revoked = true;
            Ok(k.record.clone())
        })
    }

    /// Re-reads the key file (after another process changed it). Returns whether anything
    /// changed. On error the keys in memory stay as they were.
    pub fn reload(&self) -> Result<bool, StoreError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let _w = self.write.lock();
        let fresh = read_file(path)?;
        let mut keys = self.keys.write();
        if **keys == fresh {
            return Ok(false);
        }
        *keys = Arc::new(fresh);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// The current keys with their hashes.
    pub(crate) fn snapshot(&self) -> Arc<Vec<StoredKey>> {
        self.keys.read().clone()
    }

    /// Applies `f` to the latest keys (re-read from the file under its lock), writes the result
    /// and installs it in memory.
    fn mutate<R>(
        &self,
        f: impl FnOnce(&mut Vec<StoredKey>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _w = self.write.lock();
        let (mut keys, _lock) = match &self.path {
            Some(path) => {
                let lock = FileLock::acquire(path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                (read_file(path)?, Some(lock))
            }
            None => (Vec::clone(&self.keys.read()), None),
        };
        let out = f(&mut keys)?;
        if let Some(path) = &self.path {
            write_file(path, &keys)?;
        }
        *self.keys.write() = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }
}

fn read_file(path: &Path) -> Result<Vec<StoredKey>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| StoreError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: crate::fsutil::json_message(&e),
    })?;
    let invalid = |message: String| StoreError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if file.version != FILE_VERSION {
        return Err(invalid(format!(
            "key file version {} is not supported (this build reads version {FILE_VERSION})",
            file.version
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(file.keys.len());
    let mut out = Vec::with_capacity(file.keys.len());
    for k in file.keys {
        if !token::is_valid_id(&k.id) {
            return Err(invalid(format!(
                "key id `{}` is malformed (expected `key_` and 12 letters or digits)",
                k.id
            )));
        }
        if !seen.insert(k.id.clone()) {
            return Err(invalid(format!("key id `{}` appears twice", k.id)));
        }
        out.push(StoredKey {
            record: KeyRecord {
                id: k.id,
                name: k.name,
                owner: k.owner,
                plan: k.plan,
                created: k.created,
                expires: k.expires,
                rotated: k.rotated,
                revoked: k.revoked,
            },
            hash: k.hash,
            previous: k.previous.map(|p| (p.hash, p.until)),
        });
    }
    Ok(out)
}

fn write_file(path: &Path, keys: &[StoredKey]) -> Result<(), StoreError> {
    let file = KeyFile {
        version: FILE_VERSION,
        keys: keys
            .iter()
            .map(|k| FileKey {
                id: k.record.id.clone(),
                name: k.record.name.clone(),
                owner: k.record.owner.clone(),
                plan: k.record.plan.clone(),
                created: k.record.created,
                expires: k.record.expires,
                rotated: k.record.rotated,
                revoked: k.record.revoked,
                hash: k.hash,
                previous: k.previous.map(|(hash, until)| PreviousKey { hash, until }),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}
