//! The SQL tokenizer: bytes in, classified tokens out, one at a time, without allocating.
//!
//! It understands enough of the MySQL, PostgreSQL, MSSQL, Oracle and SQLite lexical rules to
//! split an injected fragment the way a database would: strings (with doubled-quote and backslash
//! escapes), numbers (decimal, float, hex, binary), barewords (dotted names like
//! `dbms_lock.sleep`), `@` and `@@` variables, multi-byte operators, `--`, `#` and `/* */`
//! comments (MySQL's executable `/*! ... */` comments are tokenized as code and flagged) and
//! punctuation. Words are classified with the tables in [`super::words`].

use super::words::{classify, Word};

/// The kind of a token. Its fingerprint character is given by [`Kind::symbol`].
///
/// `Bare`, the default, comes first: a default [`Token`] is all zero bytes, so the detector's
/// window of tokens is cleared by a `memset`, not a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// An identifier that is not a keyword (`n`).
    #[default]
    Bare,
    /// A quoted string (`s`).
    Str,
    /// A number: decimal, float, hex `0x..`, binary `0b..` (`1`).
    Num,
    /// `@name` or `@@name` (`v`).
    Var,
    /// A keyword that is not one of the more specific kinds below (`k`).
    Keyword,
    /// `union`, `intersect`, `except` (`U`).
    Union,
    /// A word that starts a statement: `select`, `insert`, `drop`, `exec`... (`E`).
    Stmt,
    /// `order by` or `group by` (`B`).
    GroupBy,
    /// A word followed by `(` (`f`).
    Func,
    /// An arithmetic, bitwise or unary operator, or `not` (`o`).
    Op,
    /// A comparison: `=`, `<>`, `like`, `is`, `in`, `between`... (`o` in the fingerprint).
    Cmp,
    /// `and`, `or`, `xor`, `&&`, `||` (`&`).
    Logic,
    /// A `--`, `#` or unterminated `/*` comment (`c`).
    Comment,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `;`.
    Semi,
    /// A MySQL executable comment opener `/*!` (`X`).
    Evil,
    /// Anything else: brackets, `?`, `\`, `:`... (`x`).
    Other,
}

impl Kind {
    /// The fingerprint character of this kind.
    pub fn symbol(self) -> u8 {
        match self {
            Kind::Str => b's',
            Kind::Num => b'1',
            Kind::Bare => b'n',
            Kind::Var => b'v',
            Kind::Keyword => b'k',
            Kind::Union => b'U',
            Kind::Stmt => b'E',
            Kind::GroupBy => b'B',
            Kind::Func => b'f',
            Kind::Op | Kind::Cmp => b'o',
            Kind::Logic => b'&',
            Kind::Comment => b'c',
            Kind::LParen => b'(',
            Kind::RParen => b')',
            Kind::Comma => b',',
            Kind::Semi => b';',
            Kind::Evil => b'X',
            Kind::Other => b'x',
        }
    }
}

/// How dangerous a function is, for [`Kind::Func`] tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FuncClass {
    /// Not a function, or a name we do not know.
    #[default]
    Generic,
    /// A well-known SQL function (`ascii`, `substring`, `concat`, `if`...).
    Sql,
    /// A function that only an attacker calls from a parameter: time delays, error-based
    /// extraction, file and network access (`sleep`, `benchmark`, `extractvalue`...).
    Danger,
}

/// String token flag: the closing quote was found.
pub const F_CLOSED: u8 = 1;
/// String token flag: the string contains whitespace.
pub const F_SPACE: u8 = 2;
/// Comment token flag: the comment is `#`.
pub const F_HASH: u8 = 4;
/// Variable token flag: `@@name`.
pub const F_SYSVAR: u8 = 8;

/// One token: its kind, its word (for keywords and functions) and where it is in the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Token {
    /// The token's kind.
    pub kind: Kind,
    /// The word, for words the rules need to recognise.
    pub word: Word,
    /// For functions: how dangerous.
    pub class: FuncClass,
    /// `F_*` flags.
    pub flags: u8,
    /// Byte offset in the input.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Token {
    /// The token's bytes in `input` (empty if out of range, which cannot happen for tokens
    /// produced from that input).
    pub fn text<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        let start = self.start as usize;
        let end = start.saturating_add(self.len as usize);
        input.get(start..end).unwrap_or(&[])
    }

    /// True for tokens that are a value in an expression.
    pub fn is_value(&self) -> bool {
        matches!(self.kind, Kind::Num | Kind::Str | Kind::Bare | Kind::Var)
            || (self.kind == Kind::Keyword
                && matches!(self.word, Word::Null | Word::True | Word::False))
    }

    /// Checks a flag.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Longest word we classify (longer words are barewords).
const MAX_WORD: usize = 40;

/// A streaming tokenizer over one input in one quote context.
pub struct Tokenizer<'a> {
    input: &'a [u8],
    pos: usize,
    /// `Some(q)`: the input starts inside a string quoted with `q`.
    start_quote: Option<u8>,
    /// Depth of MySQL `/*! ... */` executable comments we are inside.
    in_exec_comment: bool,
    /// The first byte that is not white space from `spaced.0` on is `spaced.1`: a word looks
    /// past the spaces after it for `(`, and the next token starts there.
    spaced: (usize, usize),
}

/// Byte roles, as bits of one table: white space, the start of a word, a byte of a word.
const SPACE: u8 = 1;
const WORD_START: u8 = 2;
const WORD: u8 = 4;

static ROLE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut r = 0;
        if c <= b' ' || c == 0x7f || c == 0xa0 {
            r |= SPACE;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            r |= WORD_START;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c >= 0x80 {
            r |= WORD;
        }
        t[b] = r;
        b += 1;
    }
    t
};

/// White space to the database: ASCII controls and space, DEL and the Latin-1 no-break space.
pub(super) fn is_space(b: u8) -> bool {
    ROLE[usize::from(b)] & SPACE != 0
}

/// A byte that starts a word: ASCII letters, `_`, `$` and bytes >= 0x80.
pub(super) fn is_word_start(b: u8) -> bool {
    ROLE[usize::from(b)] & WORD_START != 0
}

/// A byte of a word: the word starts, digits and `.` (dotted names).
pub(super) fn is_word_byte(b: u8) -> bool {
    ROLE[usize::from(b)] & WORD != 0
}

/// The eight bytes of `w` (little endian) with ASCII upper case letters lowered, the others
/// as they are.
#[inline]
fn lower_word(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Per byte, without carries between bytes: the high bit of `ge_a` is set when the low
    // seven bits are >= `A`, that of `gt_z` when they are > `Z`.
    let low = w & !HI;
    let ge_a = low + LO * u64::from(0x80 - b'A');
    let gt_z = low + LO * u64::from(0x80 - b'Z' - 1);
    let upper = ge_a & !gt_z & !w & HI;
    w | (upper >> 2)
}

impl<'a> Tokenizer<'a> {
    /// A tokenizer for `input`; with `start_quote`, the input is read as the rest of a string
    /// opened with that quote by the application.
    pub fn new(input: &'a [u8], start_quote: Option<u8>) -> Self {
        Tokenizer {
            input,
            pos: 0,
            start_quote,
            in_exec_comment: false,
            spaced: (usize::MAX, 0),
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.input.get(i).copied().unwrap_or(0)
    }

    fn tok(&self, kind: Kind, start: usize, end: usize) -> Token {
        Token {
            kind,
            word: Word::None,
            class: FuncClass::Generic,
            flags: 0,
            start: start as u32,
            len: end.saturating_sub(start) as u32,
        }
    }

    /// Index of the next byte that is not whitespace, from `i`.
    fn skip_space(&self, i: usize) -> usize {
        let rest = self.input.get(i..).unwrap_or(&[]);
        i + rest
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(rest.len())
    }

    /// Scans a string body starting at `i` (after the opening quote) for `q`.
    fn string(&mut self, i: usize, q: u8, open: usize) -> Token {
        let len = self.input.len();
        let mut j = i;
        while let Some(off) = self
            .input
            .get(j..)
            .and_then(|rest| memchr::memchr2(q, b'\\', rest))
        {
            let k = j + off;
            if self.at(k) == b'\\' {
                j = k + 2;
                continue;
            }
            if self.at(k + 1) == q {
                j = k + 2;
                continue;
            }
            let mut t = self.tok(Kind::Str, open, k + 1);
            t.flags = F_CLOSED | self.space_flag(i, k);
            self.pos = k + 1;
            return t;
        }
        let mut t = self.tok(Kind::Str, open, len);
        t.flags = self.space_flag(i, len);
        self.pos = len;
        t
    }

    /// `F_SPACE` if `input[from..to]` has whitespace (only short strings are checked: the flag
    /// only matters for short break-out strings).
    fn space_flag(&self, from: usize, to: usize) -> u8 {
        if to.saturating_sub(from) > 64 {
            return F_SPACE;
        }
        let body = self.input.get(from..to).unwrap_or(&[]);
        if body.iter().any(|&b| is_space(b)) {
            F_SPACE
        } else {
            0
        }
    }

    /// Returns the next token, or `None` at the end of the input.
    #[inline(always)]
    pub fn next_token(&mut self) -> Option<Token> {
        if let Some(q) = self.start_quote.take() {
            return Some(self.string(0, q, 0));
        }
        loop {
            let len = self.input.len();
            let i = if self.pos == self.spaced.0 {
                self.spaced.1
            } else {
                self.skip_space(self.pos)
            };
            if i >= len {
                self.pos = len;
                return None;
            }
            let b = self.at(i);
            if is_word_start(b) {
                // Most tokens: no comment starts with a word byte.
                return Some(self.word(i));
            }
            let c = self.at(i + 1);
            // Comments first.
            if b == b'/' && c == b'*' {
                if self.at(i + 2) == b'!' {
                    // MySQL executable comment: its body is code.
                    let mut j = i + 3;
                    while j < len && self.at(j).is_ascii_digit() {
                        j += 1;
                    }
                    self.pos = j;
                    self.in_exec_comment = true;
                    return Some(self.tok(Kind::Evil, i, j));
                }
                let mut j = i + 2;
                while j < len && !(self.at(j) == b'*' && self.at(j + 1) == b'/') {
                    j += 1;
                }
                if j >= len {
                    self.pos = len;
                    return Some(self.tok(Kind::Comment, i, len));
                }
                // A closed block comment is whitespace to the database.
                self.pos = j + 2;
                continue;
            }
            if b == b'*' && c == b'/' && self.in_exec_comment {
                self.in_exec_comment = false;
                self.pos = i + 2;
                continue;
            }
            if (b == b'-' && c == b'-') || b == b'#' {
                let rest = self.input.get(i..).unwrap_or(&[]);
                let j = i + memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                self.pos = j;
                let mut t = self.tok(Kind::Comment, i, j);
                if b == b'#' {
                    t.flags |= F_HASH;
                }
                return Some(t);
            }
            return Some(self.token_at(i));
        }
    }

    #[inline(always)]
    fn token_at(&mut self, i: usize) -> Token {
        let b = self.at(i);
        let c = self.at(i + 1);
        let one = |s: &mut Self, kind: Kind, n: usize| {
            s.pos = i + n;
            s.tok(kind, i, i + n)
        };
        match b {
            b'\'' | b'"' => self.string(i + 1, b, i),
            b'`' => {
                // A quoted identifier.
                let mut j = i + 1;
                while j < self.input.len() && self.at(j) != b'`' {
                    j += 1;
                }
                let end = (j + 1).min(self.input.len());
                self.pos = end;
                self.tok(Kind::Bare, i, end)
            }
            b'0'..=b'9' => self.number(i),
            b'.' if c.is_ascii_digit() => self.number(i),
            b'@' => {
                let mut j = i + 1;
                let mut flags = 0;
                if self.at(j) == b'@' {
                    j += 1;
                    flags |= F_SYSVAR;
                }
                while j < self.input.len() && is_word_byte(self.at(j)) {
                    j += 1;
                }
                self.pos = j;
                let mut t = self.tok(Kind::Var, i, j);
                t.flags = flags;
                t
            }
            b'(' => one(self, Kind::LParen, 1),
            b')' => one(self, Kind::RParen, 1),
            b',' => one(self, Kind::Comma, 1),
            b';' => one(self, Kind::Semi, 1),
            b'=' => one(self, Kind::Cmp, if c == b'=' { 2 } else { 1 }),
            b'<' => match c {
                b'=' if self.at(i + 2) == b'>' => one(self, Kind::Cmp, 3),
                b'=' | b'>' => one(self, Kind::Cmp, 2),
                b'<' => one(self, Kind::Op, 2),
                _ => one(self, Kind::Cmp, 1),
            },
            b'>' => match c {
                b'=' => one(self, Kind::Cmp, 2),
                b'>' => one(self, Kind::Op, 2),
                _ => one(self, Kind::Cmp, 1),
            },
            b'!' => match c {
                b'=' | b'<' | b'>' => one(self, Kind::Cmp, 2),
                _ => {
                    let mut t = one(self, Kind::Op, 1);
                    t.word = Word::Not;
                    t
                }
            },
            b'|' if c == b'|' => one(self, Kind::Logic, 2),
            b'&' if c == b'&' => one(self, Kind::Logic, 2),
            b':' if c == b'=' => one(self, Kind::Op, 2),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' => one(self, Kind::Op, 1),
            _ if is_word_start(b) => self.word(i),
            _ => one(self, Kind::Other, 1),
        }
    }

    fn number(&mut self, i: usize) -> Token {
        let len = self.input.len();
        let mut j = i;
        if self.at(i) == b'0' && matches!(self.at(i + 1), b'x' | b'X' | b'b' | b'B') {
            let hex = matches!(self.at(i + 1), b'x' | b'X');
            j = i + 2;
            while j < len
                && (if hex {
                    self.at(j).is_ascii_hexdigit()
                } else {
                    matches!(self.at(j), b'0' | b'1')
                })
            {
                j += 1;
            }
        } else {
            while j < len && self.at(j).is_ascii_digit() {
                j += 1;
            }
            if self.at(j) == b'.' {
                j += 1;
                while j < len && self.at(j).is_ascii_digit() {
                    j += 1;
                }
            }
            if matches!(self.at(j), b'e' | b'E')
                && (self.at(j + 1).is_ascii_digit()
                    || (matches!(self.at(j + 1), b'+' | b'-') && self.at(j + 2).is_ascii_digit()))
            {
                j += 2;
                while j < len && self.at(j).is_ascii_digit() {
                    j += 1;
                }
            }
        }
        if j < len && is_word_byte(self.at(j)) && self.at(j) != b'.' {
            // Letters glued to digits: `3rd`, `70s`, `1d0aa0` are words, but `1union` and
            // `1and` are a number followed by a keyword to MySQL.
            let mut k = j;
            while k < len && is_word_byte(self.at(k)) {
                k += 1;
            }
            let tail = self.input.get(j..k).unwrap_or(&[]);
            let (kind, _, _) = classify(tail, false);
            if !matches!(kind, Kind::Union | Kind::Logic | Kind::Stmt) {
                return self.word(i);
            }
        }
        self.pos = j;
        self.tok(Kind::Num, i, j)
    }

    #[inline(always)]
    fn word(&mut self, i: usize) -> Token {
        let len = self.input.len();
        let rest = self.input.get(i..).unwrap_or(&[]);
        let mut n = rest
            .iter()
            .position(|&b| !is_word_byte(b))
            .unwrap_or(rest.len());
        // A trailing dot is punctuation, not part of the name ("so." in prose).
        while n > 1 && rest.get(n - 1) == Some(&b'.') {
            n -= 1;
        }
        let j = i + n;
        self.pos = j;
        if n > MAX_WORD {
            return self.tok(Kind::Bare, i, j);
        }
        // The lowercase copy: most words fit in eight bytes, read and lowercased at once.
        let mut buf = [0u8; MAX_WORD];
        let short;
        let lower: &[u8] = match rest.first_chunk::<8>() {
            Some(chunk) if n <= 8 => {
                short = lower_word(u64::from_le_bytes(*chunk)).to_le_bytes();
                short.get(..n).unwrap_or(&[])
            }
            _ => match (buf.get_mut(..n), rest.get(..n)) {
                (Some(lower), Some(w)) => {
                    lower.copy_from_slice(w);
                    lower.make_ascii_lowercase();
                    lower
                }
                _ => &[],
            },
        };
        let after = self.skip_space(j);
        self.spaced = (j, after);
        let paren = self.at(after) == b'(';
        let (kind, word, class) = classify(lower, paren);
        let mut t = self.tok(kind, i, j);
        t.word = word;
        t.class = class;
        if matches!(word, Word::Order | Word::Group) {
            // `order by` / `group by` are one token.
            let k = after;
            let mut e = k;
            while e < len && is_word_byte(self.at(e)) {
                e += 1;
            }
            if self
                .input
                .get(k..e)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"by"))
            {
                self.pos = e;
                t.kind = Kind::GroupBy;
                t.len = (e - i) as u32;
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str, q: Option<u8>) -> String {
        let mut t = Tokenizer::new(input.as_bytes(), q);
        let mut out = String::new();
        while let Some(tok) = t.next_token() {
            out.push(tok.kind.symbol() as char);
        }
        out
    }

    #[test]
    fn lower_word_lowers_ascii_letters_only() {
        // Every byte value in every position, with neighbours that could carry into it.
        for b in 0..=255u8 {
            for fill in [0u8, b'Z', b'@', 0xff, b'a'] {
                for pos in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[pos] = b;
                    let got = lower_word(u64::from_le_bytes(bytes)).to_le_bytes();
                    let mut want = bytes;
                    want.make_ascii_lowercase();
                    assert_eq!(got, want, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn tautology_after_closing_a_single_quote() {
        assert_eq!(kinds("1' or '1'='1", Some(b'\'')), "s&sos");
    }

    #[test]
    fn no_quote_numbers_and_operators() {
        assert_eq!(kinds("1 and 1=1--", None), "1&1o1c");
        assert_eq!(kinds("-1 union all select 1,2#", None), "o1UkE1,1c");
    }

    #[test]
    fn functions_need_a_parenthesis() {
        assert_eq!(kinds("sleep(5)", None), "f(1)");
        assert_eq!(kinds("sleep well", None), "nn");
        assert_eq!(kinds("benchmark (10,md5(1))", None), "f(1,f(1))");
    }

    #[test]
    fn order_by_is_one_token() {
        assert_eq!(kinds("1 order by 3--", None), "1B1c");
        assert_eq!(kinds("by order of the king", None), "kknnn");
    }

    #[test]
    fn block_comments_are_whitespace_and_executable_comments_are_code() {
        assert_eq!(kinds("union/**/select", None), "UE");
        assert_eq!(kinds("/*!50000union*/ select", None), "XUE");
        assert_eq!(kinds("1 /* unterminated", None), "1c");
    }

    #[test]
    fn glued_keywords_split_but_glued_words_do_not() {
        assert_eq!(kinds("1union select", None), "1UE");
        assert_eq!(kinds("70s 3rd", None), "nn");
        assert_eq!(kinds("0x414243 0b101 1.5e3", None), "111");
    }

    #[test]
    fn strings_with_escapes_and_unterminated() {
        assert_eq!(kinds("'it''s' 'a\\'b' 'open", None), "sss");
        let mut t = Tokenizer::new(b"'open", None);
        let tok = t.next_token().unwrap();
        assert!(!tok.has(F_CLOSED));
    }

    #[test]
    fn variables_and_dotted_names() {
        assert_eq!(kinds("@@version @x dbms_lock.sleep(5)", None), "vvf(1)");
    }

    #[test]
    fn quote_context_reads_the_rest_of_a_string() {
        assert_eq!(kinds("abc\" or 1=1", Some(b'"')), "s&1o1");
        assert_eq!(kinds("no quote here", Some(b'"')), "s");
    }
}
