//! `velostream status`: a consumer group's position on a topic, its
//! members, and optionally the ClickHouse table it loads; `--wait-drained`
//! blocks until everything is consumed.

use std::time::Duration;

use super::consume::ClickHouseArgs;
use crate::clickhouse::TableRef;
use crate::kafka::KafkaArgs;
use crate::status::{self, StatusOptions};
use crate::{Error, Result};

/// Show a consumer group's progress on a topic, or wait until it is drained.
///
/// Per partition: the group's committed offset, the high watermark, the lag
/// in messages and in rows (rows from the `velostream.rows` headers of up to
/// --sample-messages pending messages, estimated from rows per message
/// beyond that and marked "estimated"), and which member owns it. With
/// --clickhouse-url and --table: the table's row count and, for tables
/// written with `consume --exactly-once`, the offset stored per partition.
///
/// The high watermark is taken from a fetch response at the group's
/// position, not from ListOffsets, so lag is right also on brokers (such as
/// tansu 0.6) whose ListOffsets answer is wrong after multi-record batches.
///
/// --wait-drained looks every --interval until every partition's lag is zero
/// (and, with a table written with --exactly-once, ClickHouse holds every
/// committed offset), printing a progress line to stderr; it exits 0 when
/// drained and 1 at --timeout, naming the partitions still behind.
#[derive(Debug, clap::Args)]
#[command(mut_arg("clickhouse_url", |a| a
    .required(false)
    .default_value("")
    .hide_default_value(true)
    .help("ClickHouse HTTP(S) endpoint of the table to report (no credentials in the URL)")))]
pub struct StatusArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic the group consumes.
    #[arg(long, env = "VELOSTREAM_TOPIC")]
    pub topic: String,

    /// Consumer group id.
    #[arg(long, default_value = "velostream")]
    pub group: String,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// The table the group loads, [DATABASE.]TABLE (needs --clickhouse-url).
    #[arg(long)]
    pub table: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Wait until every partition is drained (exit 0), or until --timeout (exit 1).
    #[arg(long)]
    pub wait_drained: bool,

    /// Longest wait for --wait-drained, e.g. 90s, 15m, 2h (default: no limit).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait_drained")]
    pub timeout: Option<Duration>,

    /// Time between looks for --wait-drained, e.g. 2s or 500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub interval: Duration,

    /// Pending messages read per partition to count rows exactly; beyond
    /// that, rows are estimated from rows per message.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub sample_messages: usize,
}

/// Parses `500ms`, `90s`, `15m`, `2h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 90s, 15m, 2h or 500ms"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?}: must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl StatusArgs {
    /// What to observe.
    pub fn options(&self) -> Result<StatusOptions> {
        let clickhouse = match &self.table {
            Some(t)
                if self
                    .clickhouse
                    .clickhouse_url
                    .iter()
                    .any(|u| !u.trim().is_empty()) =>
            {
                Some((self.clickhouse.config(), TableRef::parse(t)?))
            }
            Some(_) => {
                return Err(Error::Config("--table needs --clickhouse-url".into()));
            }
            None => None,
        };
        if self.sample_messages == 0 {
            return Err(Error::Config("--sample-messages must be at least 1".into()));
        }
        Ok(StatusOptions {
            kafka: self.kafka.clone(),
            topic: self.topic.clone(),
            group: self.group.clone(),
            clickhouse,
            sample_limit: self.sample_messages,
        })
    }
}

/// Runs `velostream status`.
pub fn run(args: StatusArgs) -> Result<()> {
    let opts = args.options()?;
    let rt = super::produce::runtime()?;
    let snap = if args.wait_drained {
        let stop = super::stop_flag()?;
        rt.block_on(status::wait_drained(
            &opts,
            args.timeout,
            args.interval,
            stop,
            |line| eprintln!("{line}"),
        ))?
    } else {
        rt.block_on(status::snapshot(&opts))?
    };
    if args.json {
        let text = serde_json::to_string_pretty(&snap)
            .map_err(|e| Error::Config(format!("serializing the status: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", snap.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_name_bad_input() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("5 days")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("expected a duration"));
    }
}
