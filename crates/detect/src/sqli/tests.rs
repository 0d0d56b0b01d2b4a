//! Named cases for the SQL injection rules: attacks that must be found, prose that must not.
//! Cases are written from attack shapes (sqlmap techniques, cheat sheets), not copied from the
//! corpus.

use super::*;

#[track_caller]
fn attack(s: &str) {
    assert!(detect(s.as_bytes()).is_some(), "missed attack: {s:?}");
}

#[track_caller]
fn benign(s: &str) {
    assert_eq!(detect(s.as_bytes()), None, "false positive: {s:?}");
}

/// `--sp_password` after the payload hides the statement from SQL Server's trace log.
#[test]
fn a_comment_naming_sp_password_cuts_the_query() {
    attack("admin'--sp_password");
    attack("x' or 1=1--sp_password");
    attack("1)--sp_password");
    benign("admin--sp_password");
    benign("please use sp_password to change it");
    benign("--infant");
}

#[test]
fn tautologies_after_a_quote() {
    attack("x' or '1'='1");
    attack("x' OR 'a'='a'--");
    attack("admin\" or \"\"=\"");
    attack("zz') or ('q'='q");
    attack("7' or 3>2 -- -");
    attack("x' or 'b' like 'b");
    attack("nobody' or userid is not null#");
}

/// Regression: `5 < 6 and 7 > 3` (a line of api-values) was flagged as a numeric tautology.
/// A value made only of order comparisons of numbers is arithmetic prose; the shapes an
/// injection needs (a bare literal first, `=`, a comment, a statement after) keep it an attack.
#[test]
fn regression_math_comparisons_are_not_sqli() {
    benign("5 < 6 and 7 > 3");
    benign("3 < 4");
    benign("1 <= 2 or 10 >= 9");
    benign("0 < 1 and 2 < 3 and 4 < 5");
    benign("5 - 3 = 2 and 2 * 3 = 6");
    attack("1=1 and 2-1=1--");
    attack("5 and 7 > 3");
    attack("5 < 6 and 7 > 3--");
    attack("5 < 6 and 7 > 3; drop table users");
    attack("1=1 and 2=2");
    attack("5 < 6 and 7 = 7");
    attack("x' and 7 > 3 and 2 < 4");
}

#[test]
fn numeric_boolean_blind() {
    attack("42 and 77=77");
    attack("42 AND 77=78");
    attack("5) and (31=31");
    attack("10 or 4 between 1 and 9");
    attack("3 and ascii(substring(version(),1,1))>52");
    attack("9 or 1=1");
    attack(" or 2=2");
    attack("9999 or true");
    attack("1 and false");
    attack("9999 or /*+optimizer hint */ true");
    benign("true or false");
    benign("either true or false");
    benign("set it to true or false");
    benign("2 or false teeth");
}

#[test]
fn union_based() {
    attack("-7 union select 1,2,3");
    attack("0' UNION ALL SELECT null,null,concat(user(),0x3a,database())-- -");
    attack("1) union distinct (select password from users)#");
    attack("1 union distinctrow select 1,2");
    attack("@.:=right(right((select user_login from wordpress.wp_users limit 1,1),1111),1111) union#\ndistinctrow\x0bselect@.");
    attack("1/**/union/**/select/**/1");
    attack("1 /*!50000union*/ /*!50000select*/ 1");
}

#[test]
fn stacked_queries() {
    attack("1; drop table users");
    attack("x'; exec master..xp_cmdshell 'ping 10.0.0.1'--");
    attack("1;waitfor delay '0:0:7'--");
    attack("q'; insert into admins values('a','b')--");
    attack("1; update users set role='admin' where id=1");
    attack("1';declare @v varchar(99) set @v=0x41 exec(@v)--");
    attack("3); shutdown--");
}

#[test]
fn time_based() {
    attack("1 and sleep(9)");
    attack("x' and (select 1 from (select(sleep(9)))a)-- ");
    attack("1 or benchmark(9000000,sha1('x'))");
    attack("1)) and pg_sleep(7)--");
    attack("1 waitfor delay '00:00:09'");
    attack("x' || dbms_pipe.receive_message('a',9) || '");
    // A placeholder glued to the call, as payload lists write them.
    attack("sleep(__TIME__)#");
}

#[test]
fn time_functions_named_in_prose() {
    // A word in parentheses after the name, apart from it, is prose naming the function;
    // empty parentheses call nothing.
    benign("iterations per second enhancement to Benchmark (documentation)");
    benign("Sleep (album)");
    benign("module to override the time() and sleep() functions for testing");
    benign("wake up and sleep() again");
}

#[test]
fn error_based() {
    attack("1 and extractvalue(1,concat(0x7e,version()))");
    attack("x' and updatexml(null,concat(0x3a,user()),null)-- ");
    attack("1 and 1=convert(int,(select top 1 name from sysobjects))");
    attack("1 and exp(~(select * from (select user())x))");
}

#[test]
fn comment_truncation() {
    attack("admin'--");
    attack("admin' #");
    attack("root')-- -");
    attack("1)) /*");
    attack("'=0--+");
    attack("q' > 1#");
}

#[test]
fn order_by_probing() {
    attack("1 order by 9--");
    attack("abc' ORDER BY 3#");
    attack(" group by 2");
    attack("1') order by 1,2,3-- x");
}

#[test]
fn encoded_strings_and_catalogs() {
    attack("1 and 1=char(97)+char(98)");
    attack("x' and chr(65)||chr(66)='AB");
    attack("1 and (select count(*) from information_schema.tables)>0");
    attack("x' union select table_name from information_schema.tables-- ");
    attack("1 and @@version like '5%'");
    attack("1 into outfile '/tmp/x'");
}

#[test]
fn subqueries_and_case_expressions() {
    attack("1+(select 1 from dual where 1=1)");
    attack("x'+(select 'q' where 2=2)+'");
    attack("1,(case when 5=5 then 1 else 2 end)");
    attack("x' and (select substr(pass,1,1) from users)='a");
}

#[test]
fn prose_with_quotes_and_sql_words() {
    benign("O'Brien");
    benign("Don't select a plan until you've read the terms");
    benign("select a plan");
    benign("1-2 days");
    benign("drop-down menu");
    benign("and/or");
    benign("rock and roll");
    benign("salt and pepper or sugar");
    benign("Tom & Jerry");
    benign("it's 5 o'clock somewhere");
    benign("I'd like 2 or 3 of those, and 1 more");
    benign("where is my order?");
    benign("Order by phone: call 555-0100");
    benign("union station");
    benign("The union selected a new leader");
    benign("ORDER BY DATE");
    benign("sleep well");
    benign("count (of items)");
    benign("from 1 to 10");
    benign("john.o'reilly@example.com");
    benign("#1 best seller");
    benign("C# and F# -- both .NET");
    benign("price: $5 - $10");
    benign("50% off; today only");
    benign("\"quoted\" and \"more quoted\"");
    benign("what's new; what's next");
    benign("rock 'n' roll");
    benign("5' 11\" tall");
    benign("don't--stop");
    benign("1=1 is true in math");
    benign("1 or 2 -- pick one");
    benign("Let's meet at 5 o'clock -- or maybe 6");
    benign("harry potter and the order of the phoenix");
    benign("5' 11\" (180 cm) or taller");
    benign("the user's id=5 and role=admin");
}

#[test]
fn json_code_and_markup_snippets() {
    benign("{\"name\": \"O'Neil\", \"tags\": [\"a\", \"b\"], \"count\": 3}");
    benign("{\"q\":\"select\",\"from\":\"2024-01-01\",\"where\":\"paris\"}");
    benign("if (a == b) { return c; }");
    benign("x = y + 1; // increment");
    benign("<b>bold</b> and <i>italic</i>");
    benign("SELECT your size: S, M, L");
    benign("**bold** and _italic_ - see [link](http://x.y/z?a=1&b=2)");
    benign("user@example.com");
    benign("https://example.com/path?id=1&sort=desc#top");
}

#[test]
fn fingerprint_reports_the_context_that_matched() {
    let d = detect(b"x' or 'a'='a").unwrap();
    assert_eq!(d.context, Context::SingleQuote);
    assert_eq!(d.fingerprint_str(), "s&sos");
    let d = detect(b"1 union select 2").unwrap();
    assert_eq!(d.context, Context::NoQuote);
    assert_eq!(d.fingerprint_str(), "1UE1");
    let d = detect(b"q\" and 1=1--").unwrap();
    assert_eq!(d.context, Context::DoubleQuote);
    assert_eq!(d.fingerprint_str(), "s&1o1c");
}

#[test]
fn long_benign_prefix_does_not_hide_a_union_select() {
    let mut v = "word ".repeat(200);
    v.push_str("x union select password from users");
    attack(&v);
}

#[test]
fn degenerate_inputs() {
    benign("");
    benign("'");
    benign("\"");
    benign("''''''''''''");
    benign("((((((((((((");
    benign("))))))))))))");
    benign("------");
    benign("/*");
    benign(";;;;;;;;");
}

/// Changelog and manual prose that an earlier version flagged (found by running the detectors
/// over /usr/share/doc): SQL words and comparisons in sentences are not injections.
#[test]
fn regression_changelog_prose_is_not_sqli() {
    benign("and exp(a) < exp(b)");
    benign("where exp(x) is outside the exponent range");
    benign("where r > len (e.g. len = 1 and tz = 1);");
    benign("remove trailing ,<version> and @<modifier> from locale names.");
    benign("mydbm_dsize may return size_t; cast (for");
    benign("where destination=source");
    benign("and link is broken");
    benign("85 |   if (info->raw_certificate_list != null) {");
    benign("\"sendfile_max_chunk\", \"limit_req\" directives, or the $r->sleep()");
    benign("of \"select() failed (10022: ...)\" error in nginx/windows.");
    benign("if the \"select\" method was used on windows");
    benign("\"select\" method");
    benign("until packages are rebuilt against mach_print@@glibc_2.32.");
    benign("the underflow flag is set before the call and x > 0; added testcase.");
    benign("\"exec\".  (thanks to doron behar.)");
    benign("in place of \"!strcmp (env, \"0\").");
    benign("--enable-assert --disable-assembly\" and mpfr is built using the gmp");
    benign("long double like what is done for double; on platforms where d != d is");
    benign("in the cases where \"$pthread_cc\" != \"$cc\",");
    benign("where 'exit 257' is equivalent to 'exit 1'.");
}

/// The gate never hides a detection on the corpora: every line (as written, lowercased and
/// upper-cased) that one of the three contexts flags passes the gate.
#[test]
fn gate_passes_every_value_the_contexts_flag_in_the_corpora() {
    let mut flagged = 0usize;
    for line in crate::corpus_lines() {
        let (lower, upper) = (line.to_ascii_lowercase(), line.to_ascii_uppercase());
        for v in [&line[..], &lower[..], &upper[..]] {
            let ungated = [Context::NoQuote, Context::SingleQuote, Context::DoubleQuote]
                .into_iter()
                .any(|c| detect_in(v, c).is_some());
            if ungated {
                flagged += 1;
                assert!(possible(v), "gate hides {:?}", String::from_utf8_lossy(v));
            }
        }
    }
    // The corpora hold thousands of SQL injections: the check above must have had work to do.
    assert!(flagged > 5000, "only {flagged} flagged values");
}

/// Anchors the gate keeps with no keyword, quote or comment around them: `; set @v = ..`, a
/// parenthesised condition at the start (after `)`s), a function call.
#[test]
fn rare_anchors_pass_the_gate() {
    attack("x; set @a = 1");
    attack("1;SET @q=0x73656c656374");
    attack("(1=1)*1");
    attack(")) (1=1)*1");
    attack("sleep(5)");
    attack("1 order by 3");
    attack("1 GROUP\tBY 2--");
    benign("Please order the blue one");
    benign("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
    benign("size 42; set of 3");
}
