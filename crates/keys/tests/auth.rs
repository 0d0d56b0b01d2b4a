//! KeyAuth end to end: keys in a real file, plans compiled from JSON config, an injected clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palisade_keys::{
    Clock, KeyAuth, KeyStore, ManualClock, PlanSet, QuotaBackend, QuotaStore, Rejection, ShortName,
    StoreError, UsagePlan,
};

fn plans(json: &str) -> PlanSet {
    let raw: Vec<UsagePlan> = serde_json::from_str(json).unwrap();
    PlanSet::compile(&raw).unwrap()
}

struct Fixture {
    clock: Arc<ManualClock>,
    quotas: Arc<QuotaStore>,
    auth: KeyAuth,
    _dir: tempfile::TempDir,
}

fn fixture(plans_json: &str, at: (i32, u8, u8, u8, u8, u8)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_utc(at.0, at.1, at.2, at.3, at.4, at.5).unwrap());
    let store = KeyStore::open(dir.path().join("keys.json"))
        .unwrap()
        .with_clock(clock.clone());
    let quotas = Arc::new(QuotaStore::open(dir.path().join("quota.json")).unwrap());
    let auth = KeyAuth::new(
        Arc::new(store),
        plans(plans_json),
        quotas.clone() as Arc<dyn QuotaBackend>,
        clock.clone(),
    );
    Fixture {
        clock,
        quotas,
        auth,
        _dir: dir,
    }
}

const UNLIMITED: &str = r#"[{"name":"free"}]"#;

#[test]
fn missing_malformed_unknown_and_wrong_secret_keys_are_401_with_their_reason() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let (rec, key) = f.auth.create("ci", "alice", "free", None).unwrap();
    let check = |k: Option<&str>| f.auth.check_now(k, "api");
    for (presented, want) in [
        (None, Rejection::Missing),
        (Some(""), Rejection::Missing),
        (Some("hello"), Rejection::Unknown),
        (Some(&key[..key.len() - 1]), Rejection::Unknown),
    ] {
        let r = check(presented).unwrap_err();
        assert_eq!(r, want);
        assert_eq!(r.status(), 401);
    }
    assert_eq!(Rejection::Missing.reason(), "api_key_missing");
    assert_eq!(Rejection::Unknown.reason(), "api_key_invalid");
    // Right id, wrong secret.
    let mut forged = key.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(check(Some(&forged)).unwrap_err(), Rejection::Unknown);
    // A well-formed key with an id nobody has.
    let other = format!("pk_ZZZZZZZZZZZZ_{}", &key[16..]);
    assert_eq!(check(Some(&other)).unwrap_err(), Rejection::Unknown);
    let ok = check(Some(&key)).unwrap();
    // Once the right key has been verified (and cached), wrong secrets are still refused.
    assert_eq!(check(Some(&forged)).unwrap_err(), Rejection::Unknown);
    assert!(check(Some(&key)).is_ok());
    assert_eq!(&*ok.key_id, rec.id);
    assert_eq!(&*ok.plan, "free");
    assert_eq!((ok.rate_limit, ok.quota_limit), (None, None));
}

#[test]
fn revoked_and_expired_keys_are_403_and_revocation_needs_the_secret_to_be_seen() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let expires = time::macros::datetime!(2026-11-25 00:00 UTC);
    let (rec, key) = f.auth.create("ci", "alice", "free", Some(expires)).unwrap();
    assert!(f.auth.check_now(Some(&key), "api").is_ok());
    f.clock
        .set(SystemTime::from(expires) - Duration::from_nanos(1));
    assert!(f.auth.check_now(Some(&key), "api").is_ok());
    f.clock.set(SystemTime::from(expires));
    let r = f.auth.check_now(Some(&key), "api").unwrap_err();
    assert_eq!(
        r,
        Rejection::Expired {
            key_id: ShortName::new(&rec.id).unwrap()
        }
    );
    assert_eq!((r.status(), r.reason()), (403, "api_key_expired"));

    let (rec2, key2) = f.auth.create("ci2", "bob", "free", None).unwrap();
    f.auth.revoke(&rec2.id).unwrap();
    let r = f.auth.check_now(Some(&key2), "api").unwrap_err();
    assert_eq!(
        (r.status(), r.reason(), r.key_id()),
        (403, "api_key_revoked", Some(&*rec2.id))
    );
    // Without the secret, a revoked key looks like any unknown key.
    let guess = format!("{}{}", &key2[..16], "x".repeat(32));
    assert_eq!(
        f.auth.check_now(Some(&guess), "api").unwrap_err(),
        Rejection::Unknown
    );
}

#[test]
fn creating_a_key_in_the_past_or_on_a_missing_plan_is_refused() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let e = f.auth.create("x", "o", "gold", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "usage plan `gold` does not exist (known plans: free)"
    );
    let past = time::macros::datetime!(2026-11-24 11:59 UTC);
    assert!(matches!(
        f.auth.create("x", "o", "free", Some(past)),
        Err(StoreError::ExpiryInPast(_))
    ));
    assert!(matches!(
        f.auth.create("", "o", "free", None),
        Err(StoreError::Empty("name"))
    ));
    assert!(matches!(
        f.auth.revoke("key_nothere12345"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn rotation_invalidates_the_old_key_at_once_and_keeps_the_usage() {
    let f = fixture(
        r#"[{"name":"p","quota":{"limit":5,"period":"day"}}]"#,
        (2026, 11, 24, 12, 0, 0),
    );
    let (rec, old) = f.auth.create("ci", "alice", "p", None).unwrap();
    for _ in 0..3 {
        f.auth.check_now(Some(&old), "api").unwrap();
    }
    let new = f.auth.rotate(&rec.id).unwrap();
    assert_ne!(new, old);
    assert!(new.starts_with(&old[..16]), "same id inside the key");
    assert_eq!(
        f.auth.check_now(Some(&old), "api").unwrap_err(),
        Rejection::Unknown
    );
    let a = f.auth.check_now(Some(&new), "api").unwrap();
    assert_eq!(a.quota_remaining, Some(1));
    assert!(f.auth.store().get(&rec.id).unwrap().rotated.is_some());
}

#[test]
fn rotation_with_a_grace_period_accepts_both_keys_until_it_ends_then_only_the_new_one() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let (rec, old) = f.auth.create("ci", "alice", "free", None).unwrap();
    f.auth.check_now(Some(&old), "api").unwrap();
    let new = f
        .auth
        .rotate_with_grace(&rec.id, Duration::from_secs(600))
        .unwrap();
    assert!(
        f.auth.check_now(Some(&old), "api").is_ok(),
        "old key in grace"
    );
    assert!(f.auth.check_now(Some(&new), "api").is_ok());
    // The grace survives a reload from the file (another process, a restart).
    let text = std::fs::read_to_string(f.auth.store().path().unwrap()).unwrap();
    assert!(
        text.contains("\"previous\"") && !text.contains(&old),
        "{text}"
    );
    let reopened = KeyAuth::new(
        Arc::new(
            KeyStore::open(f.auth.store().path().unwrap())
                .unwrap()
                .with_clock(f.clock.clone()),
        ),
        plans(UNLIMITED),
        Arc::new(QuotaStore::in_memory()) as Arc<dyn QuotaBackend>,
        f.clock.clone(),
    );
    assert!(
        reopened.check_now(Some(&old), "api").is_ok(),
        "grace read back"
    );
    f.clock.advance(Duration::from_secs(599));
    assert!(
        f.auth.check_now(Some(&old), "api").is_ok(),
        "1 s before the end"
    );
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        f.auth.check_now(Some(&old), "api").unwrap_err(),
        Rejection::Unknown,
        "the grace ends exactly"
    );
    assert!(f.auth.check_now(Some(&new), "api").is_ok());
    // A wrong secret is refused during a grace period too.
    let (rec2, old2) = f.auth.create("b", "bob", "free", None).unwrap();
    f.auth
        .rotate_with_grace(&rec2.id, Duration::from_secs(600))
        .unwrap();
    let wrong = format!("{}{}", &old2[..16], "x".repeat(32));
    assert_eq!(
        f.auth.check_now(Some(&wrong), "api").unwrap_err(),
        Rejection::Unknown
    );
    // Revocation ends the grace with the key.
    f.auth.revoke(&rec2.id).unwrap();
    assert!(matches!(
        f.auth.check_now(Some(&old2), "api").unwrap_err(),
        Rejection::Revoked { .. }
    ));
}

#[test]
fn rate_limit_admits_the_burst_then_refuses_with_retry_after_and_refills_with_time() {
    let f = fixture(
        r#"[{"name":"p","rate":2,"burst":3,"quota":{"limit":100,"period":"day"}}]"#,
        (2026, 11, 24, 12, 0, 0),
    );
    let (_, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    let remaining: Vec<_> = (0..3)
        .map(|_| f.auth.check_now(Some(&key), "api").unwrap().rate_remaining)
        .collect();
    assert_eq!(remaining, vec![Some(2), Some(1), Some(0)]);
    let r = f.auth.check_now(Some(&key), "api").unwrap_err();
    match &r {
        Rejection::RateLimited {
            retry_after, limit, ..
        } => {
            assert_eq!(*retry_after, Duration::from_millis(500));
            assert_eq!(*limit, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((r.status(), r.reason()), (429, "rate_limited_key"));
    assert_eq!(r.retry_after_secs(f.clock.now()), Some(1));
    // Rate-refused requests did not consume quota: 3 used, 97 left.
    for _ in 0..10 {
        assert!(f.auth.check_now(Some(&key), "api").is_err());
    }
    f.clock.advance(Duration::from_millis(500));
    let a = f.auth.check_now(Some(&key), "api").unwrap();
    assert_eq!(a.quota_remaining, Some(96));
}

#[test]
fn route_overrides_use_their_own_bucket_and_counter_and_others_share_the_plans() {
    let f = fixture(
        r#"[{"name":"p","rate":1000,"burst":1000,"quota":{"limit":10,"period":"day"},
             "routes":{"export":{"quota":{"limit":2,"period":"day"}},
                       "search":{"rate":1,"burst":1}}}]"#,
        (2026, 11, 24, 12, 0, 0),
    );
    let (_, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    let k = Some(key.as_str());
    // export has its own quota of 2, not taken from the plan's 10.
    assert_eq!(
        f.auth.check_now(k, "export").unwrap().quota_remaining,
        Some(1)
    );
    assert_eq!(
        f.auth.check_now(k, "export").unwrap().quota_remaining,
        Some(0)
    );
    assert!(matches!(
        f.auth.check_now(k, "export"),
        Err(Rejection::QuotaExceeded { limit: 2, .. })
    ));
    // search has its own rate bucket (burst 1) but counts against the plan's quota.
    let a = f.auth.check_now(k, "search").unwrap();
    assert_eq!((a.rate_limit, a.quota_remaining), (Some(1), Some(9)));
    assert!(matches!(
        f.auth.check_now(k, "search"),
        Err(Rejection::RateLimited { .. })
    ));
    // Other routes share the plan's bucket (untouched by search) and quota.
    let a = f.auth.check_now(k, "users").unwrap();
    assert_eq!((a.rate_limit, a.quota_remaining), (Some(1000), Some(8)));
    let a = f.auth.check_now(k, "orders").unwrap();
    assert_eq!(a.quota_remaining, Some(7));
    // The admin view of the same counters.
    let usage = f.auth.usage(&a.key_id, f.clock.now()).unwrap();
    let view: Vec<_> = usage
        .iter()
        .map(|u| (u.scope.as_str(), u.limit, u.used))
        .collect();
    assert_eq!(view, vec![("*", 10, 3), ("export", 2, 2)]);
    let midnight = time::macros::datetime!(2026-11-25 00:00 UTC).unix_timestamp();
    assert!(usage.iter().all(|u| u.reset_at_unix == midnight));
    assert!(f.auth.usage("key_000000000000", f.clock.now()).is_none());
}

#[test]
fn concurrent_checks_against_a_quota_of_n_admit_exactly_n() {
    const N: u64 = 10_000;
    const THREADS: u64 = 8;
    const EACH: u64 = 2_500;
    let f = fixture(
        &format!(r#"[{{"name":"p","quota":{{"limit":{N},"period":"month"}}}}]"#),
        (2026, 11, 24, 12, 0, 0),
    );
    let (_, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    let admitted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let start = std::sync::Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                start.wait();
                for _ in 0..EACH {
                    match f.auth.check_now(Some(&key), "api") {
                        Ok(_) => admitted.fetch_add(1, Ordering::Relaxed),
                        Err(Rejection::QuotaExceeded { .. }) => {
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(other) => panic!("{other:?}"),
                    };
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), N);
    assert_eq!(refused.into_inner(), THREADS * EACH - N);
}

#[test]
fn quota_stays_exact_while_keys_and_plans_are_reloaded_under_load() {
    const N: u64 = 3000;
    let plan = format!(r#"[{{"name":"p","quota":{{"limit":{N},"period":"day"}}}}]"#);
    let f = fixture(&plan, (2026, 11, 24, 12, 0, 0));
    let (_, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    let admitted = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..1500 {
                        if f.auth.check_now(Some(&key), "api").is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        s.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                f.auth.set_plans(plans(&plan));
                f.auth
                    .create(&format!("other{i}"), "bob", "p", None)
                    .unwrap();
                i += 1;
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(admitted.into_inner(), N);
}

/// Uses the quota up, then checks the refusal's reset time and that the next window admits.
fn exhaust_and_cross(f: &Fixture, key: &str, limit: u64, reset: time::OffsetDateTime) {
    for i in 0..limit {
        let a = f.auth.check_now(Some(key), "api").unwrap();
        assert_eq!(a.quota_remaining, Some(limit - i - 1));
        assert_eq!(a.quota_reset_at, Some(SystemTime::from(reset)));
    }
    match f.auth.check_now(Some(key), "api").unwrap_err() {
        Rejection::QuotaExceeded {
            reset_at, limit: l, ..
        } => {
            assert_eq!(reset_at, SystemTime::from(reset), "reset time");
            assert_eq!(l, limit);
        }
        other => panic!("{other:?}"),
    }
    f.clock
        .set(SystemTime::from(reset) - Duration::from_nanos(1));
    assert!(matches!(
        f.auth.check_now(Some(key), "api"),
        Err(Rejection::QuotaExceeded { .. })
    ));
    f.clock.set(SystemTime::from(reset));
    let a = f.auth.check_now(Some(key), "api").unwrap();
    assert_eq!(
        a.quota_remaining,
        Some(limit - 1),
        "a new window starts full"
    );
}

fn quota_fixture(period: &str, at: (i32, u8, u8, u8, u8, u8)) -> (Fixture, String) {
    let f = fixture(
        &format!(r#"[{{"name":"p","quota":{{"limit":3,"period":"{period}"}}}}]"#),
        at,
    );
    let (_, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    (f, key)
}

#[test]
fn daily_quota_resets_at_midnight_utc_including_the_leap_day_and_year_end() {
    use time::macros::datetime;
    for (at, reset) in [
        ((2026, 11, 24, 23, 59, 59), datetime!(2026-11-25 00:00 UTC)),
        ((2028, 2, 28, 0, 0, 0), datetime!(2028-02-29 00:00 UTC)),
        ((2028, 2, 29, 13, 0, 0), datetime!(2028-03-01 00:00 UTC)),
        ((2026, 12, 31, 18, 0, 0), datetime!(2027-01-01 00:00 UTC)),
    ] {
        let (f, key) = quota_fixture("day", at);
        exhaust_and_cross(&f, &key, 3, reset);
    }
}

#[test]
fn weekly_quota_resets_on_monday_midnight_utc_across_the_year_end() {
    use time::macros::datetime;
    for (at, reset) in [
        // Tuesday 2026-11-24 → Monday 2026-11-30.
        ((2026, 11, 24, 12, 0, 0), datetime!(2026-11-30 00:00 UTC)),
        // Sunday night → the next day.
        ((2026, 11, 29, 23, 0, 0), datetime!(2026-11-30 00:00 UTC)),
        // Monday 00:00 exactly starts a week.
        ((2026, 11, 30, 0, 0, 0), datetime!(2026-12-07 00:00 UTC)),
        // Thursday 2026-12-31 → Monday 2027-01-04.
        ((2026, 12, 31, 12, 0, 0), datetime!(2027-01-04 00:00 UTC)),
    ] {
        let (f, key) = quota_fixture("week", at);
        exhaust_and_cross(&f, &key, 3, reset);
    }
}

#[test]
fn monthly_quota_resets_on_the_first_for_30_and_31_day_months_and_february() {
    use time::macros::datetime;
    for (at, reset) in [
        ((2026, 11, 30, 23, 59, 59), datetime!(2026-12-01 00:00 UTC)), // 30-day month
        ((2026, 12, 31, 23, 0, 0), datetime!(2027-01-01 00:00 UTC)),   // 31 days, year end
        ((2027, 1, 31, 0, 0, 0), datetime!(2027-02-01 00:00 UTC)),
        ((2027, 2, 28, 12, 0, 0), datetime!(2027-03-01 00:00 UTC)), // 28-day February
        ((2028, 2, 28, 12, 0, 0), datetime!(2028-03-01 00:00 UTC)), // leap year: 28th isn't last
        ((2028, 2, 29, 12, 0, 0), datetime!(2028-03-01 00:00 UTC)), // the leap day
    ] {
        let (f, key) = quota_fixture("month", at);
        exhaust_and_cross(&f, &key, 3, reset);
    }
}

#[test]
fn a_month_of_daily_traffic_resets_only_on_the_first() {
    // Leap February 2028: used on 29 distinct days, refused on none until the quota is used,
    // reset exactly on 1 March.
    let (f, key) = quota_fixture("month", (2028, 2, 1, 9, 0, 0));
    let _ = &f.auth.set_plans(plans(
        r#"[{"name":"p","quota":{"limit":29,"period":"month"}}]"#,
    ));
    for day in 0..29 {
        let a = f.auth.check_now(Some(&key), "api").unwrap();
        assert_eq!(a.quota_remaining, Some(28 - day));
        f.clock.advance(Duration::from_secs(86_400));
    }
    // Now 2028-03-01 09:00: a new month.
    let a = f.auth.check_now(Some(&key), "api").unwrap();
    assert_eq!(a.quota_remaining, Some(28));
}

#[test]
fn quota_counters_survive_a_restart_through_flush() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_utc(2026, 11, 24, 12, 0, 0).unwrap());
    let plan = r#"[{"name":"p","quota":{"limit":5,"period":"day"}}]"#;
    let open = || {
        let store = KeyStore::open(dir.path().join("keys.json"))
            .unwrap()
            .with_clock(clock.clone());
        let quotas = Arc::new(QuotaStore::open(dir.path().join("quota.json")).unwrap());
        let auth = KeyAuth::new(Arc::new(store), plans(plan), quotas.clone(), clock.clone());
        (auth, quotas)
    };
    let (auth, quotas) = open();
    let (_, key) = auth.create("ci", "alice", "p", None).unwrap();
    for _ in 0..4 {
        auth.check_now(Some(&key), "api").unwrap();
    }
    assert!(quotas.flush().unwrap());
    drop((auth, quotas));
    // "Restart": everything rebuilt from the two files.
    let (auth, _quotas) = open();
    let a = auth.check_now(Some(&key), "api").unwrap();
    assert_eq!(a.quota_remaining, Some(0));
    assert!(matches!(
        auth.check_now(Some(&key), "api"),
        Err(Rejection::QuotaExceeded { .. })
    ));
}

#[test]
fn keys_changed_by_another_process_apply_after_reload_keys() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let path = f.auth.store().path().unwrap().to_path_buf();
    // The `palisade keys create` command: its own store on the same file.
    let cli = KeyStore::open(&path).unwrap();
    let (rec, key) = cli.create("cli", "ops", "free", None).unwrap();
    assert_eq!(
        f.auth.check_now(Some(&key), "api").unwrap_err(),
        Rejection::Unknown
    );
    assert!(f.auth.reload_keys().unwrap());
    assert!(f.auth.check_now(Some(&key), "api").is_ok());
    assert!(!f.auth.reload_keys().unwrap(), "unchanged file");
    // A change through the gateway does not lose the CLI's key (read-modify-write under lock).
    f.auth.create("gw", "ops", "free", None).unwrap();
    cli.revoke(&rec.id).unwrap();
    f.auth.reload_keys().unwrap();
    assert_eq!(f.auth.store().list().len(), 2);
    assert!(matches!(
        f.auth.check_now(Some(&key), "api"),
        Err(Rejection::Revoked { .. })
    ));
}

#[test]
fn a_plan_reload_keeps_rate_state_and_usage_and_orphaned_keys_are_reported() {
    let f = fixture(
        r#"[{"name":"p","rate":1,"burst":1,"quota":{"limit":10,"period":"day"}}]"#,
        (2026, 11, 24, 12, 0, 0),
    );
    let (rec, key) = f.auth.create("ci", "alice", "p", None).unwrap();
    f.auth.check_now(Some(&key), "api").unwrap();
    f.auth.set_plans(plans(
        r#"[{"name":"p","rate":1,"burst":1,"quota":{"limit":20,"period":"day"}}]"#,
    ));
    assert!(matches!(
        f.auth.check_now(Some(&key), "api"),
        Err(Rejection::RateLimited { .. })
    ));
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        f.auth.check_now(Some(&key), "api").unwrap().quota_remaining,
        Some(18)
    );
    let today = palisade_keys::Period::Day.window_at(
        f.clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    assert_eq!(f.quotas.used(&rec.id, "*", &today), 2);
    f.auth.set_plans(plans(r#"[{"name":"other"}]"#));
    assert_eq!(
        f.auth.check_now(Some(&key), "api").unwrap_err(),
        Rejection::Unknown
    );
    assert_eq!(
        f.auth.keys_without_plan(),
        vec![(rec.id.clone(), "p".to_string())]
    );
}

#[test]
fn rejections_map_to_the_shared_reason_codes() {
    use palisade_analytics::names::reason;
    let id = ShortName::new("key_abcdefghijkl").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let cases = [
        (Rejection::Missing, 401, reason::API_KEY_MISSING),
        (Rejection::Unknown, 401, reason::API_KEY_INVALID),
        (
            Rejection::Revoked { key_id: id },
            403,
            reason::API_KEY_REVOKED,
        ),
        (
            Rejection::Expired { key_id: id },
            403,
            reason::API_KEY_EXPIRED,
        ),
        (
            Rejection::RateLimited {
                key_id: id,
                retry_after: Duration::from_millis(1),
                limit: 1,
            },
            429,
            reason::RATE_LIMITED_KEY,
        ),
        (
            Rejection::QuotaExceeded {
                key_id: id,
                reset_at: now + Duration::from_millis(2500),
                limit: 1,
            },
            429,
            reason::QUOTA_EXCEEDED,
        ),
    ];
    for (r, status, code) in &cases {
        assert_eq!((r.status(), r.reason()), (*status, *code), "{r:?}");
    }
    assert_eq!(cases[4].0.retry_after_secs(now), Some(1));
    assert_eq!(cases[5].0.retry_after_secs(now), Some(3));
    assert_eq!(cases[0].0.retry_after_secs(now), None);
}

#[test]
fn arbitrary_presented_strings_are_refused_without_panicking() {
    let f = fixture(UNLIMITED, (2026, 11, 24, 12, 0, 0));
    let (_, key) = f.auth.create("ci", "alice", "free", None).unwrap();
    // xorshift: deterministic, no extra dependency.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "pk_key0aZ9é€\u{0}\u{10FFFF} _-".chars().collect();
    for i in 0..20_000 {
        let candidate: String = if i % 2 == 0 {
            // Mutations of the real key: one character replaced by anything.
            let pos = (next() % key.len() as u64) as usize;
            let c = alphabet[(next() % alphabet.len() as u64) as usize];
            key.char_indices()
                .map(|(j, k)| if j == pos { c } else { k })
                .collect()
        } else {
            let len = (next() % 64) as usize;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        match f.auth.check_now(Some(&candidate), "api") {
            Ok(_) => assert_eq!(candidate, key, "only the real key passes"),
            Err(Rejection::Unknown) => {}
            Err(Rejection::Missing) => assert!(candidate.is_empty()),
            Err(other) => panic!("{candidate:?}: {other:?}"),
        }
    }
}
