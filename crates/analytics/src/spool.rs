//! Disk spool: append-only segment files of length-prefixed, checksummed batch records,
//! replayed oldest first.
//!
//! Layout: `<dir>/seg-<seq:020>.spool`. A record is `u32 len | u32 crc32(payload) | payload`
//! (little endian); the payload is `u8 format (1) | u64 batch_id | u32 rows | u32 min_ts |
//! u32 max_ts | RowBinary rows` — exactly the bytes the writer sends to ClickHouse, so a replay
//! sends the same INSERT that failed.
//!
//! Durability: with [`FsyncPolicy::Batch`] every append is followed by `fsync` (a record that
//! was acknowledged survives a power cut); with `Never`, only the OS decides. A torn record at
//! the end of a segment (crash mid-write) is detected by its length or checksum and cut off when
//! the spool is opened; a corrupt record elsewhere ends that segment's replay (logged).
//!
//! A segment is deleted only after every record in it was inserted; the read position inside
//! the head segment lives in memory, so after a crash the head segment is replayed from its
//! start, and the writer's batch-id check (see `writer`) skips what already arrived.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::{FsyncPolicy, SpoolConfig};
use crate::AnalyticsError;

const HEADER: u64 = 8;
const META: usize = 1 + 8 + 4 + 4 + 4;
const FORMAT: u8 = 1;
/// Largest record accepted when reading (guards against a garbage length).
const MAX_RECORD: u32 = 1 << 30;

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Writer batch id (the `batch_id` column of every row).
    pub batch_id: u64,
    /// Number of rows.
    pub rows: u32,
    /// Smallest `ts` (Unix seconds) in the batch.
    pub min_ts: u32,
    /// Largest `ts` in the batch.
    pub max_ts: u32,
    /// RowBinary rows.
    pub data: Vec<u8>,
}

impl SpoolRecord {
    fn encoded_len(&self) -> u64 {
        HEADER + (META + self.data.len()) as u64
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    len: u64,
}

/// The spool. Not thread-safe by itself: the writer task owns it.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    segments: VecDeque<Segment>,
    /// Open file of the last segment, when appends may go there.
    write: Option<File>,
    /// Offset of the next record to replay in the head segment.
    read_pos: u64,
    /// Size of the record returned by the last `peek`.
    peeked: Option<u64>,
    total: u64,
}

fn seg_name(seq: u64) -> String {
    format!("seg-{seq:020}.spool")
}

impl Spool {
    /// Opens (creating) the spool directory, finds the segments and cuts off a torn tail.
    pub fn open(cfg: &SpoolConfig) -> Result<Self, AnalyticsError> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| AnalyticsError::io(&dir, e))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| AnalyticsError::io(&dir, e))? {
            let entry = entry.map_err(|e| AnalyticsError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(seq) = name
                .strip_prefix("seg-")
                .and_then(|s| s.strip_suffix(".spool"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((seq, entry.path()));
        }
        found.sort();
        let mut segments = VecDeque::new();
        let mut total = 0;
        for (seq, path) in found {
            let len = valid_prefix_len(&path)?;
            let on_disk = fs::metadata(&path)
                .map_err(|e| AnalyticsError::io(&path, e))?
                .len();
            if len < on_disk {
                tracing::warn!(path = %path.display(), len, on_disk, "spool: cutting off a torn or corrupt tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| AnalyticsError::io(&path, e))?;
                f.set_len(len).map_err(|e| AnalyticsError::io(&path, e))?;
            }
            if len == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            total += len;
            segments.push_back(Segment { seq, path, len });
        }
        Ok(Self {
            dir,
            max_bytes: cfg.max_bytes,
            segment_bytes: cfg.segment_bytes.max(1),
            fsync: cfg.fsync,
            segments,
            write: None,
            read_pos: 0,
            peeked: None,
            total,
        })
    }

    /// True when nothing is left to replay.
    pub fn is_empty(&self) -> bool {
        match self.segments.len() {
            0 => true,
            1 => self
                .segments
                .front()
                .is_some_and(|s| self.read_pos >= s.len),
            _ => false,
        }
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Number of segment files.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Appends a batch. Returns `Ok(false)` without writing when the spool would exceed its
    /// size cap (the caller counts the drop).
    pub fn append(&mut self, rec: &SpoolRecord) -> Result<bool, AnalyticsError> {
        let size = rec.encoded_len();
        if self.total + size > self.max_bytes {
            return Ok(false);
        }
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => self.write.is_none() || s.len >= self.segment_bytes,
        };
        if need_new {
            let seq = self.segments.back().map_or(1, |s| s.seq + 1);
            let path = self.dir.join(seg_name(seq));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| AnalyticsError::io(&path, e))?;
            if self.fsync == FsyncPolicy::Batch {
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
            }
            self.segments.push_back(Segment { seq, path, len: 0 });
            self.write = Some(f);
        }
        let (Some(seg), Some(f)) = (self.segments.back_mut(), self.write.as_mut()) else {
            return Ok(false);
        };
        let mut buf = Vec::with_capacity(size as usize);
        let payload_len = (META + rec.data.len()) as u32;
        buf.extend_from_slice(&payload_len.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.push(FORMAT);
        buf.extend_from_slice(&rec.batch_id.to_le_bytes());
        buf.extend_from_slice(&rec.rows.to_le_bytes());
        buf.extend_from_slice(&rec.min_ts.to_le_bytes());
        buf.extend_from_slice(&rec.max_ts.to_le_bytes());
        buf.extend_from_slice(&rec.data);
        let crc = crc32fast::hash(&buf[HEADER as usize..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Err(e) = f.write_all(&buf) {
            // Leave no torn record behind: cut back to the last good length.
            let _ = f.set_len(seg.len);
            return Err(AnalyticsError::io(&seg.path, e));
        }
        if self.fsync == FsyncPolicy::Batch {
            f.sync_data()
                .map_err(|e| AnalyticsError::io(&seg.path, e))?;
        }
        seg.len += size;
        self.total += size;
        Ok(true)
    }

    /// Returns the oldest record not yet replayed, without consuming it. Corrupt records end
    /// their segment (the rest of it is skipped and reported as an error once).
    pub fn peek(&mut self) -> Result<Option<SpoolRecord>, AnalyticsError> {
        loop {
            let Some(head) = self.segments.front() else {
                return Ok(None);
            };
            if self.read_pos >= head.len {
                // Everything in it was replayed: remove the file (appends start a new one).
                self.drop_head();
                continue;
            }
            match read_record(&head.path, self.read_pos) {
                Ok((rec, size)) => {
                    self.peeked = Some(size);
                    return Ok(Some(rec));
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool: skipping the rest of a corrupt segment");
                    self.drop_head();
                    return Err(e);
                }
            }
        }
    }

    /// Consumes the record returned by the last [`Spool::peek`]; deletes its segment when that
    /// was the segment's last record.
    pub fn advance(&mut self) {
        let Some(size) = self.peeked.take() else {
            return;
        };
        self.read_pos += size;
        if let Some(head) = self.segments.front() {
            if self.read_pos >= head.len {
                self.drop_head();
            }
        }
    }

    fn drop_head(&mut self) {
        if let Some(head) = self.segments.pop_front() {
            if let Err(e) = fs::remove_file(&head.path) {
                tracing::warn!(path = %head.path.display(), error = %e, "spool: cannot remove a replayed segment");
            }
            self.total = self.total.saturating_sub(head.len);
            if self.segments.is_empty() {
                self.write = None;
            }
        }
        self.read_pos = 0;
        self.peeked = None;
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Length of the valid prefix of a segment: walks the record headers and checks each checksum.
fn valid_prefix_len(path: &Path) -> Result<u64, AnalyticsError> {
    let mut f = File::open(path).map_err(|e| AnalyticsError::io(path, e))?;
    let len = f.metadata().map_err(|e| AnalyticsError::io(path, e))?.len();
    let mut pos = 0u64;
    let mut payload = Vec::new();
    while pos + HEADER <= len {
        let mut h = [0u8; 8];
        f.seek(SeekFrom::Start(pos))
            .map_err(|e| AnalyticsError::io(path, e))?;
        f.read_exact(&mut h)
            .map_err(|e| AnalyticsError::io(path, e))?;
        let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if n > MAX_RECORD || (n as usize) < META || pos + HEADER + u64::from(n) > len {
            break;
        }
        payload.resize(n as usize, 0);
        f.read_exact(&mut payload)
            .map_err(|e| AnalyticsError::io(path, e))?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        pos += HEADER + u64::from(n);
    }
    Ok(pos)
}

fn read_record(path: &Path, offset: u64) -> Result<(SpoolRecord, u64), AnalyticsError> {
    let corrupt = |what: &str| AnalyticsError::SpoolCorrupt {
        path: path.to_path_buf(),
        offset,
        what: what.to_string(),
    };
    let mut f = File::open(path).map_err(|e| AnalyticsError::io(path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| AnalyticsError::io(path, e))?;
    let mut h = [0u8; 8];
    f.read_exact(&mut h)
        .map_err(|_| corrupt("truncated record header"))?;
    let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if n > MAX_RECORD || (n as usize) < META {
        return Err(corrupt("record length out of range"));
    }
    let mut payload = vec![0u8; n as usize];
    f.read_exact(&mut payload)
        .map_err(|_| corrupt("truncated record"))?;
    if crc32fast::hash(&payload) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    if payload.first() != Some(&FORMAT) {
        return Err(corrupt("unknown record format"));
    }
    let u32_at = |i: usize| {
        payload
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let batch_id = payload
        .get(1..9)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    let (Some(batch_id), Some(rows), Some(min_ts), Some(max_ts)) =
        (batch_id, u32_at(9), u32_at(13), u32_at(17))
    else {
        return Err(corrupt("short record"));
    };
    let data = payload.split_off(META);
    Ok((
        SpoolRecord {
            batch_id,
            rows,
            min_ts,
            max_ts,
            data,
        },
        HEADER + u64::from(n),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            fsync: FsyncPolicy::Never,
        }
    }

    fn rec(id: u64, len: usize) -> SpoolRecord {
        SpoolRecord {
            batch_id: id,
            rows: 1,
            min_ts: 10,
            max_ts: 20,
            data: vec![id as u8; len],
        }
    }

    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Ok(Some(r)) = s.peek() {
            ids.push(r.batch_id);
            s.advance();
        }
        ids
    }

    #[test]
    fn replays_in_order_across_segments_and_reopen() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 100))?;
        for id in 1..=5 {
            assert!(s.append(&rec(id, 60))?);
        }
        assert!(s.segments() >= 3, "segments rotate at segment_bytes");
        drop(s);
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 100))?;
        assert_eq!(s.peek()?.map(|r| r.batch_id), Some(1));
        // Not advanced: peeking again returns the same record (replay until success).
        assert_eq!(s.peek()?.map(|r| r.data), Some(vec![1u8; 60]));
        assert_eq!(drain(&mut s), vec![1, 2, 3, 4, 5]);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        assert_eq!(fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(99), 0);
        // Appends after a full drain work.
        assert!(s.append(&rec(6, 10))?);
        assert_eq!(drain(&mut s), vec![6]);
        Ok(())
    }

    #[test]
    fn full_spool_refuses_appends() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let one = rec(1, 100).encoded_len();
        let mut s = Spool::open(&cfg(dir.path(), one * 2, 1 << 20))?;
        assert!(s.append(&rec(1, 100))?);
        assert!(s.append(&rec(2, 100))?);
        assert!(!s.append(&rec(3, 100))?);
        assert_eq!(drain(&mut s), vec![1, 2]);
        Ok(())
    }

    #[test]
    fn torn_tail_is_cut_on_open() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20))?;
        s.append(&rec(1, 50))?;
        s.append(&rec(2, 50))?;
        drop(s);
        let seg = dir.path().join(seg_name(1));
        let len = fs::metadata(&seg)
            .map_err(|e| AnalyticsError::io(&seg, e))?
            .len();
        let f = OpenOptions::new()
            .write(true)
            .open(&seg)
            .map_err(|e| AnalyticsError::io(&seg, e))?;
        f.set_len(len - 7)
            .map_err(|e| AnalyticsError::io(&seg, e))?;
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20))?;
        assert_eq!(drain(&mut s), vec![1]);
        Ok(())
    }

    #[test]
    fn flipped_byte_is_detected_by_checksum() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20))?;
        s.append(&rec(1, 50))?;
        s.append(&rec(2, 50))?;
        drop(s);
        let seg = dir.path().join(seg_name(1));
        let mut bytes = fs::read(&seg).map_err(|e| AnalyticsError::io(&seg, e))?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).map_err(|e| AnalyticsError::io(&seg, e))?;
        let mut s = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20))?;
        assert_eq!(drain(&mut s), vec![1]);
        Ok(())
    }
}
