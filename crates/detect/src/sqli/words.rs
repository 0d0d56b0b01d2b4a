//! Word tables: which SQL words are keywords, operators, statements or functions.
//!
//! The tables are `match` statements on the lowercased word, so the compiler builds the lookup;
//! nothing is built at run time.

use super::token::{FuncClass, Kind};

/// Words the detection rules look for by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Word {
    /// Any other word.
    #[default]
    None,
    /// `select`.
    Select,
    /// `insert`.
    Insert,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
    /// `drop`, `create`, `alter`, `truncate`, `rename`.
    Ddl,
    /// `exec`, `execute`.
    Exec,
    /// `declare`.
    Declare,
    /// `shutdown`.
    Shutdown,
    /// `waitfor`.
    Waitfor,
    /// `call`.
    Call,
    /// `begin`.
    Begin,
    /// `set`.
    Set,
    /// `if`.
    If,
    /// `into`.
    Into,
    /// `from`.
    From,
    /// `where`.
    Where,
    /// `having`.
    Having,
    /// `case`.
    Case,
    /// `when`.
    When,
    /// `then`.
    Then,
    /// `null`.
    Null,
    /// `true`.
    True,
    /// `false`.
    False,
    /// `as`.
    As,
    /// `all`, `distinct`.
    All,
    /// `table`, `database`, `procedure`... (objects of DDL statements).
    Object,
    /// `delay`, `time` (after `waitfor`).
    Delay,
    /// `is`.
    Is,
    /// `in`.
    In,
    /// `not` or `!`.
    Not,
    /// `order` (before `by`).
    Order,
    /// `group` (before `by`).
    Group,
    /// `char`, `chr`, `nchar` (used to build strings without quotes).
    Char,
    /// `with`.
    With,
    /// `limit`.
    Limit,
    /// `top`.
    Top,
    /// `outfile`, `dumpfile`.
    Outfile,
}

/// Classifies a lowercased word; `paren` tells whether the next non-space byte is `(`.
#[inline(always)]
pub fn classify(w: &[u8], paren: bool) -> (Kind, Word, FuncClass) {
    use Kind as K;
    use Word as W;
    let kw = |word: Word| (K::Keyword, word, FuncClass::Generic);
    match w {
        b"and" | b"or" | b"xor" => return (K::Logic, W::None, FuncClass::Generic),
        b"not" => return (K::Op, W::Not, FuncClass::Generic),
        b"div" | b"mod" if !paren => return (K::Op, W::None, FuncClass::Generic),
        b"is" => return (K::Cmp, W::Is, FuncClass::Generic),
        b"in" => return (K::Cmp, W::In, FuncClass::Generic),
        b"like" | b"rlike" | b"regexp" | b"ilike" | b"glob" | b"sounds" | b"between"
        | b"similar"
            if !paren =>
        {
            return (K::Cmp, W::None, FuncClass::Generic)
        }
        b"union" | b"intersect" | b"except" => return (K::Union, W::None, FuncClass::Generic),
        b"select" => return (K::Stmt, W::Select, FuncClass::Generic),
        b"insert" | b"replace" if !paren => return (K::Stmt, W::Insert, FuncClass::Generic),
        b"update" => return (K::Stmt, W::Update, FuncClass::Generic),
        b"delete" => return (K::Stmt, W::Delete, FuncClass::Generic),
        b"drop" | b"create" | b"alter" | b"truncate" | b"rename" => {
            return (K::Stmt, W::Ddl, FuncClass::Generic)
        }
        b"exec" | b"execute" => return (K::Stmt, W::Exec, FuncClass::Generic),
        b"declare" => return (K::Stmt, W::Declare, FuncClass::Generic),
        b"shutdown" => return (K::Stmt, W::Shutdown, FuncClass::Generic),
        b"waitfor" => return (K::Stmt, W::Waitfor, FuncClass::Generic),
        b"call" => return (K::Stmt, W::Call, FuncClass::Generic),
        b"begin" => return (K::Stmt, W::Begin, FuncClass::Generic),
        b"set" => return kw(W::Set),
        b"if" if !paren => return kw(W::If),
        b"into" => return kw(W::Into),
        b"from" => return kw(W::From),
        b"where" => return kw(W::Where),
        b"having" => return kw(W::Having),
        b"case" => return kw(W::Case),
        b"when" => return kw(W::When),
        b"then" => return kw(W::Then),
        b"else" | b"end" | b"asc" | b"desc" | b"offset" | b"values" | b"on" | b"join" | b"by"
        | b"to" | b"using" | b"escape" | b"collate" | b"procedure" | b"analyse" => {
            return kw(W::None)
        }
        b"null" => return kw(W::Null),
        b"true" => return kw(W::True),
        b"false" => return kw(W::False),
        b"as" => return kw(W::As),
        b"all" | b"distinct" | b"distinctrow" => return kw(W::All),
        b"table" | b"database" | b"schema" | b"view" | b"index" | b"trigger" | b"function"
        | b"user" | b"login" | b"column"
            if !paren =>
        {
            return kw(W::Object)
        }
        b"delay" | b"time" if !paren => return kw(W::Delay),
        b"order" => return kw(W::Order),
        b"group" if !paren => return kw(W::Group),
        b"with" => return kw(W::With),
        b"limit" => return kw(W::Limit),
        b"top" => return kw(W::Top),
        b"outfile" | b"dumpfile" => return kw(W::Outfile),
        _ => {}
    }
    if !paren {
        return (K::Bare, W::None, FuncClass::Generic);
    }
    let word = match w {
        b"char" | b"chr" | b"nchar" => W::Char,
        b"if" | b"iif" => W::If,
        _ => W::None,
    };
    (K::Func, word, function_class(w))
}

/// How dangerous the function named `w` (lowercase) is.
pub fn function_class(w: &[u8]) -> FuncClass {
    // Dotted names: judge by the package (`dbms_lock.sleep`, `utl_inaddr.get_host_address`)
    // and by the last segment.
    if let Some(dot) = w.iter().rposition(|&b| b == b'.') {
        if w.starts_with(b"dbms_")
            || w.starts_with(b"utl_")
            || w.starts_with(b"sys.dbms_")
            || w.starts_with(b"ctxsys.")
        {
            return FuncClass::Danger;
        }
        let last = w.get(dot + 1..).unwrap_or(&[]);
        return match function_class(last) {
            FuncClass::Generic => FuncClass::Generic,
            c => c,
        };
    }
    match w {
        b"sleep"
        | b"benchmark"
        | b"pg_sleep"
        | b"extractvalue"
        | b"updatexml"
        | b"load_file"
        | b"receive_message"
        | b"get_host_address"
        | b"get_host_name"
        | b"randomblob"
        | b"sys_eval"
        | b"sys_exec"
        | b"pg_read_file"
        | b"pg_ls_dir"
        | b"lo_import"
        | b"lo_export"
        | b"xp_cmdshell"
        | b"xp_dirtree"
        | b"xp_fileexist"
        | b"openrowset"
        | b"opendatasource"
        | b"openquery"
        | b"name_const"
        | b"gtid_subset"
        | b"st_latfromgeohash"
        | b"st_longfromgeohash"
        | b"st_pointfromgeohash"
        | b"json_keys"
        | b"sleep_until"
        | b"get_lock"
        | b"make_set"
        | b"elt"
        | b"pg_sleep_for"
        | b"dblink"
        | b"copy_file"
        | b"xmltype"
        | b"dbms_pipe" => FuncClass::Danger,
        b"ascii"
        | b"substring"
        | b"substr"
        | b"mid"
        | b"ord"
        | b"char"
        | b"chr"
        | b"nchar"
        | b"concat"
        | b"concat_ws"
        | b"group_concat"
        | b"length"
        | b"len"
        | b"char_length"
        | b"count"
        | b"version"
        | b"database"
        | b"user"
        | b"current_user"
        | b"system_user"
        | b"session_user"
        | b"schema"
        | b"if"
        | b"iif"
        | b"ifnull"
        | b"isnull"
        | b"nullif"
        | b"coalesce"
        | b"cast"
        | b"convert"
        | b"exp"
        | b"floor"
        | b"rand"
        | b"hex"
        | b"unhex"
        | b"md5"
        | b"sha1"
        | b"sha2"
        | b"instr"
        | b"locate"
        | b"exists"
        | b"regexp_substring"
        | b"regexp_like"
        | b"regexp_replace"
        | b"uuid"
        | b"row"
        | b"polygon"
        | b"multipoint"
        | b"linestring"
        | b"multipolygon"
        | b"geometrycollection"
        | b"bin"
        | b"conv"
        | b"soundex"
        | b"generate_series"
        | b"string_agg"
        | b"to_char"
        | b"db_name"
        | b"host_name"
        | b"suser_name"
        | b"suser_sname"
        | b"user_name"
        | b"is_srvrolemember"
        | b"object_id"
        | b"has_dbaccess"
        | b"crypt_key"
        | b"current_database"
        | b"current_schema"
        | b"sqlite_version"
        | b"typeof"
        | b"zeroblob"
        | b"unicode"
        | b"strcmp"
        | b"repeat"
        | b"reverse"
        | b"left"
        | b"right"
        | b"like"
        | b"rlike"
        | b"regexp"
        | b"glob"
        | b"lpad"
        | b"rpad"
        | b"ascii_str"
        | b"quote_ident"
        | b"quote_literal"
        | b"pg_user"
        | b"updatexml2"
        | b"procedure_analyse"
        | b"sysdate"
        | b"now"
        | b"instrb"
        | b"substrb"
        | b"utl_raw"
        | b"bitand"
        | b"decode"
        | b"nvl"
        | b"nvl2"
        | b"to_number"
        | b"varchar"
        | b"nvarchar"
        | b"unistr"
        | b"ascii_val" => FuncClass::Sql,
        _ => FuncClass::Generic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logic_words_stay_logic_before_a_parenthesis() {
        assert_eq!(classify(b"and", true).0, Kind::Logic);
        assert_eq!(classify(b"or", false).0, Kind::Logic);
    }

    #[test]
    fn functions_are_classified_by_danger() {
        assert_eq!(
            classify(b"sleep", true),
            (Kind::Func, Word::None, FuncClass::Danger)
        );
        assert_eq!(classify(b"sleep", false).0, Kind::Bare);
        assert_eq!(classify(b"substring", true).2, FuncClass::Sql);
        assert_eq!(classify(b"frobnicate", true).2, FuncClass::Generic);
        assert_eq!(function_class(b"dbms_lock.sleep"), FuncClass::Danger);
        assert_eq!(function_class(b"foo.ascii"), FuncClass::Sql);
    }

    #[test]
    fn like_is_an_operator_unless_called() {
        assert_eq!(classify(b"like", false).0, Kind::Cmp);
        assert_eq!(classify(b"like", true).0, Kind::Func);
    }
}
