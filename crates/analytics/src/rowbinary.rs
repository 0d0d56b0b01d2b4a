//! Minimal RowBinary encoding (ClickHouse's binary row format) for the types the events table
//! uses: fixed-width little-endian integers, strings and arrays prefixed by an unsigned LEB128
//! length. The `clickhouse` crate sends the bytes (`INSERT … FORMAT RowBinary`); encoding them
//! here lets the writer spool exactly the bytes it would have sent.

/// Appends a `UInt16`.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `UInt32` (or a `DateTime`).
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `UInt64`.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends an unsigned LEB128 length.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a `String`. Half the columns of an event are usually empty (no key, no list, no
/// finding) and most others are shorter than 128 bytes: those take one byte of length and no
/// copy call for the empty ones.
#[inline]
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    match b.len() {
        0 => out.push(0),
        n @ 1..=127 => {
            out.reserve(n + 1);
            out.push(n as u8);
            out.extend_from_slice(b);
        }
        n => {
            put_varint(out, n as u64);
            out.extend_from_slice(b);
        }
    }
}

/// A RowBinary value could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("rowbinary: input ends at byte {0} inside a value")]
    Truncated(usize),
    /// A length prefix is larger than any valid input.
    #[error("rowbinary: length prefix at byte {0} is too large")]
    BadLength(usize),
    /// A string is not UTF-8.
    #[error("rowbinary: string at byte {0} is not utf-8")]
    NotUtf8(usize),
}

/// Reads RowBinary values from a byte slice; never panics on bad input.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::BadLength(self.pos))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(self.buf.len()))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads a `UInt8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a `UInt16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Reads a `UInt32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a `UInt64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a LEB128 length, bounded by the bytes left.
    pub fn len(&mut self) -> Result<usize, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let left = (self.buf.len() - self.pos) as u64;
                if v > left {
                    return Err(DecodeError::BadLength(start));
                }
                return Ok(v as usize);
            }
        }
        Err(DecodeError::BadLength(start))
    }

    /// Reads a `String`.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_boundaries() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            out.resize(out.len() + v.min(100_000) as usize, 0);
            let mut r = Reader::new(&out);
            if v <= 100_000 {
                assert_eq!(r.len(), Ok(v as usize));
            } else {
                assert!(r.len().is_err());
            }
        }
    }

    #[test]
    fn strings_round_trip_across_the_one_byte_length() {
        let words: Vec<String> = [0usize, 1, 126, 127, 128, 129, 300, 20_000]
            .iter()
            .map(|&n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let mut out = Vec::new();
        for w in &words {
            put_str(&mut out, w);
        }
        let mut r = Reader::new(&out);
        for w in &words {
            assert_eq!(r.string().as_deref(), Ok(w.as_str()));
        }
        assert!(r.is_empty());
    }

    #[test]
    fn huge_length_prefix_is_rejected() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(Reader::new(&out).string(), Err(DecodeError::BadLength(0)));
    }
}
