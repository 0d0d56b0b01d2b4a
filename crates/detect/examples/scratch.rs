use std::io::BufRead;
fn main() {
    for line in std::io::stdin().lock().lines() {
        let l = line.unwrap().to_ascii_lowercase();
        let s = palisade_detect::sqli::detect(l.as_bytes());
        let x = palisade_detect::xss::detect(l.as_bytes());
        let f = |d: Option<palisade_detect::Detection>| {
            d.map(|d| format!("{}:{}", d.context.as_str(), d.fingerprint_str()))
                .unwrap_or("-".into())
        };
        println!("{:28} {:18} {}", f(s), f(x), l);
    }
}
