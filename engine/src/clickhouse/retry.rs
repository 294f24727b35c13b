//! Which ClickHouse failures are worth retrying.
//!
//! Modelled on vector's ClickHouse sink retry logic, but decided by the
//! exception code instead of a few string prefixes: the server's message
//! starts with `Code: NNN` (also on 18.16: `Code: 60, e.displayText() = ...`),
//! and the code says whether the same request can succeed later (too many
//! parts, memory limit, timeouts, ZooKeeper trouble) or never will (unknown
//! table, type mismatch, parse errors, authentication).
//!
//! Failures without a code: network errors (connection refused or reset) and
//! timeouts are transient; an HTTP 5xx without a code is transient; anything
//! else (4xx, client-side errors) is permanent. Unknown codes are permanent:
//! failing fast with the server's message beats retrying forever.

use crate::Error;

/// Exception codes after which the same request may succeed when repeated.
/// Every other code is permanent. (Names from ClickHouse's ErrorCodes.cpp.)
pub const TRANSIENT_CODES: &[(u32, &str)] = &[
    (159, "TIMEOUT_EXCEEDED"),
    (160, "TOO_SLOW"),
    (201, "QUOTA_EXCEEDED"),
    (202, "TOO_MANY_SIMULTANEOUS_QUERIES"),
    (203, "NO_FREE_CONNECTION"),
    (209, "SOCKET_TIMEOUT"),
    (210, "NETWORK_ERROR"),
    (225, "NO_ZOOKEEPER"),
    (236, "ABORTED"),
    (241, "MEMORY_LIMIT_EXCEEDED"),
    (242, "TABLE_IS_READ_ONLY"),
    (243, "NOT_ENOUGH_SPACE"),
    (252, "TOO_MANY_PARTS"),
    (279, "ALL_CONNECTION_TRIES_FAILED"),
    (285, "TOO_FEW_LIVE_REPLICAS"),
    (286, "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE"),
    (319, "UNKNOWN_STATUS_OF_INSERT"),
    (373, "SESSION_IS_LOCKED"),
    (394, "QUERY_WAS_CANCELLED"),
    (425, "SYSTEM_ERROR"),
    (439, "CANNOT_SCHEDULE_TASK"),
    (473, "DEADLOCK_AVOIDED"),
    (999, "KEEPER_EXCEPTION"),
    (1000, "POCO_EXCEPTION"),
];

/// Codes the pipeline meets often that must NOT be retried; kept here for
/// documentation and tests (every code absent from [`TRANSIENT_CODES`] is
/// permanent anyway).
pub const PERMANENT_CODES: &[(u32, &str)] = &[
    (6, "CANNOT_PARSE_TEXT"),
    (8, "THERE_IS_NO_COLUMN"),
    (10, "NOT_FOUND_COLUMN_IN_BLOCK"),
    (16, "NO_SUCH_COLUMN_IN_TABLE"),
    (20, "NUMBER_OF_COLUMNS_DOESNT_MATCH"),
    (26, "CANNOT_PARSE_QUOTED_STRING"),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
    (32, "ATTEMPT_TO_READ_AFTER_EOF"),
    (33, "CANNOT_READ_ALL_DATA"),
    (38, "CANNOT_PARSE_DATE"),
    (40, "CHECKSUM_DOESNT_MATCH"),
    (41, "CANNOT_PARSE_DATETIME"),
    (44, "ILLEGAL_COLUMN"),
    (47, "UNKNOWN_IDENTIFIER"),
    (50, "UNKNOWN_TYPE"),
    (53, "TYPE_MISMATCH"),
    (57, "TABLE_ALREADY_EXISTS"),
    (60, "UNKNOWN_TABLE"),
    (62, "SYNTAX_ERROR"),
    (70, "CANNOT_CONVERT_TYPE"),
    (72, "CANNOT_PARSE_NUMBER"),
    (73, "UNKNOWN_FORMAT"),
    (81, "UNKNOWN_DATABASE"),
    (115, "UNKNOWN_SETTING"),
    (117, "INCORRECT_DATA"),
    (164, "READONLY"),
    (192, "UNKNOWN_USER"),
    (193, "WRONG_PASSWORD"),
    (194, "REQUIRED_PASSWORD"),
    (271, "CANNOT_DECOMPRESS"),
    (368, "BAD_CAST"),
    (497, "ACCESS_DENIED"),
    (516, "AUTHENTICATION_FAILED"),
];

/// Whether a ClickHouse exception code means "try the same request again".
pub fn is_transient_code(code: u32) -> bool {
    TRANSIENT_CODES.iter().any(|&(c, _)| c == code)
}

/// The ClickHouse name of `code` when it is one of the codes listed here.
pub fn code_name(code: u32) -> Option<&'static str> {
    TRANSIENT_CODES
        .iter()
        .chain(PERMANENT_CODES)
        .find(|&&(c, _)| c == code)
        .map(|&(_, name)| name)
}

/// The exception code in a server message: the number after the first
/// `Code: `. Both the 18.16 form (`Code: 60, e.displayText() = ...`) and the
/// modern one (`Code: 60. DB::Exception: ...`) are recognised.
pub fn parse_code(message: &str) -> Option<u32> {
    let start = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// A leading HTTP status (`"503 Service Unavailable"`), which is what the
/// client reports when the server answered an error without a body.
fn leading_http_status(message: &str) -> Option<u16> {
    let head: String = message.chars().take_while(|c| c.is_ascii_digit()).collect();
    let rest = &message[head.len()..];
    if head.len() == 3 && (rest.is_empty() || rest.starts_with(' ')) {
        head.parse().ok().filter(|s| (100..600).contains(s))
    } else {
        None
    }
}

/// Replaces every occurrence of each secret in `message` with `***`.
pub(crate) fn redact(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "***");
    }
    out
}

/// Turns a client error into [`Error::ClickHouse`], with `context` saying what
/// was being done to which table, the server's message (`secrets` redacted
/// from both), the exception code, and whether retrying may help.
pub(crate) fn classify(context: String, err: &clickhouse::error::Error, secrets: &[&str]) -> Error {
    use clickhouse::error::Error as E;
    let raw = match err {
        // The default Display of these prefixes a fixed phrase; keep the server text.
        E::BadResponse(text) => text.clone(),
        other => error_chain(other),
    };
    let message = redact(raw.trim(), secrets);
    let code = parse_code(&message);
    let transient = match (err, code) {
        (_, Some(code)) => is_transient_code(code),
        (E::Network(_) | E::TimedOut, None) => true,
        (E::BadResponse(text), None) => leading_http_status(text.trim()).is_some_and(|s| s >= 500),
        _ => false,
    };
    let message = match code.and_then(code_name) {
        Some(name) if !message.contains(name) => format!("{message} [{name}]"),
        _ => message,
    };
    Error::ClickHouse {
        context: redact(&context, secrets),
        message,
        code,
        transient,
    }
}

/// `err` and its sources joined with `: ` (hyper hides the useful part,
/// such as "Connection refused", in the source chain).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let piece = s.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = s.source();
    }
    text
}

/// How a failed INSERT should be handled, from its error (see
/// `consumer::core::attempts` for what is done with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertFailure {
    /// Network error, timeout, server busy or restarting: may succeed later.
    Transient,
    /// `TOO_MANY_PARTS` proper: the server merges too slowly; retry later and
    /// insert less often.
    TooManyParts,
    /// The block is too large for the server: a memory limit of the query
    /// (`MEMORY_LIMIT_EXCEEDED ... (for query)`), or more table partitions in
    /// one block than `max_partitions_per_insert_block` (also code 252).
    /// Smaller inserts may succeed.
    TooLarge,
    /// Refused for good.
    Permanent,
}

/// Classifies a failed insert. ClickHouse uses code 252 for both "Too many
/// parts" (transient) and "Too many partitions for single INSERT block"
/// (permanent for that block), and 241 for both a server-wide memory limit
/// (transient) and the query's own limit (the block is too large); the
/// message tells them apart.
pub fn insert_failure(e: &Error) -> InsertFailure {
    let Error::ClickHouse {
        message,
        code,
        transient,
        ..
    } = e
    else {
        return InsertFailure::Permanent;
    };
    let m = message.to_ascii_lowercase();
    match code {
        Some(252) if m.contains("too many partitions") => InsertFailure::TooLarge,
        Some(252) => InsertFailure::TooManyParts,
        Some(241) if m.contains("(for query)") || m.contains("for query") => {
            InsertFailure::TooLarge
        }
        _ if *transient => InsertFailure::Transient,
        _ => InsertFailure::Permanent,
    }
}

/// Whether another replica of the same shard may succeed where this one
/// failed: it could not be reached (connection refused or reset, timeout,
/// an HTTP 5xx without a ClickHouse code) or it cannot take inserts right
/// now (read-only table, lost ZooKeeper session, network errors between
/// servers).
pub fn is_replica_failure(e: &Error) -> bool {
    match e {
        Error::ClickHouse {
            code: None,
            transient: true,
            ..
        } => true,
        Error::ClickHouse {
            code: Some(code), ..
        } => matches!(code, 209 | 210 | 225 | 242 | 279 | 999),
        _ => false,
    }
}

/// Whether the request of a failed INSERT may still reach the server and
/// run there: no answer came back (a timeout, a reset or broken connection),
/// as opposed to a refused connection (nothing was sent) or an answer from
/// the server (it decided). Such an insert's absence from the table proves
/// nothing until its body can no longer arrive (see
/// `consumer::core::attempts::InTransit`).
pub fn may_still_arrive(e: &Error) -> bool {
    match e {
        Error::ClickHouse {
            code: None,
            transient: true,
            message,
            ..
        } => {
            let m = message.to_ascii_lowercase();
            !m.contains("connection refused") && leading_http_status(message.trim()).is_none()
        }
        _ => false,
    }
}

/// A transient error for a request that did not finish within `timeout`.
pub(crate) fn timed_out(context: String, timeout: std::time::Duration, secrets: &[&str]) -> Error {
    Error::ClickHouse {
        context: redact(&context, secrets),
        message: format!("no answer within {timeout:?} (timeout)"),
        code: None,
        transient: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unanswered_requests_may_still_arrive() {
        let e = |message: &str, code: Option<u32>, transient: bool| Error::ClickHouse {
            context: "inserting into t".into(),
            message: message.into(),
            code,
            transient,
        };
        assert!(may_still_arrive(&e(
            "no answer within 3s (timeout)",
            None,
            true
        )));
        assert!(may_still_arrive(&e(
            "network error: connection reset by peer (os error 104)",
            None,
            true
        )));
        assert!(!may_still_arrive(&e(
            "client error (Connect): tcp connect error: Connection refused (os error 111)",
            None,
            true
        )));
        assert!(!may_still_arrive(&e("502 Bad Gateway", None, true)));
        assert!(!may_still_arrive(&e(
            "Code: 252, Too many parts",
            Some(252),
            true
        )));
        assert!(!may_still_arrive(&e(
            "Code: 60, Table doesn't exist",
            Some(60),
            false
        )));
    }

    #[test]
    fn transient_table() {
        for code in [159, 160, 201, 202, 209, 210, 241, 242, 252, 319, 999] {
            assert!(is_transient_code(code), "{code} should be transient");
        }
        for &(code, name) in PERMANENT_CODES {
            assert!(
                !is_transient_code(code),
                "{code} {name} should be permanent"
            );
        }
        // Unknown codes are permanent.
        assert!(!is_transient_code(0));
        assert!(!is_transient_code(123_456));
        assert_eq!(code_name(201), Some("QUOTA_EXCEEDED"));
        assert_eq!(code_name(60), Some("UNKNOWN_TABLE"));
        assert_eq!(code_name(7), None);
    }

    #[test]
    fn tables_do_not_overlap_and_are_sorted() {
        for w in TRANSIENT_CODES.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?}", w);
        }
        for w in PERMANENT_CODES.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?}", w);
        }
    }

    #[test]
    fn parses_codes_of_old_and_new_servers() {
        assert_eq!(
            parse_code("Code: 60, e.displayText() = DB::Exception: Table d.t doesn't exist., e.what() = DB::Exception"),
            Some(60)
        );
        assert_eq!(
            parse_code(
                "Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS) (version 23.8.1)"
            ),
            Some(252)
        );
        assert_eq!(parse_code("Code: 516"), Some(516));
        assert_eq!(parse_code("500 Internal Server Error"), None);
        assert_eq!(parse_code("Code: x"), None);
    }

    fn bad(text: &str) -> clickhouse::error::Error {
        clickhouse::error::Error::BadResponse(text.to_string())
    }

    fn parts(e: Error) -> (String, String, Option<u32>, bool) {
        match e {
            Error::ClickHouse {
                context,
                message,
                code,
                transient,
            } => (context, message, code, transient),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn classifies_server_responses() {
        let (ctx, msg, code, tr) = parts(classify(
            "inserting into `d`.`t`".into(),
            &bad("Code: 60, e.displayText() = DB::Exception: Table d.t doesn't exist."),
            &[],
        ));
        assert_eq!(ctx, "inserting into `d`.`t`");
        assert!(
            msg.contains("doesn't exist") && msg.contains("UNKNOWN_TABLE"),
            "{msg}"
        );
        assert_eq!((code, tr), (Some(60), false));

        let (_, _, code, tr) = parts(classify("x".into(), &bad("Code: 252. Too many parts"), &[]));
        assert_eq!((code, tr), (Some(252), true));

        let (_, _, code, tr) = parts(classify("x".into(), &bad("503 Service Unavailable"), &[]));
        assert_eq!((code, tr), (None, true));

        let (_, _, code, tr) = parts(classify("x".into(), &bad("404 Not Found"), &[]));
        assert_eq!((code, tr), (None, false));

        let (_, _, _, tr) = parts(classify(
            "x".into(),
            &clickhouse::error::Error::TimedOut,
            &[],
        ));
        assert!(tr);

        let net = clickhouse::error::Error::Network("connection refused".into());
        let (_, msg, code, tr) = parts(classify("x".into(), &net, &[]));
        assert_eq!((code, tr), (None, true));
        assert!(msg.contains("connection refused"), "{msg}");

        let (_, _, _, tr) = parts(classify(
            "x".into(),
            &clickhouse::error::Error::Compression("boom".into()),
            &[],
        ));
        assert!(!tr);
    }

    fn ch(code: Option<u32>, message: &str, transient: bool) -> Error {
        Error::ClickHouse {
            context: "inserting".into(),
            message: message.into(),
            code,
            transient,
        }
    }

    #[test]
    fn insert_failures_tell_same_codes_apart_by_message() {
        use InsertFailure::*;
        // Modern wording of both 252s, and 18.16's memory limit of a query.
        let partitions = "Code: 252. DB::Exception: Too many partitions for single INSERT block \
             (more than 100). The limit is controlled by 'max_partitions_per_insert_block' \
             setting. (TOO_MANY_PARTS) (version 24.8.4.13 (official build))";
        assert_eq!(insert_failure(&ch(Some(252), partitions, true)), TooLarge);
        let parts = "Code: 252. DB::Exception: Too many parts (300). Merges are processing \
             significantly slower than inserts. (TOO_MANY_PARTS)";
        assert_eq!(insert_failure(&ch(Some(252), parts, true)), TooManyParts);
        let query_mem = "Code: 241, e.displayText() = DB::Exception: Memory limit (for query) \
             exceeded: would use 9.54 MiB (attempt to allocate chunk of 4194304 bytes), maximum: \
             9.54 MiB, e.what() = DB::Exception";
        assert_eq!(insert_failure(&ch(Some(241), query_mem, true)), TooLarge);
        let total_mem =
            "Code: 241. DB::Exception: Memory limit (total) exceeded: would use 30.1 GiB";
        assert_eq!(insert_failure(&ch(Some(241), total_mem, true)), Transient);
        assert_eq!(
            insert_failure(&ch(None, "connection reset", true)),
            Transient
        );
        assert_eq!(
            insert_failure(&ch(Some(53), "Type mismatch", false)),
            Permanent
        );
        assert_eq!(
            insert_failure(&Error::Config("x".into())),
            Permanent,
            "anything but a ClickHouse error is permanent"
        );
    }

    #[test]
    fn replica_failures_are_those_another_replica_may_not_have() {
        assert!(is_replica_failure(&ch(None, "Connection refused", true)));
        assert!(is_replica_failure(&ch(
            Some(242),
            "Table is in readonly mode",
            true
        )));
        assert!(is_replica_failure(&ch(
            Some(225),
            "ZooKeeper session expired",
            true
        )));
        assert!(
            !is_replica_failure(&ch(Some(252), "Too many parts", true)),
            "the whole shard has it"
        );
        assert!(!is_replica_failure(&ch(Some(53), "Type mismatch", false)));
        assert!(!is_replica_failure(&ch(None, "404", false)));
    }

    #[test]
    fn redacts_secrets_from_messages() {
        let e = classify(
            "q".into(),
            &bad("Code: 193, e.displayText() = DB::Exception: Wrong password pw-PLANTED-42 for user default"),
            &["pw-PLANTED-42", ""],
        );
        let text = format!("{e} {e:?}");
        assert!(!text.contains("pw-PLANTED-42"), "{text}");
        assert!(text.contains("***"), "{text}");
        let (_, _, code, tr) = parts(e);
        assert_eq!((code, tr), (Some(193), false));
    }
}
