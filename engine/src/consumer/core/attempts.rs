//! What to do after an insert attempt fails: retry, find out what was
//! stored, repair, split, dead-letter or stop.
//!
//! At-least-once: transient failures are retried with backoff (the same
//! rows may then be stored twice). Exactly-once: after ANY failure the
//! outcome is treated as unknown (a timeout, a reset connection or a server
//! crash can happen after some parts were written), so the table is asked
//! first ([`super::verdict`]); only an insert found absent is sent again, a
//! partly stored one is deleted first, a complete one is done.

use std::time::{Duration, Instant};

use super::verdict::Verdict;

pub use crate::clickhouse::retry::InsertFailure as Failure;

/// The next step for an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the insert (again) after this delay.
    Send(Duration),
    /// Find out what the table holds of it, after this delay.
    Verify(Duration),
    /// Delete the rows of it that are stored, then verify again.
    Repair,
    /// Insert its two halves one after the other.
    Split,
    /// It is one message the server cannot take: dead-letter it.
    DeadLetter,
    /// Stop the consumer with the last error.
    Stop,
    /// It is stored.
    Done,
}

/// Exponential backoff: 100 ms doubling up to 10 s.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(10));
        d
    }
}

/// The state of one insert's attempts.
#[derive(Debug)]
pub struct Attempts {
    exactly_once: bool,
    /// More than one message: a too-large insert can be split.
    can_split: bool,
    backoff: Backoff,
    last: Option<Failure>,
    failures: u32,
}

impl Attempts {
    pub fn new(exactly_once: bool, messages: usize) -> Self {
        Attempts {
            exactly_once,
            can_split: messages > 1,
            backoff: Backoff::default(),
            last: None,
            failures: 0,
        }
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// An attempt failed.
    pub fn failed(&mut self, f: Failure) -> Step {
        self.last = Some(f);
        self.failures += 1;
        if self.exactly_once {
            // A server that answered can be asked at once; one that did not
            // answer is given time to come back.
            let wait = match f {
                Failure::Transient | Failure::TooManyParts => self.backoff.next_delay(),
                Failure::TooLarge | Failure::Permanent => Duration::ZERO,
            };
            return Step::Verify(wait);
        }
        self.when_absent()
    }

    /// The table was asked what it holds of the insert.
    pub fn verified(&mut self, v: &Verdict) -> Step {
        match v {
            Verdict::Complete => Step::Done,
            Verdict::Absent => self.when_absent(),
            Verdict::Partial { .. } => Step::Repair,
            Verdict::Excess { .. } => Step::Stop,
        }
    }

    /// The table could not be asked (server unreachable): ask again later.
    pub fn unverifiable(&mut self) -> Step {
        Step::Verify(self.backoff.next_delay())
    }

    /// The stored part was deleted: check that it is gone before resending.
    pub fn repaired(&mut self) -> Step {
        Step::Verify(Duration::ZERO)
    }

    /// Nothing of the insert is stored (or not in exactly-once mode).
    fn when_absent(&mut self) -> Step {
        match self.last {
            None => Step::Send(Duration::ZERO),
            Some(Failure::Transient | Failure::TooManyParts) => {
                Step::Send(self.backoff.next_delay())
            }
            Some(Failure::TooLarge) if self.can_split => Step::Split,
            Some(Failure::TooLarge) => Step::DeadLetter,
            Some(Failure::Permanent) => Step::Stop,
        }
    }
}

/// An INSERT that got no answer (timeout, reset connection): its body may
/// still be on its way to the server (held by a proxy, a load balancer or a
/// socket buffer), and ClickHouse lists an INSERT in `system.processes` only
/// once it has started to execute. Until the body can no longer arrive, the
/// table's "absent" proves nothing: sending the rows again could store them
/// twice. The body can no longer arrive once one request timeout has passed
/// since the failure (the documented limit: a body delayed longer than
/// that is not covered), or once the server process that held the
/// connection is gone (its uptime is shorter than the time since the
/// request was sent: it restarted).
#[derive(Clone, Copy, Debug)]
pub struct InTransit {
    sent: Instant,
    failed: Instant,
    grace: Duration,
}

impl InTransit {
    /// A request sent at `sent` that failed without an answer at `failed`,
    /// to a client whose requests time out after `grace`.
    pub fn new(sent: Instant, failed: Instant, grace: Duration) -> Self {
        InTransit {
            sent,
            failed,
            grace,
        }
    }

    /// How much longer the body may still arrive, given the server's
    /// `uptime` (whole seconds, as `uptime()` reports it) read at `now`;
    /// `None` when the table's answer can be trusted.
    pub fn remaining(&self, now: Instant, uptime: Duration) -> Option<Duration> {
        // `uptime` is rounded down: the process started less than
        // uptime + 1 s ago, so it restarted after the request was sent only
        // when uptime + 1 s is at most the time since.
        let since_sent = now.saturating_duration_since(self.sent);
        if uptime + Duration::from_secs(1) <= since_sent {
            return None;
        }
        let until = self.failed + self.grace;
        (now < until).then(|| until - now)
    }
}

/// Spaces inserts out while the server reports "too many parts": the delay
/// doubles (from 500 ms up to 30 s) with each such failure and halves with
/// each success, so a lane inserts less often instead of hammering a server
/// that cannot merge fast enough.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacer {
    delay: Duration,
}

impl Pacer {
    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    /// The wait before the next insert.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    pub fn too_many_parts(&mut self) {
        self.delay = (self.delay * 2).clamp(Self::MIN, Self::MAX);
    }

    pub fn succeeded(&mut self) {
        self.delay /= 2;
        if self.delay < Duration::from_millis(20) {
            self.delay = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::core::spans::InsertKey;

    const ZERO: Duration = Duration::ZERO;

    fn partial() -> Verdict {
        Verdict::Partial {
            short: vec![(
                InsertKey {
                    partition: 0,
                    insert_id: 1,
                },
                10,
                4,
            )],
        }
    }

    #[test]
    fn an_unanswered_insert_may_arrive_until_one_timeout_after_its_failure() {
        let sent = Instant::now();
        let failed = sent + Duration::from_secs(3);
        let t = InTransit::new(sent, failed, Duration::from_secs(3));
        let long_up = Duration::from_secs(3600);
        // Same server process, within the grace: wait for the rest of it.
        assert_eq!(t.remaining(failed, long_up), Some(Duration::from_secs(3)));
        assert_eq!(
            t.remaining(failed + Duration::from_secs(2), long_up),
            Some(Duration::from_secs(1))
        );
        // One timeout after the failure: trusted.
        assert_eq!(t.remaining(failed + Duration::from_secs(3), long_up), None);
    }

    #[test]
    fn a_server_restarted_since_the_request_cannot_receive_its_body() {
        let sent = Instant::now();
        let failed = sent + Duration::from_secs(1);
        let t = InTransit::new(sent, failed, Duration::from_secs(60));
        let now = sent + Duration::from_secs(5);
        // Up for 3 s (rounded down): started at most 4 s ago, after the send.
        assert_eq!(t.remaining(now, Duration::from_secs(3)), None);
        // Up for 4 s (rounded down): started 4 to 5 s ago, not before the send.
        assert_eq!(t.remaining(now, Duration::from_secs(4)), None);
        // Up for 5 s (rounded down): may have started 5.9 s ago, before the
        // send: still wait.
        assert!(t.remaining(now, Duration::from_secs(5)).is_some());
        assert!(t.remaining(now, Duration::from_secs(100)).is_some());
    }

    #[test]
    fn at_least_once_retries_transient_failures_with_growing_backoff() {
        let mut a = Attempts::new(false, 3);
        assert_eq!(
            a.failed(Failure::Transient),
            Step::Send(Duration::from_millis(100))
        );
        assert_eq!(
            a.failed(Failure::Transient),
            Step::Send(Duration::from_millis(200))
        );
        assert_eq!(
            a.failed(Failure::TooManyParts),
            Step::Send(Duration::from_millis(400))
        );
        for _ in 0..20 {
            a.failed(Failure::Transient);
        }
        assert_eq!(
            a.failed(Failure::Transient),
            Step::Send(Duration::from_secs(10))
        );
        assert_eq!(a.failed(Failure::Permanent), Step::Stop);
        assert_eq!(a.failures(), 25);
    }

    #[test]
    fn exactly_once_never_resends_before_asking_the_table() {
        let mut a = Attempts::new(true, 2);
        assert_eq!(
            a.failed(Failure::Transient),
            Step::Verify(Duration::from_millis(100))
        );
        // The server is still away: ask again later, never resend blindly.
        assert_eq!(a.unverifiable(), Step::Verify(Duration::from_millis(200)));
        assert_eq!(
            a.verified(&Verdict::Absent),
            Step::Send(Duration::from_millis(400))
        );
        assert_eq!(
            a.failed(Failure::Transient),
            Step::Verify(Duration::from_millis(800))
        );
        assert_eq!(
            a.verified(&Verdict::Complete),
            Step::Done,
            "it landed after all"
        );
    }

    #[test]
    fn a_partial_insert_is_repaired_then_checked_then_resent() {
        let mut a = Attempts::new(true, 2);
        a.failed(Failure::Transient);
        assert_eq!(a.verified(&partial()), Step::Repair);
        assert_eq!(a.repaired(), Step::Verify(ZERO));
        // The delete has not reached every part yet: repair again.
        assert_eq!(a.verified(&partial()), Step::Repair);
        assert_eq!(a.repaired(), Step::Verify(ZERO));
        assert!(matches!(a.verified(&Verdict::Absent), Step::Send(_)));
    }

    #[test]
    fn too_large_inserts_split_down_to_one_message_then_dead_letter() {
        let mut many = Attempts::new(false, 8);
        assert_eq!(many.failed(Failure::TooLarge), Step::Split);
        let mut one = Attempts::new(false, 1);
        assert_eq!(one.failed(Failure::TooLarge), Step::DeadLetter);
        // Exactly-once: a memory limit can strike after some parts were
        // written, so the table is checked before splitting.
        let mut eo = Attempts::new(true, 8);
        assert_eq!(eo.failed(Failure::TooLarge), Step::Verify(ZERO));
        assert_eq!(eo.verified(&partial()), Step::Repair);
        assert_eq!(eo.repaired(), Step::Verify(ZERO));
        assert_eq!(eo.verified(&Verdict::Absent), Step::Split);
    }

    #[test]
    fn permanent_failures_and_foreign_rows_stop() {
        let mut a = Attempts::new(true, 4);
        assert_eq!(a.failed(Failure::Permanent), Step::Verify(ZERO));
        assert_eq!(a.verified(&Verdict::Absent), Step::Stop);
        let mut b = Attempts::new(true, 4);
        b.failed(Failure::Transient);
        let excess = Verdict::Excess { over: vec![] };
        assert_eq!(b.verified(&excess), Step::Stop);
    }

    #[test]
    fn pacing_grows_with_too_many_parts_and_decays_with_success() {
        let mut p = Pacer::default();
        assert_eq!(p.delay(), ZERO);
        p.too_many_parts();
        assert_eq!(p.delay(), Duration::from_millis(500));
        p.too_many_parts();
        p.too_many_parts();
        assert_eq!(p.delay(), Duration::from_secs(2));
        for _ in 0..10 {
            p.too_many_parts();
        }
        assert_eq!(p.delay(), Duration::from_secs(30));
        for _ in 0..20 {
            p.succeeded();
        }
        assert_eq!(p.delay(), ZERO);
    }
}
