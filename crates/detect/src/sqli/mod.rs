//! SQL injection detection by tokenizing the value as SQL.
//!
//! # How it works
//!
//! An injected value has to do two things: get out of the literal the application put it in
//! (close a quote, or end a number), then say something in SQL. So the value is tokenized three
//! times ([`Context::NoQuote`], [`Context::SingleQuote`], [`Context::DoubleQuote`]); in a quote
//! context the tokenizer starts inside a string, so `x' or 'a'='a` becomes
//! `string logic string cmp string`. The rules then look for:
//!
//! * a **break-out** at the start (a closed string, a number, closing parentheses) followed by a
//!   condition (`or 1=1`, `and 'a'='a`, `and x=y--`), an `order by N`, or a comment that cuts
//!   the rest of the query (`admin'--`);
//! * anywhere: `union [all] select`, a stacked statement after `;` that parses as SQL
//!   (`; drop table`, `; exec xp_...`, `; waitfor delay`), a *strong* condition after
//!   `and`/`or`/`where`/`having` (numbers or strings compared, a subquery, a SQL function),
//!   time and error based functions called with arguments (`sleep(5)`, `benchmark(`,
//!   `extractvalue(`, `pg_sleep(`, `dbms_pipe.receive_message(`), `waitfor delay '..'`,
//!   `(select ...)` subqueries in expressions, `case when` in expressions, `char(..)||char(..)`
//!   string building, MySQL `/*! */` executable comments, `@@version`-style system variables,
//!   system catalogs after `from`, `into outfile`.
//!
//! # Fingerprint alphabet
//!
//! `s` string, `1` number, `n` bareword, `v` variable, `k` keyword, `U` union, `E` statement
//! start, `B` order/group by, `f` function, `o` operator, `&` logic, `c` comment, `(`, `)`, `,`,
//! `;`, `X` executable comment, `x` other. The fingerprint is the first eight tokens of the
//! context that matched.
//!
//! # Limits
//!
//! Rules look at most [`LOOKAHEAD`] tokens ahead of an anchor. Block comments between tokens are
//! read as whitespace (so `union/**/select` is seen), but comments inside words
//! (`uni/**/on`) are left to the WAF's comment-removal transform.

mod gate;
mod token;
mod words;

pub use gate::possible;

pub use token::{FuncClass, Kind, Token, Tokenizer};
pub use words::Word;

use crate::{Context, Detection};
use token::{F_CLOSED, F_HASH, F_SPACE, F_SYSVAR};

/// Tokens kept in the working window.
const WINDOW: usize = 64;
/// How far a rule may look ahead of its anchor token.
pub const LOOKAHEAD: usize = 24;
/// How far back a rule may look behind its anchor token.
const LOOKBEHIND: usize = 4;

/// Detects SQL injection in one decoded value. `None` means nothing was found.
///
/// Runs in time linear in `input.len()`, allocates nothing and never panics.
pub fn detect(input: &[u8]) -> Option<Detection> {
    if input.is_empty() || !possible(input) {
        return None;
    }
    detect_gated(input, input.contains(&b'\''), input.contains(&b'"'))
}

/// [`detect`] for a caller that already knows whether `input` holds a `'` (`single`) and a
/// `"` (`double`), from a byte-class mask computed anyway: the two searches are skipped. The
/// same result as [`detect`] when both are right.
pub fn detect_quoted(input: &[u8], single: bool, double: bool) -> Option<Detection> {
    if input.is_empty() || !possible(input) {
        return None;
    }
    detect_gated(input, single, double)
}

/// The three contexts, on a value that passed the gate.
fn detect_gated(input: &[u8], single: bool, double: bool) -> Option<Detection> {
    if let Some(d) = detect_in(input, Context::NoQuote) {
        return Some(d);
    }
    if single {
        if let Some(d) = detect_in(input, Context::SingleQuote) {
            return Some(d);
        }
    }
    if double {
        if let Some(d) = detect_in(input, Context::DoubleQuote) {
            return Some(d);
        }
    }
    None
}

/// Runs the rules on `input` in one quote context.
pub fn detect_in(input: &[u8], context: Context) -> Option<Detection> {
    let quote = match context {
        Context::SingleQuote => Some(b'\''),
        Context::DoubleQuote => Some(b'"'),
        _ => None,
    };
    let mut tz = Tokenizer::new(input, quote);
    let mut buf = [Token::default(); WINDOW];
    let mut n = 0usize;
    let mut eval_from = 0usize;
    let mut first = true;
    let mut fp = [0u8; 8];
    let mut fp_len = 0usize;
    let mut prefix = Prefix::default();
    loop {
        let mut eof = false;
        while n < WINDOW {
            match tz.next_token() {
                Some(t) => {
                    if let Some(slot) = buf.get_mut(n) {
                        *slot = t;
                    }
                    n += 1;
                }
                None => {
                    eof = true;
                    break;
                }
            }
        }
        let toks = buf.get(..n).unwrap_or(&[]);
        if first {
            first = false;
            for (slot, t) in fp.iter_mut().zip(toks.iter()) {
                *slot = t.kind.symbol();
                fp_len += 1;
            }
            if quote.is_some() && !toks.first().is_some_and(|t| t.has(F_CLOSED)) {
                // The value never closes the quote: it stays a harmless string.
                return None;
            }
            prefix = Prefix::of(toks, quote.is_some());
        }
        let limit = if eof { n } else { n.saturating_sub(LOOKAHEAD) };
        let rules = Rules {
            input,
            toks,
            eof,
            prefix,
            quoted: quote.is_some(),
        };
        for i in eval_from..limit {
            if rules.check(i) {
                let fp_used = fp.get(..fp_len).unwrap_or(&[]);
                return Some(Detection::new(fp_used, context));
            }
        }
        if eof {
            return None;
        }
        // Slide the window, keeping some tokens behind the next anchor to evaluate.
        let keep_from = limit.saturating_sub(LOOKBEHIND);
        buf.copy_within(keep_from..n, 0);
        n -= keep_from;
        eval_from = limit - keep_from;
        // Prefix positions only mean something in the first window.
        prefix.p = usize::MAX;
        prefix.p2 = usize::MAX;
    }
}

/// What the value starts with, before its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum BreakOut {
    /// The payload starts the value (` or 1=1`, ` union select`).
    #[default]
    Start,
    /// A closed string (quote contexts), then maybe `)`s.
    Quote,
    /// A number or variable, then maybe `)`s.
    Number,
    /// A word: weak evidence, only strong payloads count.
    Word,
}

/// The break-out prefix of a token stream: where its payload starts.
#[derive(Clone, Copy, Debug, Default)]
struct Prefix {
    kind: BreakOut,
    /// Index of the first payload token.
    p: usize,
    /// Index of the payload after `as alias` (`1') as x where 1=1`).
    p2: usize,
    /// Closing parentheses in the break-out.
    parens: usize,
    /// Index of the leading string, for quote contexts.
    string: Option<usize>,
}

impl Prefix {
    fn of(toks: &[Token], quoted: bool) -> Prefix {
        let kind_at = |i: usize| toks.get(i).map(|t| t.kind);
        let mut j = 0;
        let mut kind = BreakOut::Start;
        let mut string = None;
        if quoted {
            kind = BreakOut::Quote;
            string = Some(0);
            j = 1;
        } else {
            if kind_at(j) == Some(Kind::Op)
                && toks.get(j).is_some_and(|t| t.len == 1)
                && kind_at(j + 1) == Some(Kind::Num)
            {
                j += 1;
            }
            match kind_at(j) {
                Some(Kind::Num) | Some(Kind::Var) => {
                    kind = BreakOut::Number;
                    j += 1;
                }
                Some(Kind::Str) if toks.get(j).is_some_and(|t| t.has(F_CLOSED)) => {
                    kind = BreakOut::Quote;
                    string = Some(j);
                    j += 1;
                }
                Some(Kind::Bare) => {
                    kind = BreakOut::Word;
                    j += 1;
                }
                _ => {}
            }
        }
        let mut parens = 0;
        while kind_at(j) == Some(Kind::RParen) {
            j += 1;
            parens += 1;
        }
        let mut p2 = usize::MAX;
        if toks.get(j).is_some_and(|t| t.word == Word::As) && kind_at(j + 1) == Some(Kind::Bare) {
            p2 = j + 2;
        }
        Prefix {
            kind,
            p: j,
            p2,
            parens,
            string,
        }
    }
}

/// How convincing a condition after `and`/`or`/`where` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    None,
    /// A lone value (`or 1`, `or true`): only right after a quote break-out and before a comment.
    Weak,
    /// A comparison with a column (`and id=1`, `or x=y`): after a break-out or before a comment.
    Medium,
    /// Constants compared (`1=1`, `'a'='a'`), a subquery or a SQL function: anywhere.
    Strong,
}

struct Rules<'a> {
    input: &'a [u8],
    toks: &'a [Token],
    eof: bool,
    prefix: Prefix,
    quoted: bool,
}

impl Rules<'_> {
    fn t(&self, i: usize) -> Option<&Token> {
        self.toks.get(i)
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.t(i).map(|t| t.kind)
    }

    fn word(&self, i: usize) -> Word {
        self.t(i).map(|t| t.word).unwrap_or_default()
    }

    /// True when `i` is past the last token of the input.
    fn at_end(&self, i: usize) -> bool {
        self.eof && i >= self.toks.len()
    }

    /// True when the query would end (or be cut) at token `i`.
    fn terminator(&self, i: usize) -> bool {
        self.at_end(i) || matches!(self.kind(i), Some(Kind::Comment) | Some(Kind::Semi))
    }

    /// Same string contents, quotes aside (`'a'='a`, `""="`).
    fn same_string(&self, a: usize, b: usize) -> bool {
        let inner = |i: usize| -> &[u8] {
            let Some(t) = self.t(i) else { return &[] };
            let text = t.text(self.input);
            let text = match text.first() {
                Some(b'\'' | b'"') => text.get(1..).unwrap_or(&[]),
                _ => text,
            };
            match text.last() {
                Some(b'\'' | b'"') if t.has(F_CLOSED) => {
                    text.get(..text.len().saturating_sub(1)).unwrap_or(&[])
                }
                _ => text,
            }
        };
        inner(a).eq_ignore_ascii_case(inner(b))
    }

    /// Is `i` the payload position of the break-out?
    fn at_payload(&self, i: usize) -> bool {
        (i == self.prefix.p || i == self.prefix.p2) && self.prefix.kind != BreakOut::Word
    }

    fn check(&self, i: usize) -> bool {
        let Some(t) = self.t(i) else { return false };
        match t.kind {
            Kind::Union => self.union(i),
            Kind::Semi => self.stacked(i),
            Kind::Logic => self.logic(i),
            Kind::Keyword => match t.word {
                Word::Where | Word::Having => self.logic(i),
                Word::Case => self.case_when(i),
                Word::From => self.catalog(i),
                Word::Into => self.word(i + 1) == Word::Outfile,
                _ => false,
            },
            Kind::Stmt if t.word == Word::Waitfor => {
                self.word(i + 1) == Word::Delay && self.kind(i + 2) == Some(Kind::Str)
            }
            Kind::Stmt if t.word == Word::Select => {
                self.subquery(i) || self.statement_at_payload(i) || self.select_function(i)
            }
            Kind::Stmt if t.word == Word::Declare => {
                // `declare @q nvarchar(200)`
                self.kind(i + 1) == Some(Kind::Var)
                    && matches!(
                        self.kind(i + 2),
                        Some(Kind::Bare) | Some(Kind::Func) | Some(Kind::Keyword)
                    )
            }
            Kind::Stmt if t.word == Word::Exec => {
                // `exec(@s)`, `exec master..xp_cmdshell`
                (self.kind(i + 1) == Some(Kind::LParen) && self.kind(i + 2) == Some(Kind::Var))
                    || self.statement_at_payload(i)
            }
            Kind::Stmt => self.statement_at_payload(i),
            Kind::LParen => {
                // `(1=1)*1` at the very start.
                self.at_payload(i)
                    && self.prefix.kind == BreakOut::Start
                    && self.condition(i + 1).0 == Strength::Strong
            }
            Kind::GroupBy => self.order_by(i),
            Kind::Func => self.function(i),
            Kind::Comment => self.truncation(i),
            Kind::Evil => true,
            Kind::Var => t.has(F_SYSVAR) && known_sysvar(t.text(self.input)),
            Kind::Bare if t.len >= 9 && t.text(self.input).contains(&b'_') => {
                let text = t.text(self.input);
                contains_ci(text, b"xp_cmdshell")
                    || starts_with_ci(text, b"utl_http.")
                    || starts_with_ci(text, b"utl_inaddr.")
                    || starts_with_ci(text, b"dbms_pipe.")
                    || starts_with_ci(text, b"dbms_lock.")
            }
            Kind::Op | Kind::Comma => self.operator_payload(i),
            Kind::Cmp => self.compare_and_cut(i),
            _ => false,
        }
    }

    /// `union [all|distinct] [(] select`
    fn union(&self, i: usize) -> bool {
        let mut j = i + 1;
        if self.word(j) == Word::All {
            j += 1;
        }
        while self.kind(j) == Some(Kind::LParen) {
            j += 1;
        }
        self.word(j) == Word::Select
    }

    /// `; <statement>`, where the statement must parse as SQL.
    fn stacked(&self, i: usize) -> bool {
        let j = i + 1;
        if self.at_payload(i)
            && self.prefix.kind == BreakOut::Quote
            && self.kind(j) == Some(Kind::Comment)
        {
            // `x';--`
            return self.plausible_quote_prefix();
        }
        self.statement_ok(j)
    }

    /// Does a statement that parses as SQL start at `j`?
    fn statement_ok(&self, j: usize) -> bool {
        let Some(t) = self.t(j) else { return false };
        match (t.kind, t.word) {
            (Kind::Stmt, Word::Select) => self.select_is_sql(j),
            (Kind::Stmt, Word::Insert) => self.word(j + 1) == Word::Into,
            (Kind::Stmt, Word::Update) => {
                self.kind(j + 1) == Some(Kind::Bare) && self.word(j + 2) == Word::Set
            }
            (Kind::Stmt, Word::Delete) => {
                self.word(j + 1) == Word::From
                    || (self.kind(j + 1) == Some(Kind::Bare) && self.word(j + 2) == Word::From)
            }
            (Kind::Stmt, Word::Ddl) => self.word(j + 1) == Word::Object,
            (Kind::Stmt, Word::Exec) => match self.t(j + 1) {
                Some(n) if n.kind == Kind::Bare || n.kind == Kind::Func => {
                    let text = n.text(self.input);
                    starts_with_ci(text, b"xp_")
                        || starts_with_ci(text, b"sp_")
                        || starts_with_ci(text, b"master.")
                        || n.class == FuncClass::Danger
                }
                Some(n) => matches!(n.kind, Kind::LParen | Kind::Var),
                None => false,
            },
            (Kind::Stmt, Word::Declare) => self.kind(j + 1) == Some(Kind::Var),
            (Kind::Stmt, Word::Waitfor) => self.word(j + 1) == Word::Delay,
            (Kind::Stmt, Word::Shutdown) => {
                self.terminator(j + 1) || self.word(j + 1) == Word::With
            }
            (Kind::Stmt, Word::Begin) | (Kind::Stmt, Word::Call) => {
                self.kind(j + 1) == Some(Kind::Func)
                    || self.kind(j + 1) == Some(Kind::Stmt)
                    || self.kind(j + 1) == Some(Kind::Semi)
            }
            (Kind::Keyword, Word::Set) => {
                self.kind(j + 1) == Some(Kind::Var) && self.kind(j + 2) == Some(Kind::Cmp)
            }
            (Kind::Func, _) => t.class == FuncClass::Danger || t.word == Word::If,
            _ => false,
        }
    }

    /// Does the `select` at `j` start a real query (and not "select a plan")?
    fn select_is_sql(&self, j: usize) -> bool {
        let Some(n) = self.t(j + 1) else {
            return false;
        };
        match n.kind {
            Kind::Num | Kind::Var | Kind::Func => true,
            Kind::Str => n.has(F_CLOSED),
            Kind::LParen => self.kind(j + 2).is_some_and(|k| k != Kind::RParen),
            Kind::Op => n.text(self.input) == b"*",
            Kind::Keyword => matches!(
                n.word,
                Word::Case | Word::Null | Word::All | Word::Top | Word::True | Word::False
            ),
            Kind::Bare => {
                let after = j + 2;
                self.at_end(after)
                    || matches!(
                        self.kind(after),
                        Some(Kind::Comma)
                            | Some(Kind::Comment)
                            | Some(Kind::Op)
                            | Some(Kind::Cmp)
                            | Some(Kind::Semi)
                            | Some(Kind::RParen)
                    )
                    || matches!(self.word(after), Word::From | Word::Into)
            }
            _ => false,
        }
    }

    /// The break-out string (quote contexts) looks like a value an attacker closes (`admin`,
    /// `1`, empty), not prose that happens to contain an apostrophe.
    fn plausible_quote_prefix(&self) -> bool {
        match self.prefix.string.and_then(|s| self.t(s)) {
            Some(s) => !s.has(F_SPACE) && s.len <= 64,
            None => true,
        }
    }

    /// `and`/`or`/`where`/`having` followed by a condition.
    fn logic(&self, i: usize) -> bool {
        let (strength, after) = self.condition(i + 1);
        match strength {
            Strength::Strong => !self.math_chain(i),
            Strength::Medium => {
                let cut = self.kind(after) == Some(Kind::Comment);
                if !self.at_payload(i) {
                    return cut;
                }
                match self.prefix.kind {
                    // `x' and id=1`: the quote must be closed by something short, not prose.
                    BreakOut::Quote => self.plausible_quote_prefix() || cut,
                    BreakOut::Number => true,
                    // A value that starts with `and`/`or`/`where`: only as the whole value.
                    BreakOut::Start => cut,
                    BreakOut::Word => false,
                }
            }
            Strength::Weak => {
                self.at_payload(i)
                    && match self.prefix.kind {
                        BreakOut::Quote => {
                            self.quoted && self.terminator(after) && self.plausible_quote_prefix()
                        }
                        BreakOut::Start | BreakOut::Number => {
                            self.kind(after) == Some(Kind::Comment)
                                && self.comment_cuts(after)
                                && self.comment_is_short(after)
                        }
                        BreakOut::Word => false,
                    }
            }
            Strength::None => false,
        }
    }

    /// A comparison of arithmetic on numbers starting at `j` (`5 < 6`, `10 >= 9`,
    /// `5 - 3 = 2`): returns the index after it. `=` only counts when a side computes
    /// something, since `1=1` is the tautology probe itself.
    fn math_comparison_at(&self, j: usize) -> Option<usize> {
        // `N (op N)*`: returns the end and whether an operator was seen.
        let operand = |mut k: usize| -> Option<(usize, bool)> {
            let mut arithmetic = false;
            if self.kind(k) != Some(Kind::Num) {
                return None;
            }
            k += 1;
            while self
                .t(k)
                .is_some_and(|t| t.kind == Kind::Op && t.word != Word::Not)
                && self.kind(k + 1) == Some(Kind::Num)
            {
                arithmetic = true;
                k += 2;
            }
            Some((k, arithmetic))
        };
        let (op, left_math) = operand(j)?;
        let cmp = self.t(op).filter(|t| t.kind == Kind::Cmp)?.text(self.input);
        let (end, right_math) = operand(op + 1)?;
        let ok = match cmp {
            b"<" | b">" | b"<=" | b">=" => true,
            b"=" => left_math || right_math,
            _ => false,
        };
        ok.then_some(end)
    }

    /// Is the logic operator at `i` one link of a value that is nothing but math comparisons
    /// joined by `and`/`or`, from the first token to the last (`5 < 6 and 7 > 3`,
    /// `5 - 3 = 2 and 2 * 3 = 6`)?
    ///
    /// Such a value is arithmetic prose, not a break-out: it does not start with the literal the
    /// application expects followed by a payload, every comparison is one a reader writes, and
    /// nothing cuts the rest of the query. `1 and 2>1` (a bare literal first), `1=1 and 2=2`
    /// (the tautology), `5<6 and 7>3--` (a comment) and `5<6; drop table t` stay detected.
    fn math_chain(&self, i: usize) -> bool {
        // Only a whole value seen in one window (`prefix.p` is reset when the window slides).
        if self.quoted || i < 3 || !self.eof || self.prefix.p == usize::MAX {
            return false;
        }
        // Every link, from the start: `N op M` then `and`/`or`, up to the end of the value.
        let mut j = 0;
        loop {
            let Some(end) = self.math_comparison_at(j) else {
                return false;
            };
            if self.at_end(end) {
                return true;
            }
            if self.kind(end) != Some(Kind::Logic) {
                return false;
            }
            j = end + 1;
        }
    }

    /// Skips a value, including arithmetic continuations (`5*2`, `a||b`) and a function call's
    /// arguments. Returns the index after it, or `None` if there is no value at `j`.
    fn value_end(&self, mut j: usize) -> Option<usize> {
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > 6 {
                return Some(j);
            }
            // Unary operators.
            while matches!(self.t(j), Some(t) if t.kind == Kind::Op && t.len == 1 && matches!(t.text(self.input), b"-" | b"+" | b"~" | b"!"))
            {
                j += 1;
            }
            let t = self.t(j)?;
            if t.kind == Kind::Func {
                j = self.skip_parens(j + 1)?;
            } else if t.kind == Kind::LParen {
                j = self.skip_parens(j)?;
            } else if t.is_value() {
                j += 1;
            } else {
                return None;
            }
            // Arithmetic continuation.
            if matches!(self.t(j), Some(t) if t.kind == Kind::Op && t.word != Word::Not) {
                j += 1;
                continue;
            }
            return Some(j);
        }
    }

    /// From a `(` at `j`, returns the index after its matching `)` (within the lookahead).
    fn skip_parens(&self, j: usize) -> Option<usize> {
        if self.kind(j) != Some(Kind::LParen) {
            return None;
        }
        let mut depth = 0usize;
        for k in j..(j + LOOKAHEAD).min(self.toks.len()) {
            match self.kind(k) {
                Some(Kind::LParen) => depth += 1,
                Some(Kind::RParen) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(k + 1);
                    }
                }
                _ => {}
            }
        }
        // Unclosed within the window: treat the rest as the call.
        Some((j + LOOKAHEAD).min(self.toks.len()))
    }

    /// Parses a condition at `j`. Returns its strength and the index after it.
    fn condition(&self, mut j: usize) -> (Strength, usize) {
        // `(`, `not`, `!` prefixes.
        while matches!(self.t(j), Some(t) if t.kind == Kind::LParen || t.word == Word::Not) {
            j += 1;
        }
        let Some(lhs) = self.t(j).copied() else {
            return (Strength::None, j);
        };
        match lhs.kind {
            Kind::Stmt if lhs.word == Word::Select => {
                return if self.select_is_sql(j) {
                    (Strength::Strong, j + 1)
                } else {
                    (Strength::None, j)
                };
            }
            Kind::Func if self.danger_called(j) => return (Strength::Strong, j + 1),
            _ => {}
        }
        let lhs_i = j;
        let Some(after_lhs) = self.value_end(j) else {
            return (Strength::None, j);
        };
        let single_lhs = after_lhs == lhs_i + 1;
        let after_lhs = if self.kind(after_lhs) == Some(Kind::RParen)
            && self.skip_rparens(after_lhs) < self.toks.len()
            && self.kind(self.skip_rparens(after_lhs)) == Some(Kind::Cmp)
        {
            self.skip_rparens(after_lhs)
        } else {
            after_lhs
        };
        if lhs.kind == Kind::Func && lhs.class == FuncClass::Sql {
            // A SQL function compared is strong (`ascii(..)>52`); alone it is medium.
            return if self.kind(after_lhs) == Some(Kind::Cmp) {
                let rhs_end = self.value_end(after_lhs + 1).unwrap_or(after_lhs + 2);
                let constant =
                    matches!(self.kind(after_lhs + 1), Some(Kind::Num) | Some(Kind::Str));
                let strength = if constant {
                    Strength::Strong
                } else {
                    Strength::Medium
                };
                (strength, self.skip_rparens(rhs_end))
            } else {
                (Strength::Medium, after_lhs)
            };
        }
        let Some(op) = self.t(after_lhs).copied().filter(|t| t.kind == Kind::Cmp) else {
            // A lone value: `or 1`, `or true`, and `or 'x'` only when a comment cuts after it.
            let cut = matches!(self.kind(after_lhs), Some(Kind::Comment) | Some(Kind::Semi));
            let ok = single_lhs
                && self.terminator(after_lhs)
                && (self.lone_value_ok(&lhs) || (lhs.kind == Kind::Str && cut));
            // `or true` / `and false` is the tautology (or its blind-injection twin) with no
            // comparison at all: as strong as `or 1=1` after a break-out.
            let boolean = matches!(lhs.word, Word::True | Word::False);
            return match (ok, boolean) {
                (true, true) => (Strength::Medium, after_lhs),
                (true, false) => (Strength::Weak, after_lhs),
                _ => (Strength::None, after_lhs),
            };
        };
        let mut k = after_lhs + 1;
        if op.word == Word::Is {
            if self.word(k) == Word::Not {
                k += 1;
            }
            return match self.t(k) {
                Some(r) if matches!(r.word, Word::Null | Word::True | Word::False) => {
                    (Strength::Medium, k + 1)
                }
                _ => (Strength::None, k),
            };
        }
        if op.word == Word::In {
            if self.kind(k) == Some(Kind::LParen) {
                if self.word(k + 1) == Word::Select && self.select_is_sql(k + 1) {
                    return (Strength::Strong, k + 2);
                }
                let end = self.skip_parens(k).unwrap_or(k + 1);
                return (Strength::Medium, end);
            }
            return (Strength::None, k);
        }
        // Right-hand side.
        let mut r = k;
        while matches!(self.t(r), Some(t) if t.kind == Kind::LParen || (t.kind == Kind::Op && t.len == 1 && matches!(t.text(self.input), b"-" | b"+")))
        {
            r += 1;
        }
        let Some(rhs) = self.t(r).copied() else {
            return (Strength::None, r);
        };
        let after_rhs = self.value_end(r).unwrap_or(r + 1);
        let after_rhs = self.skip_rparens(after_rhs);
        let strength = match rhs.kind {
            Kind::Stmt if rhs.word == Word::Select => {
                if self.select_is_sql(r) {
                    Strength::Strong
                } else {
                    Strength::None
                }
            }
            Kind::Func if self.danger_called(r) => Strength::Strong,
            Kind::Func if rhs.class == FuncClass::Sql && self.call_is_dangerous(r) => {
                Strength::Strong
            }
            Kind::Func => Strength::Medium,
            Kind::Var if rhs.has(F_SYSVAR) => Strength::Strong,
            _ if !rhs.is_value() => Strength::None,
            _ => match (lhs.kind, rhs.kind) {
                (Kind::Var, _) if lhs.has(F_SYSVAR) => Strength::Strong,
                (Kind::Num, Kind::Num) => Strength::Strong,
                (Kind::Str, Kind::Str) if self.same_string(lhs_i, r) => Strength::Strong,
                (Kind::Func, _) => Strength::Medium,
                _ => Strength::Medium,
            },
        };
        (strength, after_rhs)
    }

    fn skip_rparens(&self, mut j: usize) -> usize {
        while self.kind(j) == Some(Kind::RParen) {
            j += 1;
        }
        j
    }

    /// A value that is a condition on its own: `or 1`, `or true`, `or 'x'`.
    fn lone_value_ok(&self, t: &Token) -> bool {
        t.kind == Kind::Num || matches!(t.word, Word::True | Word::False | Word::Null)
    }

    /// `order by N` / `group by N` right after the break-out, or cut by a comment anywhere.
    fn order_by(&self, i: usize) -> bool {
        let mut j = i + 1;
        let mut first = true;
        // A list of column numbers or function calls.
        loop {
            match self.t(j) {
                Some(t) if t.kind == Kind::Num => j += 1,
                Some(t) if t.kind == Kind::Func && t.class != FuncClass::Generic => {
                    return true;
                }
                Some(t) if t.kind == Kind::LParen && self.word(j + 1) == Word::Select => {
                    return true;
                }
                _ => return false,
            }
            if first && self.at_payload(i) && self.prefix.kind != BreakOut::Word {
                // `1' order by 3`: end, comment or a comma list.
                if self.terminator(j)
                    || matches!(self.kind(j), Some(Kind::Comma) | Some(Kind::RParen))
                {
                    return true;
                }
            }
            first = false;
            if matches!(self.kind(j), Some(Kind::Comment)) {
                return true;
            }
            if self.kind(j) != Some(Kind::Comma) {
                return false;
            }
            j += 1;
            if j > i + LOOKAHEAD {
                return false;
            }
        }
    }

    /// A dangerous function at `j` called with something (`sleep(5)`, `sleep(`): `sleep()`
    /// with nothing inside is prose naming it.
    fn danger_called(&self, j: usize) -> bool {
        self.t(j).is_some_and(|t| t.class == FuncClass::Danger)
            && self.kind(j + 2) != Some(Kind::RParen)
    }

    /// A dangerous function called with plausible arguments, or `char(..)` concatenations.
    fn function(&self, i: usize) -> bool {
        let Some(t) = self.t(i) else { return false };
        if t.word == Word::Char && self.char_chain(i) {
            return true;
        }
        if t.class != FuncClass::Danger || self.kind(i + 1) != Some(Kind::LParen) {
            return false;
        }
        let Some(arg) = self.t(i + 2) else {
            return false;
        };
        match arg.kind {
            Kind::LParen | Kind::Stmt | Kind::Func | Kind::Var => true,
            // One plain word as the whole argument list, the name apart from its parenthesis,
            // is how prose names things ("Benchmark (documentation)", "Sleep (album)"); a call
            // glues them (`sleep(__TIME__)`) or passes more than a word.
            Kind::Bare => match self.kind(i + 3) {
                Some(Kind::Comma) | Some(Kind::Op) | Some(Kind::Cmp) | Some(Kind::LParen) => true,
                Some(Kind::RParen) => self
                    .t(i + 1)
                    .is_some_and(|p| p.start == t.start.saturating_add(t.len)),
                _ => false,
            },
            Kind::Num | Kind::Str | Kind::Keyword => matches!(
                self.kind(i + 3),
                Some(Kind::RParen)
                    | Some(Kind::Comma)
                    | Some(Kind::Op)
                    | Some(Kind::Cmp)
                    | Some(Kind::LParen)
            ),
            Kind::Op => true,
            _ => false,
        }
    }

    /// Does the call at `j` contain a subquery or a dangerous function (`if(benchmark(..))`)?
    fn call_is_dangerous(&self, j: usize) -> bool {
        let end = self.skip_parens(j + 1).unwrap_or(j + 1);
        (j + 1..end).any(|k| {
            self.t(k).is_some_and(|t| {
                (t.kind == Kind::Func && t.class == FuncClass::Danger)
                    || (t.word == Word::Select && self.select_is_sql(k))
            })
        })
    }

    /// `char(65)+char(66)`, `chr(65)||chr(66)`: strings built from codes.
    fn char_chain(&self, i: usize) -> bool {
        let Some(end) = self.skip_parens(i + 1) else {
            return false;
        };
        if self.kind(i + 2) != Some(Kind::Num) {
            return false;
        }
        let joined = matches!(self.t(end), Some(t) if (t.kind == Kind::Op && matches!(t.text(self.input), b"+" | b"|")) || (t.kind == Kind::Logic && t.text(self.input) == b"||"));
        joined && matches!(self.t(end + 1), Some(t) if t.kind == Kind::Func && t.word == Word::Char)
    }

    /// A comment right after a quote break-out: `admin'--`, `1')#`.
    fn truncation(&self, i: usize) -> bool {
        if !self.at_payload(i) || i != self.prefix.p {
            return false;
        }
        if !self.comment_cuts(i) {
            return false;
        }
        match self.prefix.kind {
            BreakOut::Quote => self.quoted && self.plausible_quote_prefix(),
            BreakOut::Number => {
                // `1)--` needs the closing parenthesis; `1--` alone is too common.
                self.prefix.parens > 0
                    && self
                        .t(i)
                        .is_some_and(|c| !c.has(F_HASH) || self.at_end(i + 1))
            }
            _ => false,
        }
    }

    /// A comment that cuts the rest of a query: `--`, `-- x`, `#`, `/*`, but not a hashtag or a
    /// number sign glued to a word (`#2`, `--infant`). `--sp_password` cuts too: SQL Server
    /// leaves a statement that mentions `sp_password` out of its trace log, so injections end
    /// with it to hide.
    fn comment_cuts(&self, i: usize) -> bool {
        let Some(t) = self.t(i) else { return false };
        let text = t.text(self.input);
        let body = if t.has(F_HASH) {
            text.get(1..)
        } else {
            text.get(2..)
        };
        !body
            .and_then(|b| b.first())
            .is_some_and(|c| c.is_ascii_alphanumeric())
            || (!t.has(F_HASH) && body.is_some_and(|b| starts_with_ci(b, b"sp_password")))
    }

    /// A statement right after a quote or parenthesis break-out: `'; drop` without the `;`
    /// (`'exec sp_addlogin ..`, `1) select ..`).
    fn statement_at_payload(&self, i: usize) -> bool {
        self.at_payload(i)
            && (self.prefix.kind == BreakOut::Quote && self.quoted && self.plausible_quote_prefix()
                || self.prefix.parens > 0)
            && self.statement_ok(i)
    }

    /// A whole value that is `select <function>(...)`: `select current_database();`.
    fn select_function(&self, i: usize) -> bool {
        i == 0 && !self.quoted && self.kind(1) == Some(Kind::Func) && {
            let end = self.skip_parens(2).unwrap_or(2);
            self.terminator(end) || self.word(end) == Word::From
        }
    }

    /// Right after a quote break-out, a comparison cut by a comment: `'=0--`, `x' > 1#`.
    fn compare_and_cut(&self, i: usize) -> bool {
        if !self.at_payload(i) || !self.quoted || !self.plausible_quote_prefix() {
            return false;
        }
        let Some(end) = self.value_end(i + 1) else {
            return false;
        };
        self.kind(end) == Some(Kind::Comment) && self.comment_cuts(end)
    }

    /// A comment with at most a few characters after its marker (`--`, `-- -`, `#`, `-- xyzq`),
    /// as injections end, unlike prose (`1 or 2 -- pick one`).
    fn comment_is_short(&self, i: usize) -> bool {
        self.t(i).is_some_and(|t| {
            let text = t.text(self.input);
            text.iter().filter(|&&b| !b.is_ascii_whitespace()).count() <= 6
        })
    }

    /// `(select ...)` used as an expression.
    fn subquery(&self, i: usize) -> bool {
        if i == 0 || self.kind(i - 1) != Some(Kind::LParen) || !self.select_is_sql(i) {
            return false;
        }
        if i - 1 == self.prefix.p {
            return true;
        }
        if i < 2 {
            return false;
        }
        matches!(
            self.kind(i - 2),
            Some(Kind::Cmp)
                | Some(Kind::Op)
                | Some(Kind::Logic)
                | Some(Kind::Comma)
                | Some(Kind::LParen)
                | Some(Kind::Union)
                | Some(Kind::Func)
        ) || matches!(self.word(i - 2), Word::From | Word::Where | Word::Having)
    }

    /// `case when <cond>` inside an expression.
    fn case_when(&self, i: usize) -> bool {
        if self.word(i + 1) != Word::When || i == 0 {
            return false;
        }
        let prev_ok = matches!(
            self.kind(i - 1),
            Some(Kind::LParen) | Some(Kind::Comma) | Some(Kind::Cmp) | Some(Kind::Op)
        ) || self.word(i - 1) == Word::Select;
        if !prev_ok {
            return false;
        }
        let (s, _) = self.condition(i + 2);
        s >= Strength::Medium
    }

    /// `from information_schema.tables` and other system catalogs.
    fn catalog(&self, i: usize) -> bool {
        let Some(t) = self.t(i + 1) else { return false };
        if t.kind != Kind::Bare {
            return false;
        }
        let name = t.text(self.input);
        const CATALOGS: &[&[u8]] = &[
            b"information_schema",
            b"sqlite_master",
            b"sqlite_schema",
            b"sysobjects",
            b"syscolumns",
            b"sysusers",
            b"sysdatabases",
            b"pg_catalog",
            b"pg_tables",
            b"pg_user",
            b"pg_shadow",
            b"pg_database",
            b"mysql.user",
            b"mysql.db",
            b"all_tables",
            b"all_users",
            b"all_tab_columns",
            b"user_tables",
            b"dba_users",
            b"sys.objects",
            b"sys.tables",
            b"sys.databases",
            b"sys.sql_logins",
            b"master..",
            b"master.dbo.",
            b"rdb$",
            b"sysibm.",
            b"syscat.",
            b"msysobjects",
            b"msysaccessobjects",
            b"domain.domains",
            b"domain.tables",
            b"domain.columns",
            b"v$version",
            b"dual",
        ];
        CATALOGS.iter().any(|c| {
            starts_with_ci(name, c) && (*c != b"dual" || name.len() == 4) && {
                // `dual` alone is too short to trust: it must be followed by SQL.
                *c != b"dual"
                    || self.terminator(i + 2)
                    || matches!(self.kind(i + 2), Some(Kind::RParen))
                    || matches!(self.word(i + 2), Word::Where)
            }
        })
    }

    /// Right after the break-out: an operator or comma joined to a subquery, a `case`, or a
    /// SQL function (`'+(select ..)+'`, `1,(case when ..)`, `'||elt(..)`).
    fn operator_payload(&self, i: usize) -> bool {
        if !self.at_payload(i) {
            return false;
        }
        let binary = self.t(i).is_some_and(|t| {
            t.kind == Kind::Comma
                || matches!(
                    t.text(self.input),
                    b"+" | b"-" | b"*" | b"/" | b"|" | b"^" | b"&" | b"%"
                )
        });
        if !binary || (self.prefix.kind == BreakOut::Quote && !self.plausible_quote_prefix()) {
            return false;
        }
        let mut j = i + 1;
        while self.kind(j) == Some(Kind::LParen) {
            j += 1;
        }
        match self.t(j) {
            Some(t) if t.kind == Kind::Stmt && t.word == Word::Select => self.select_is_sql(j),
            Some(t) if t.word == Word::Case => self.word(j + 1) == Word::When,
            Some(t) if t.kind == Kind::Func && t.class == FuncClass::Danger => true,
            Some(t) if t.kind == Kind::Func && t.class == FuncClass::Sql => {
                self.prefix.kind != BreakOut::Start && self.call_is_dangerous(j)
            }
            _ => false,
        }
    }
}

/// `@@version` and friends: server variables an attacker reads to fingerprint the database.
fn known_sysvar(text: &[u8]) -> bool {
    const NAMES: &[&[u8]] = &[
        b"@@version",
        b"@@datadir",
        b"@@hostname",
        b"@@basedir",
        b"@@servername",
        b"@@servicename",
        b"@@spid",
        b"@@tmpdir",
        b"@@language",
        b"@@identity",
        b"@@rowcount",
        b"@@plugin_dir",
        b"@@secure_file_priv",
        b"@@global.",
        b"@@session.",
        b"@@port",
        b"@@sql_mode",
        b"@@character_set",
        b"@@collation",
        b"@@innodb",
        b"@@microsoftversion",
        b"@@log",
        b"@@have_",
    ];
    NAMES.iter().any(|n| starts_with_ci(text, n))
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || hay.len() < needle.len() {
        return needle.is_empty();
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests;
