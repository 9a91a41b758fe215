//! A database copy's manifest records the rows of every table exactly as its dump holds them,
//! even while rows are being inserted during the backup (the counts are taken in the snapshot
//! `pg_dump` reads), and a restore, or a restore drill, checks the restored counts against them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::{psql, text, Setup};

/// Rows inserted per statement: a count of the table is always a multiple of it.
const BATCH: u64 = 50;

/// The newest local manifest.
fn latest_manifest(s: &Setup) -> Value {
    let file = s
        .copies()
        .into_iter()
        .rfind(|f| f.ends_with(".manifest.json"))
        .expect("a manifest");
    serde_json::from_slice(&std::fs::read(s.local.join(file)).unwrap()).unwrap()
}

/// Inserts `BATCH` rows into `events` per statement until `stop`; the statements run.
fn insert_until(db: String, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    while !stop.load(Ordering::SeqCst) {
        psql(
            &db,
            &format!(
                "INSERT INTO events (pad) SELECT repeat('x', 200) FROM generate_series(1, {BATCH})"
            ),
        );
        done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_manifest_counts_exactly_what_the_dump_holds_while_rows_are_inserted() {
    let s = Setup::new("counts", "7d", None);
    s.seed();
    psql(
        &s.db,
        "CREATE TABLE events (id bigserial PRIMARY KEY, pad text); CREATE TABLE \"Odd Name\" (x int); INSERT INTO \"Odd Name\" VALUES (1), (2)",
    );
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = {
        let (db, stop, done) = (s.db.clone(), stop.clone(), done.clone());
        std::thread::spawn(move || insert_until(db, stop, done))
    };
    while done.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = done.load(Ordering::SeqCst);
    let o = s.run(&["backup", "run", "db", "DIR"], "k1");
    let after = done.load(Ordering::SeqCst);
    let during = after - before;
    while done.load(Ordering::SeqCst) < after + 2 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        during >= 1,
        "rows were inserted while the backup ran: {during}"
    );

    let m = latest_manifest(&s);
    assert_eq!(m["format_version"], 3, "{m}");
    let rows = m["rows"].as_object().expect("row counts").clone();
    assert_eq!(rows["public.items"], 5000, "{m}");
    assert_eq!(rows["public.tags"], 2000, "{m}");
    assert_eq!(rows["public.\"Odd Name\""], 2, "{m}");
    let at_dump = rows["public.events"].as_u64().unwrap();
    let now: u64 = psql(&s.db, "SELECT count(*) FROM events").parse().unwrap();
    assert!(
        at_dump >= 3 * BATCH && at_dump.is_multiple_of(BATCH) && at_dump < now,
        "counted {at_dump} of {now} at the dump's snapshot"
    );

    let target = format!("{}_restored", s.db);
    let o = s.run(&["restore", "db@latest", "--to", &target, "DIR"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let total: u64 = rows.values().map(|n| n.as_u64().unwrap()).sum();
    assert!(
        text(&o).contains(&format!(
            "into database {target} ({} table(s), {} row(s), every count matches the copy's manifest)",
            rows.len(),
            grouped(total)
        )),
        "{}",
        text(&o)
    );
    for (table, n) in &rows {
        let found = psql(&target, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(found, n.to_string(), "{table}");
    }

    let drill = s.run(
        &["backup", "verify", "db", "DIR", "--mode", "restore"],
        "k1",
    );
    assert_eq!(drill.status.code(), Some(0), "{}", text(&drill));
    assert!(
        text(&drill)
            .contains("row(s) (every count matches the copy's manifest) into a scratch database"),
        "{}",
        text(&drill)
    );
}

/// `12,345`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}
