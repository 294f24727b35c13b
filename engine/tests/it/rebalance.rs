//! Rebalances through the binary: a second member joins a running group,
//! takes partitions and inserts, then leaves cleanly (SIGTERM) or is
//! killed (SIGKILL). Exactly-once: every message stored exactly once.
//! At-least-once: nothing lost; a clean hand-over duplicates nothing.

use std::time::Duration;

use arrow_array::RecordBatch;

use crate::harness::clickhouse::try_count;
use crate::harness::cmd::Running;
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::pipeline::{produce_files, Consume};
use crate::harness::{self, TestDb};

/// How the second member leaves the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    /// SIGTERM: the graceful path of ctrl-c (flush, commit, leave group).
    Clean,
    /// SIGKILL: nothing is flushed or committed; the group notices only
    /// when the member's session (10 s here) expires. tansu 0.6 then keeps
    /// the dead member and assigns it partitions again, so the killed member
    /// is restarted (as a supervisor would) and the new process takes them.
    Killed,
}

/// The partition sets of every "partitions assigned" line a member logged.
fn assignments(member: &Running) -> Vec<Vec<i32>> {
    member
        .log()
        .lines()
        .filter(|l| l.contains("partitions assigned"))
        .map(|l| {
            let set = l
                .split("partitions={")
                .nth(1)
                .and_then(|r| r.split('}').next())
                .unwrap_or_else(|| panic!("no partition set in {l:?}"));
            set.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.trim().parse().expect("partition number"))
                .collect()
        })
        .collect()
}

/// `N` from the "inserted N rows" of a consume summary line.
fn inserted_rows(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.starts_with("consumed "))
        .unwrap_or_else(|| panic!("no summary line in:\n{log}"));
    line.split("inserted ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no inserted count in {line:?}"))
}

/// What one rebalance run left.
struct Rebalanced {
    batches: Vec<RecordBatch>,
    db: TestDb,
    table: String,
    brokers: String,
    topic: String,
    messages: u64,
    b_partitions: Vec<i32>,
}

/// A member A runs alone on a 4-partition topic; member B joins and gets
/// partitions (A's are revoked: flush + commit, then a new assignment);
/// data keeps arriving while B owns partitions and B inserts some of it;
/// then B leaves (`leave`) and A takes every partition back (after a
/// SIGKILL: the session expires, and a restarted B takes what tansu still
/// assigns to the dead one); more data arrives afterwards. Ends when the
/// table holds at least every source row and every member has been stopped
/// with SIGTERM.
fn rebalance_scenario(leave: Leave, exactly_once: bool, seed: u64) -> Rebalanced {
    const ROWS: u64 = 120_000;
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(ROWS)
        .files(12)
        .row_groups(12_500)
        .seed(seed)
        .write(&dir.path().join("data"));
    let topic = harness::unique_name("rel_rebalance");
    let table = db.table("trips");
    let stored = || try_count(&db.url, &table).unwrap_or(0);
    // Small messages (1,000 rows): every partition gets many, so hand-overs
    // happen between messages that are still to come.
    let mut messages = produce_files(&brokers, &topic, &files[..3], 4, 1_000);

    let mut consume = Consume::new(&brokers, &db.url, &topic, &table);
    // Members run until stopped: no idle exit while a rebalance is pending.
    consume.exit_when_idle = None;
    // Lane debug lines say when a member has inserted.
    consume.log = "info,velostream::consumer::insert=debug".into();
    consume.insert_rows = 2_000;
    // tansu 0.6 never settles a two-member group with a 2 s session (the
    // joining member's session expires while it waits for the join to
    // complete, forever): 10 s, which a SIGKILLed member also needs to be
    // noticed.
    consume.session_ms = (10_000, 1_000);
    consume.exactly_once = exactly_once;
    let consume = consume.cmd();
    let mut a = consume.spawn(&dir.path().join("a.log"));
    a.wait_until("A stores its first rows", Duration::from_secs(60), |_| {
        stored() > 0
    });

    let mut b = consume.spawn(&dir.path().join("b.log"));
    b.wait_until("B gets partitions", Duration::from_secs(60), |m| {
        assignments(m).iter().any(|p| !p.is_empty())
    });
    let b_partitions = assignments(&b)
        .into_iter()
        .find(|p| !p.is_empty())
        .expect("B's partitions");
    a.wait_until("A is assigned the rest", Duration::from_secs(60), |m| {
        assignments(m).len() >= 2
    });
    assert!(
        b_partitions.len() < 4,
        "B took every partition: {b_partitions:?}"
    );
    // Data keeps arriving while B is a member (one file every 400 ms);
    // B leaves as soon as it has inserted some of it.
    let inserts_before = b.log().matches("inserted").count();
    let middle = {
        let (brokers, topic, files) = (brokers.clone(), topic.clone(), files[3..8].to_vec());
        std::thread::spawn(move || {
            let mut messages = 0;
            for f in &files {
                messages += produce_files(&brokers, &topic, std::slice::from_ref(f), 4, 1_000);
                std::thread::sleep(Duration::from_millis(400));
            }
            messages
        })
    };
    b.wait_until("B inserts rows", Duration::from_secs(60), |m| {
        m.log().matches("inserted").count() > inserts_before
    });
    let at_leave = stored();
    // Counted before B leaves: A may take the partitions back before
    // B's exit is noticed here.
    let a_assignments = assignments(&a).len();
    let b_rows = match leave {
        Leave::Clean => Some(inserted_rows(&b.terminate())),
        Leave::Killed => {
            b.kill();
            None
        }
    };
    let mut replacement = None;
    match leave {
        Leave::Clean => a.wait_until(
            "A takes every partition back",
            Duration::from_secs(60),
            |m| {
                let all = assignments(m);
                all.len() > a_assignments && all.last().is_some_and(|p| p.len() == 4)
            },
        ),
        Leave::Killed => {
            a.wait_until(
                "the group notices the killed member (session expiry)",
                Duration::from_secs(60),
                |m| assignments(m).len() > a_assignments,
            );
            let now = assignments(&a).last().cloned().unwrap_or_default();
            if now.len() < 4 {
                // tansu 0.6 keeps the dead member in the group after its
                // session expired and assigns it partitions again; like an
                // operator (or systemd), restart the killed member.
                eprintln!("rebalance: after B's session expired A owns {now:?} only; restarting B");
                let mut b2 = consume.spawn(&dir.path().join("b2.log"));
                b2.wait_until(
                    "the restarted B gets partitions",
                    Duration::from_secs(60),
                    |m| assignments(m).iter().any(|p| !p.is_empty()),
                );
                replacement = Some(b2);
            }
        }
    }
    messages += middle.join().expect("producer thread");
    // More data after the leave, for A alone.
    messages += produce_files(&brokers, &topic, &files[8..], 4, 1_000);
    a.wait_until("every row is stored", Duration::from_secs(180), |_| {
        stored() >= ROWS
    });
    // Late duplicates would show up in this grace period.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(mut b2) = replacement {
        b2.terminate();
    }
    let a_log = a.terminate();
    eprintln!(
        "rebalance ({leave:?} leave, exactly_once={exactly_once}): {messages} messages, \
         B owned partitions {b_partitions:?}, {at_leave} rows stored when B left, B inserted {}, \
         A inserted {}, A assignments {}",
        b_rows.map_or("? (killed)".into(), |r| r.to_string()),
        inserted_rows(&a_log),
        assignments(&a).len()
    );
    if let Some(rows) = b_rows {
        assert!(rows > 0, "B inserted nothing before leaving");
    }
    assert!(at_leave < ROWS, "everything was stored before B left");
    Rebalanced {
        batches: read_files(&files),
        db,
        table,
        brokers,
        topic,
        messages,
        b_partitions,
    }
}

/// Exactly-once: the table equals the source, and every message is stored
/// exactly once.
fn assert_exact(r: &Rebalanced, what: &str) {
    let c = compare_taxi(&r.db.url, &r.table, &r.batches);
    eprintln!(
        "rebalance: {what}: {} messages, {} (B had {:?})",
        r.messages,
        c.summary(),
        r.b_partitions
    );
    c.assert_exact(what);
    exactly_once(&r.db.url, &r.table, &r.brokers, &r.topic)
        .messages(r.messages)
        .assert();
}

/// At-least-once: nothing lost; returns the duplicates.
fn assert_nothing_lost(r: &Rebalanced, what: &str) -> u64 {
    let c = compare_taxi(&r.db.url, &r.table, &r.batches);
    eprintln!(
        "rebalance: {what}: {} messages, {} (B had {:?})",
        r.messages,
        c.summary(),
        r.b_partitions
    );
    c.assert_nothing_lost(what)
}

#[test]
fn rebalance_member_joins_then_leaves_cleanly_exactly_once() {
    let r = rebalance_scenario(Leave::Clean, true, 0x5eed_0101);
    assert_exact(&r, "exactly-once, clean leave");
}

#[test]
fn rebalance_member_joins_then_leaves_cleanly_at_least_once() {
    let r = rebalance_scenario(Leave::Clean, false, 0x5eed_0102);
    let duplicates = assert_nothing_lost(&r, "at-least-once, clean leave");
    // A clean leave flushes and commits before handing over: no replay.
    assert_eq!(duplicates, 0, "a clean hand-over duplicated rows");
}

#[test]
fn rebalance_member_joins_then_is_killed_exactly_once() {
    let r = rebalance_scenario(Leave::Killed, true, 0x5eed_0103);
    assert_exact(&r, "exactly-once, SIGKILL leave");
}

#[test]
fn rebalance_member_joins_then_is_killed_at_least_once() {
    let r = rebalance_scenario(Leave::Killed, false, 0x5eed_0104);
    assert_nothing_lost(&r, "at-least-once, SIGKILL leave");
}
