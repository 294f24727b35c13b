//! Command-line interface: argument types and the `run` functions behind
//! each subcommand. `main.rs` only parses and calls [`run`].

pub mod bench;
pub mod completions;
pub mod config_file;
pub mod consume;
pub mod dlq;
pub mod gen;
pub mod local;
pub mod produce;
pub mod provision;
mod signals;
pub mod status;
pub mod verify;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

pub use signals::stop_flag;

/// VeloStream: Parquet → Kafka (compressed Arrow IPC) → DataFusion SQL → ClickHouse Native.
#[derive(Debug, Parser)]
#[command(name = "velostream", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `velostream=debug`.
    #[arg(long, global = true, env = "VELOSTREAM_LOG", default_value = "warn")]
    pub log: String,

    /// TOML file with default values for any flag of the subcommand: keys are
    /// long flag names (`brokers = "127.0.0.1:9092"`), optionally in a
    /// `[produce]`/`[consume]`/`[bench]`/`[gen]` section. Flags and
    /// environment variables win over the file.
    #[arg(long, global = true, env = config_file::ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

const LONG_ABOUT: &str = "\
VeloStream moves large Parquet data sets into ClickHouse through Kafka as fast as
the hardware allows: row groups travel as compressed Arrow IPC record batches, the
consumer can apply a DataFusion SQL transform, and rows are inserted as native
columnar blocks.

Typical use:
  velostream gen --rows 10000000 --out data/taxi
  velostream produce --brokers 127.0.0.1:9092 --topic trips --partitions 4 data/taxi
  velostream consume --brokers 127.0.0.1:9092 --topic trips --group loaders \\
      --clickhouse-url http://127.0.0.1:8123 --table taxi.trips --create-table
  velostream bench --rows 20000000      # the whole pipeline, measured and validated";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a synthetic NYC yellow-taxi data set as Parquet.
    Gen(gen::GenArgs),
    /// Send Parquet files to Kafka as compressed Arrow IPC messages.
    Produce(produce::ProduceArgs),
    /// Consume a topic into a ClickHouse table (a consumer-group member).
    Consume(consume::ConsumeArgs),
    /// Run, measure and validate the whole pipeline end to end.
    Bench(bench::BenchArgs),
    /// Check that a ClickHouse table holds exactly the rows of Parquet files.
    Verify(verify::VerifyArgs),
    /// Create a pipeline's topic and ClickHouse table (idempotent).
    Provision(provision::ProvisionArgs),
    /// Show a consumer group's lag and members (and its table), or wait until it is drained.
    Status(status::StatusArgs),
    /// List a dead-letter topic's dead letters, or replay them to their source topic.
    Dlq(dlq::DlqArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), generated from these definitions.
    Man(completions::ManArgs),
    /// Start, stop or inspect local services (Kafka, ClickHouse, ZooKeeper, a
    /// ClickHouse cluster, Prometheus) without Docker.
    Local(local::LocalArgs),
}

impl Cli {
    /// Parses `args` (program name first) after merging the `--config` file
    /// (see [`config_file`]); a config file problem is returned as an error,
    /// a command-line problem as clap's error.
    pub fn try_parse_with_config(args: Vec<OsString>) -> std::result::Result<Cli, ParseError> {
        let args = config_file::expand(&Cli::command(), args).map_err(ParseError::Config)?;
        Cli::try_parse_from(args).map_err(ParseError::Clap)
    }
}

/// Why [`Cli::try_parse_with_config`] failed.
#[derive(Debug)]
pub enum ParseError {
    /// The config file is missing, unreadable or invalid.
    Config(crate::Error),
    /// The command line (with the file's settings) is invalid, or help/version was asked for.
    Clap(clap::Error),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Gen(a) => gen::run(a),
        Command::Produce(a) => produce::run(a),
        Command::Consume(a) => consume::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Provision(a) => provision::run(a),
        Command::Status(a) => status::run(a),
        Command::Dlq(a) => dlq::run(a),
        Command::Completions(a) => completions::run_completions(a),
        Command::Man(a) => completions::run_man(a),
        Command::Local(a) => local::run(a),
    }
}
