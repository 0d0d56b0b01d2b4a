//! [`ShortName`]: a short string stored inline, so that the per-request answer ([`crate::Admission`],
//! [`crate::Rejection`]) carries key ids and plan names without touching a reference count that
//! every core would share.

use std::fmt;
use std::ops::Deref;

/// A string of at most [`ShortName::MAX`] bytes, stored inline (`Copy`, no heap).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortName {
    len: u8,
    bytes: [u8; ShortName::MAX],
}

impl ShortName {
    /// The longest string a `ShortName` holds, in bytes (also the longest plan name).
    pub const MAX: usize = 32;

    /// `s` as a `ShortName`, or `None` when it is longer than [`Self::MAX`] bytes.
    pub fn new(s: &str) -> Option<Self> {
        let len = u8::try_from(s.len())
            .ok()
            .filter(|&l| usize::from(l) <= Self::MAX)?;
        let mut bytes = [0u8; Self::MAX];
        bytes.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        Some(Self { len, bytes })
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Built from a whole `&str`, so always valid UTF-8.
        self.bytes
            .get(..usize::from(self.len))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl Deref for ShortName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for ShortName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ShortName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_32_bytes_of_any_utf8() {
        assert_eq!(
            ShortName::new("key_abcdefghijkl").unwrap(),
            "key_abcdefghijkl"
        );
        assert_eq!(ShortName::new("").unwrap().as_str(), "");
        let max = "é".repeat(16);
        assert_eq!(ShortName::new(&max).unwrap().as_str(), max);
        assert!(ShortName::new(&"x".repeat(33)).is_none());
        assert_eq!(format!("{:?}", ShortName::new("gold").unwrap()), "\"gold\"");
    }
}
