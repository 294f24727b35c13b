//! The `velostream` binary: parse, set up logging, run, map errors to exit codes.

use velostream::cli::{self, Cli, ParseError};

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse_with_config(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Config(e)) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Every engine error's Display already names its cause.
            eprintln!("error: {e}");
            match e {
                velostream::Error::Interrupted(_) => std::process::ExitCode::from(130),
                velostream::Error::NotInstalled { .. } => std::process::ExitCode::from(3),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
