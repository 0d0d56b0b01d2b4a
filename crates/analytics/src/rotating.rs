//! Size-rotated append-only files, used by the NDJSON event sink and the security log.
//!
//! The live file has a fixed name (`events.ndjson`, `security.log`); when it would grow past
//! `max_file_bytes` it is renamed to `<prefix><seq:010><suffix>` (`events-0000000007.ndjson`,
//! `security.log.0000000007`) and a new live file is started. Only the newest `max_files`
//! rotated files are kept.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::AnalyticsError;

/// A size-rotated file.
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    live: PathBuf,
    prefix: String,
    suffix: String,
    max_file_bytes: u64,
    max_files: usize,
    file: Option<File>,
    len: u64,
    next_seq: u64,
}

impl RotatingFile {
    /// Opens (creating) `dir/live_name`; rotated files are `dir/<prefix><seq><suffix>`.
    pub fn open(
        dir: &Path,
        live_name: &str,
        prefix: &str,
        suffix: &str,
        max_file_bytes: u64,
        max_files: usize,
    ) -> Result<Self, AnalyticsError> {
        fs::create_dir_all(dir).map_err(|e| AnalyticsError::io(dir, e))?;
        let mut me = Self {
            dir: dir.to_path_buf(),
            live: dir.join(live_name),
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            max_file_bytes: max_file_bytes.max(1),
            max_files,
            file: None,
            len: 0,
            next_seq: 1,
        };
        me.next_seq = me.rotated()?.last().map_or(1, |(s, _)| s + 1);
        me.open_live()?;
        Ok(me)
    }

    fn open_live(&mut self) -> Result<(), AnalyticsError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.live)
            .map_err(|e| AnalyticsError::io(&self.live, e))?;
        self.len = f
            .metadata()
            .map_err(|e| AnalyticsError::io(&self.live, e))?
            .len();
        self.file = Some(f);
        Ok(())
    }

    /// Rotated files, oldest first.
    pub fn rotated(&self) -> Result<Vec<(u64, PathBuf)>, AnalyticsError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| AnalyticsError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| AnalyticsError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(seq) = name
                .strip_prefix(self.prefix.as_str())
                .and_then(|s| s.strip_suffix(self.suffix.as_str()))
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            out.push((seq, entry.path()));
        }
        out.sort();
        Ok(out)
    }

    /// The live file.
    pub fn live_path(&self) -> &Path {
        &self.live
    }

    /// Appends `data` (whole lines). Lines are split across files so that no file exceeds the
    /// size cap, except a single line longer than the cap, which gets a file of its own.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), AnalyticsError> {
        while !data.is_empty() {
            let room = self.max_file_bytes.saturating_sub(self.len) as usize;
            let take = if data.len() <= room {
                data.len()
            } else {
                // The longest prefix of whole lines that fits; none fits → rotate first.
                match data
                    .get(..room)
                    .and_then(|d| d.iter().rposition(|&b| b == b'\n'))
                {
                    Some(nl) => nl + 1,
                    None if self.len > 0 => {
                        self.rotate()?;
                        continue;
                    }
                    // An empty file and a line longer than the cap: write that line alone.
                    None => data
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(data.len(), |nl| nl + 1),
                }
            };
            let (chunk, rest) = data.split_at(take);
            self.append(chunk)?;
            data = rest;
            if !data.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn append(&mut self, chunk: &[u8]) -> Result<(), AnalyticsError> {
        if self.file.is_none() {
            self.open_live()?;
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = f.write_all(chunk) {
            self.file = None;
            return Err(AnalyticsError::io(&self.live, e));
        }
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Flushes the live file to the OS.
    pub fn flush(&mut self) -> Result<(), AnalyticsError> {
        if let Some(f) = self.file.as_mut() {
            f.flush().map_err(|e| AnalyticsError::io(&self.live, e))?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AnalyticsError> {
        self.file = None;
        let target = self.dir.join(format!(
            "{}{:010}{}",
            self.prefix, self.next_seq, self.suffix
        ));
        fs::rename(&self.live, &target).map_err(|e| AnalyticsError::io(&self.live, e))?;
        self.next_seq += 1;
        let rotated = self.rotated()?;
        let excess = rotated.len().saturating_sub(self.max_files);
        for (_, path) in rotated.into_iter().take(excess) {
            fs::remove_file(&path).map_err(|e| AnalyticsError::io(&path, e))?;
        }
        self.open_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let mut f = RotatingFile::open(dir.path(), "events.ndjson", "events-", ".ndjson", 100, 3)?;
        for i in 0..20 {
            f.write(format!("{{\"n\":{i:040}}}\n").as_bytes())?;
        }
        f.flush()?;
        let rotated = f.rotated()?;
        assert_eq!(rotated.len(), 3);
        // Newest are kept: sequence numbers are the last three.
        let seqs: Vec<u64> = rotated.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        for (_, p) in &rotated {
            let len = fs::metadata(p).map_err(|e| AnalyticsError::io(p, e))?.len();
            assert!(len <= 100, "{} is {len} bytes", p.display());
        }
        // Reopening continues the sequence.
        drop(f);
        let mut f = RotatingFile::open(dir.path(), "events.ndjson", "events-", ".ndjson", 100, 3)?;
        for _ in 0..3 {
            f.write(&[b'x'; 60])?;
        }
        assert_eq!(f.rotated()?.last().map(|(s, _)| *s), Some(12));
        Ok(())
    }

    #[test]
    fn a_large_write_is_split_at_line_boundaries() -> Result<(), AnalyticsError> {
        let dir = tempfile::tempdir().map_err(|e| AnalyticsError::io("tmp", e))?;
        let mut f = RotatingFile::open(dir.path(), "x.log", "x.log.", "", 25, 100)?;
        let line = b"0123456789\n"; // 11 bytes: two lines per file
        let mut data = Vec::new();
        for _ in 0..7 {
            data.extend_from_slice(line);
        }
        data.extend_from_slice(&[b'L'; 40]);
        data.push(b'\n');
        f.write(&data)?;
        f.flush()?;
        let mut sizes: Vec<u64> = f
            .rotated()?
            .iter()
            .map(|(_, p)| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect();
        sizes.push(fs::metadata(f.live_path()).map(|m| m.len()).unwrap_or(0));
        assert_eq!(sizes, vec![22, 22, 22, 11, 41]);
        Ok(())
    }
}
