//! `velostream gen`: write a synthetic NYC yellow-taxi data set.

use std::path::PathBuf;

use crate::gen::{generate, GenConfig, DEFAULT_ROW_GROUP_ROWS};
use crate::progress::Progress;

/// Arguments of `velostream gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Total number of rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Output directory (created if missing); files are OUT/taxi-NNNNN.parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of files the rows are split across.
    #[arg(long, default_value_t = 1)]
    pub files: usize,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = DEFAULT_ROW_GROUP_ROWS)]
    pub row_group_rows: usize,
    /// Random seed; the same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl GenArgs {
    /// The generator configuration these arguments describe.
    pub fn config(&self) -> GenConfig {
        GenConfig {
            rows: self.rows,
            out: self.out.clone(),
            files: self.files,
            row_group_rows: self.row_group_rows,
            seed: self.seed,
        }
    }
}

/// Generates the data set and prints a one-line summary.
pub fn run(args: GenArgs) -> crate::Result<()> {
    let cfg = args.config();
    let progress = Progress::new("gen", Some(cfg.rows));
    let summary = generate(&cfg, &progress)?;
    progress.finish();
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    println!(
        "generated {} rows in {} file(s) under {}: {:.1} MB ({:.1} bytes/row) in {:.2}s ({:.0} rows/s)",
        summary.rows,
        summary.files.len(),
        cfg.out.display(),
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / summary.rows.max(1) as f64,
        secs,
        summary.rows as f64 / secs,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        gen: GenArgs,
    }

    #[test]
    fn defaults_and_overrides() {
        let cmd = Cmd::try_parse_from(["gen", "--out", "data/taxi"]).expect("parse");
        let cfg = cmd.gen.config();
        assert_eq!(
            (cfg.rows, cfg.files, cfg.row_group_rows, cfg.seed),
            (1_000_000, 1, DEFAULT_ROW_GROUP_ROWS, 42)
        );
        assert_eq!(cfg.out, PathBuf::from("data/taxi"));
        let cmd = Cmd::try_parse_from([
            "gen",
            "--rows",
            "5000",
            "--out",
            "o",
            "--files",
            "3",
            "--row-group-rows",
            "100",
            "--seed",
            "7",
        ])
        .expect("parse");
        let cfg = cmd.gen.config();
        assert_eq!(
            (cfg.rows, cfg.files, cfg.row_group_rows, cfg.seed),
            (5000, 3, 100, 7)
        );
        assert!(Cmd::try_parse_from(["gen"]).is_err(), "--out is required");
    }
}
