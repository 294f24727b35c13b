//! `velostream dlq list|replay`: the dead-letter topic's tooling.

use std::time::Duration;

use crate::dlq::{self, ReplayOptions};
use crate::kafka::KafkaArgs;
use crate::{Error, Result};

/// Inspect a dead-letter topic or replay its dead letters.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// The `dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: where it is, its source
    /// topic/partition/offset, reason, rows, size and the first line of the
    /// error.
    List(ListArgs),
    /// Copy dead letters back to their source topic, exactly once each.
    Replay(ReplayArgs),
}

/// List the dead letters of a dead-letter topic.
///
/// Reads the topic from its start to its end as it is now. Each line:
/// `DLQ/PARTITION/OFFSET  SOURCE_TOPIC/PARTITION/OFFSET  REASON  rows=N
/// bytes=N  ERROR` (`(not copied)` after the size when the value was too
/// large to be copied into the dead letter; it stays in the source topic).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The dead-letter topic (`consume --dlq-topic`).
    #[arg(long)]
    pub dlq_topic: String,

    /// Only dead letters of this reason: undecodable, schema_mismatch,
    /// oversized, transform_failed, encode_failed, insert_failed.
    #[arg(long)]
    pub reason: Option<String>,

    /// At most this many dead letters.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Print a JSON array (one object per dead letter) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Copy dead letters back to their source topic (or --to-topic).
///
/// Each selected dead letter's original value (fetched from the source
/// topic when it was too large to be copied into the dead letter) is sent
/// with its original headers, without the velostream.dlq.* ones, plus
/// velostream.replay.of naming the dead letter, to the partition it came
/// from. A consumer of the source topic then loads it like any message, so
/// fix the cause (the transform, the table) before replaying.
///
/// Exactly once per dead letter across restarts: the replay's consumer
/// group (--group) commits each dead letter after its copy is acknowledged,
/// and a restart first looks for the copy of the one dead letter per
/// partition that may have been copied but not committed. The replay ends
/// at the dead-letter topic's end as it was at the start (a copy failing
/// again is dead-lettered again, for a later replay). Prints a summary;
/// exits non-zero when a dead letter could not be replayed (named).
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The dead-letter topic (`consume --dlq-topic`).
    #[arg(long)]
    pub dlq_topic: String,

    /// Copy to this topic instead of each dead letter's source topic.
    #[arg(long)]
    pub to_topic: Option<String>,

    /// Only dead letters of this reason (the others are passed over and not
    /// replayed by this group later).
    #[arg(long)]
    pub reason: Option<String>,

    /// The replay's consumer group [default: velostream-dlq-replay.<DLQ
    /// TOPIC>[.<REASON>]].
    #[arg(long)]
    pub group: Option<String>,

    /// Pause this long after each acknowledged copy, before its commit
    /// (for crash tests).
    #[arg(long, hide = true, default_value_t = 0)]
    pub pause_after_copy_ms: u64,
}

/// Runs `dlq list` or `dlq replay`.
pub fn run(args: DlqArgs) -> Result<()> {
    match args.command {
        DlqCommand::List(a) => list(a),
        DlqCommand::Replay(a) => replay(a),
    }
}

fn list(a: ListArgs) -> Result<()> {
    let letters = dlq::list(&a.kafka, &a.dlq_topic, a.reason.as_deref(), a.limit)?;
    if a.json {
        let json = serde_json::to_string_pretty(&letters)
            .map_err(|e| Error::Config(format!("writing JSON: {e}")))?;
        println!("{json}");
    } else {
        for l in &letters {
            println!("{}", l.line());
        }
        eprintln!("{} dead letter(s) in {}", letters.len(), a.dlq_topic);
    }
    Ok(())
}

fn replay(a: ReplayArgs) -> Result<()> {
    let group = a
        .group
        .unwrap_or_else(|| ReplayOptions::default_group(&a.dlq_topic, a.reason.as_deref()));
    let opts = ReplayOptions {
        kafka: a.kafka,
        dlq_topic: a.dlq_topic,
        to_topic: a.to_topic,
        reason: a.reason,
        group,
        pause_after_copy: Duration::from_millis(a.pause_after_copy_ms),
    };
    let stop = super::stop_flag()?;
    let s = dlq::replay(&opts, &stop)?;
    println!(
        "dlq replay of {} (group {}): {} dead letter(s) read, {} copied, {} already copied \
         before a restart, {} passed over (--reason), {} second dead letter(s) of a copied \
         message, {} not replayed",
        opts.dlq_topic,
        opts.group,
        s.read,
        s.copied,
        s.recovered,
        s.skipped,
        s.duplicates,
        s.not_replayed.len()
    );
    if s.not_replayed.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "{} dead letter(s) not replayed:\n{}",
            s.not_replayed.len(),
            s.not_replayed.join("\n")
        )))
    }
}
