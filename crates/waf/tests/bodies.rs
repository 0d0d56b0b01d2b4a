//! Body parsers: nested JSON, multipart (with its tricks), XML, urlencoded, raw fallback,
//! body errors and the inspection limit.

mod common;

use common::*;
use palisade_waf::BodyError;

#[test]
fn nested_json_keys_and_values_are_inspected_with_their_path() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let body =
        br#"{"user":{"profile":{"bio":"x","links":[{"url":"javascript:alert(1)"}]}},"$where":"1"}"#;
    let i = Req::post("/", "application/json", body).run(&rs, &p);
    let f = fired(&i);
    assert!(
        f.contains(&(2002, "json:user.profile.links.url".into())),
        "{f:?}"
    );
    assert!(f.contains(&(4004, "args_names:$where".into())), "{f:?}");
}

#[test]
fn json_unicode_escapes_are_decoded_before_matching() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let body = br#"{"q":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#;
    let i = Req::post("/", "application/json", body).run(&rs, &p);
    assert!(
        fired(&i).contains(&(2002, "json:q".into())),
        "{:?}",
        fired(&i)
    );
    // +json media types use the JSON parser too.
    let i = Req::post("/", "application/vnd.api+json; charset=utf-8", body).run(&rs, &p);
    assert!(
        fired(&i).contains(&(2002, "json:q".into())),
        "{:?}",
        fired(&i)
    );
}

#[test]
fn malformed_and_too_deep_json_are_body_errors_but_still_scanned_raw() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let i = Req::post(
        "/",
        "application/json",
        b"{\"a\": <script>alert(1)</script>",
    )
    .run(&rs, &p);
    assert_eq!(
        i.body_error(),
        Some(&BodyError::MalformedJson { offset: 6 })
    );
    assert!(
        fired(&i).contains(&(2002, "body".into())),
        "{:?}",
        fired(&i)
    );
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let i = Req::post("/", "application/json", deep.as_bytes()).run(&rs, &p);
    assert_eq!(i.body_error(), Some(&BodyError::TooDeep { limit: 64 }));
    let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    let i = Req::post("/", "application/json", ok.as_bytes()).run(&rs, &p);
    assert_eq!(i.body_error(), None);
}

#[test]
fn urlencoded_body_and_parameter_pollution() {
    let rs = fixtures();
    let p = default_policy(&rs);
    // The attack sits in the second of two values with the same name.
    let i = Req::post(
        "/",
        "application/x-www-form-urlencoded",
        b"id=1&id=1%27+or+%271%27%3D%271",
    )
    .run(&rs, &p);
    assert!(
        fired(&i).contains(&(1001, "args:id".into())),
        "{:?}",
        fired(&i)
    );
    // Same in the query string.
    let i = Req::get("/?id=5&id=..%2f..%2fetc%2fpasswd").run(&rs, &p);
    assert!(
        fired(&i).contains(&(3001, "args:id".into())),
        "{:?}",
        fired(&i)
    );
}

fn multipart(boundary: &str, parts: &str) -> Vec<u8> {
    format!("--{boundary}\r\n{parts}\r\n--{boundary}--\r\n").into_bytes()
}

#[test]
fn multipart_fields_filenames_and_part_headers() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let body = multipart(
        "b1",
        "Content-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--b1\r\n\
         Content-Disposition: form-data; name=\"up\"; filename=\"../../etc/passwd\"\r\n\
         Content-Type: text/plain\r\n\r\n<script>not inspected as an arg</script>\r\n--b1\r\n\
         Content-Disposition: form-data; name=\"note\"\r\n\r\n1 union select password from users",
    );
    let i = Req::post("/", "multipart/form-data; boundary=b1", &body).run(&rs, &p);
    let f = fired(&i);
    assert!(f.contains(&(3001, "filenames:up".into())), "{f:?}");
    assert!(f.contains(&(1002, "args:note".into())), "{f:?}");
    assert!(
        !f.iter().any(|(_, t)| t == "args:up"),
        "file content is not an argument: {f:?}"
    );
    assert!(
        f.contains(&(2002, "body".into())),
        "raw body still scanned: {f:?}"
    );
}

#[test]
fn multipart_tricks_quoted_boundary_case_and_filename_star() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let body = multipart(
        "we;ird",
        "CONTENT-DISPOSITION: form-data; NAME=\"f\"; filename*=UTF-8''..%2F..%2Fetc%2Fshadow\r\n\r\ndata",
    );
    let i = Req::post("/", "Multipart/Form-Data; BOUNDARY=\"we;ird\"", &body).run(&rs, &p);
    let f = fired(&i);
    assert!(f.contains(&(3001, "filenames:f".into())), "{f:?}");
    assert_eq!(i.body_error(), None);
}

#[test]
fn multipart_errors() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let i = Req::post("/", "multipart/form-data", b"--x\r\n\r\n").run(&rs, &p);
    assert_eq!(
        i.body_error(),
        Some(&BodyError::MalformedMultipart(
            "no boundary in content-type"
        ))
    );
    let unterminated = b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1";
    let i = Req::post("/", "multipart/form-data; boundary=x", unterminated).run(&rs, &p);
    assert_eq!(
        i.body_error(),
        Some(&BodyError::MalformedMultipart("no closing boundary"))
    );
    let mut many = String::new();
    for k in 0..300 {
        many.push_str(&format!(
            "--x\r\nContent-Disposition: form-data; name=\"f{k}\"\r\n\r\nv\r\n"
        ));
    }
    many.push_str("--x--\r\n");
    let i = Req::post("/", "multipart/form-data; boundary=x", many.as_bytes()).run(&rs, &p);
    assert_eq!(
        i.body_error(),
        Some(&BodyError::TooManyParts { limit: 256 })
    );
}

#[test]
fn xml_text_attributes_and_doctype() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let body = br#"<?xml version="1.0"?>
<!DOCTYPE order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<order id="7"><item note="../../etc/passwd">&xxe;</item><c><![CDATA[<script>alert(1)</script>]]></c></order>"#;
    let i = Req::post("/", "application/xml", body).run(&rs, &p);
    let f = fired(&i);
    assert!(
        f.contains(&(4003, "body".into())),
        "DOCTYPE visible via body: {f:?}"
    );
    assert!(f.contains(&(3001, "args:item@note".into())), "{f:?}");
    assert!(f.contains(&(2002, "args:order.c".into())), "{f:?}");
    // The entity is not expanded: no value is the content of /etc/passwd.
    assert!(!i.matches().iter().any(|m| m.value.contains("root:")));
}

#[test]
fn unknown_content_type_is_scanned_raw_and_missing_type_is_sniffed() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let i = Req::post(
        "/",
        "application/octet-stream",
        b"xx <script>alert(1)</script>",
    )
    .run(&rs, &p);
    assert_eq!(fired(&i), vec![(2002, "body".into())]);
    let mut r = Req::post("/", "", br#"{"q":"1' or '1'='1"}"#);
    r.content_type = None;
    let i = r.run(&rs, &p);
    assert!(
        fired(&i).contains(&(1001, "json:q".into())),
        "{:?}",
        fired(&i)
    );
}

#[test]
fn inspection_limit_truncates_and_flags() {
    let rs = fixtures();
    let p = policy(&rs, "inspection_limit: 64");
    let mut body = vec![b'a'; 100];
    body.extend_from_slice(b"<script>");
    let i = Req::post("/", "text/plain", &body).run(&rs, &p);
    assert!(i.over_limit());
    assert!(
        i.matches().is_empty(),
        "bytes past the limit are not inspected"
    );
    // A JSON body cut by the limit is not reported as malformed.
    let json = format!(r#"{{"a":"{}"}}"#, "b".repeat(100));
    let i = Req::post("/", "application/json", json.as_bytes()).run(&rs, &p);
    assert!(i.over_limit());
    assert_eq!(i.body_error(), None);
}
