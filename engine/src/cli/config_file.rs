//! `--config FILE` (or `VELOSTREAM_CONFIG`): default flag values from a TOML file.
//!
//! Keys are the long flag names of the subcommand (`brokers`,
//! `clickhouse-password`, `kafka-option = ["linger.ms=5"]`, ...; aliases
//! work too). Top-level keys apply to every subcommand that has that flag; a
//! `[produce]`, `[consume]`, `[bench]` or `[gen]` table applies to that
//! subcommand only and overrides top-level keys.
//!
//! Precedence: command-line flags > environment variables > config file >
//! built-in defaults. The file is turned into command-line arguments placed
//! right after the subcommand name, and only for flags that are neither on the
//! command line nor set through their environment variable, so clap still
//! parses and validates everything. Each value is also checked up front with
//! the flag's own parser so that a bad value names the file and the key.
//! Unknown keys are errors (with a suggestion); values are never echoed for
//! secret flags (those whose environment value is hidden).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

use crate::{Error, Result};

/// Name of the global flag and its environment variable.
pub const FLAG: &str = "config";
/// Environment variable naming the config file.
pub const ENV: &str = "VELOSTREAM_CONFIG";

/// Returns `args` (program name first) with the settings of the config file
/// inserted, or unchanged when no config file is given.
pub fn expand(root: &Command, args: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
    expand_with(root, args, &path, &text)
}

/// [`expand`] with the file's text given.
/// Long: three passes over the same clap metadata (check every key, merge top-level and section keys, place them around the subcommand).
pub fn expand_with(
    root: &Command,
    args: Vec<OsString>,
    path: &Path,
    text: &str,
) -> Result<Vec<OsString>> {
    let file = path.display().to_string();
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::Config(format!("config file {file}: {e}")))?;
    let subcommands: Vec<&Command> = root.get_subcommands().collect();
    let globals: Vec<&Arg> = root.get_arguments().filter(|a| a.is_global_set()).collect();

    // Check every key of the file, whatever subcommand runs.
    for (key, value) in &table {
        if let toml::Value::Table(section) = value {
            let Some(sub) = subcommands.iter().find(|s| s.get_name() == key) else {
                return Err(unknown(
                    &file,
                    key,
                    "section",
                    subcommands.iter().map(|s| s.get_name()),
                ));
            };
            for skey in section.keys() {
                if find_arg(sub, &globals, skey).is_none() {
                    let names = long_names(sub).chain(globals.iter().filter_map(|a| a.get_long()));
                    return Err(unknown(&file, &format!("{key}.{skey}"), "key", names));
                }
            }
        } else if !subcommands
            .iter()
            .any(|s| find_arg(s, &globals, key).is_some())
        {
            let names = subcommands
                .iter()
                .flat_map(|s| long_names(s))
                .chain(globals.iter().filter_map(|a| a.get_long()));
            return Err(unknown(&file, key, "key", names));
        }
    }

    let Some((sub_index, sub)) = find_subcommand(root, &args) else {
        return Ok(args);
    };
    // Effective settings: top-level keys, then the subcommand's section.
    let mut settings: Vec<(String, &toml::Value)> = table
        .iter()
        .filter(|(_, v)| !v.is_table())
        .map(|(k, v)| (k.clone(), v))
        .collect();
    if let Some(toml::Value::Table(section)) = table.get(sub.get_name()) {
        for (k, v) in section {
            settings.retain(|(key, _)| {
                find_arg(sub, &globals, key).map(Arg::get_id)
                    != find_arg(sub, &globals, k).map(Arg::get_id)
            });
            settings.push((format!("{}.{k}", sub.get_name()), v));
        }
    }

    let user_args = &args[1..];
    let mut before_sub = Vec::new();
    let mut after_sub = Vec::new();
    for (key, value) in settings {
        let bare = key.rsplit('.').next().unwrap_or(&key);
        let Some(arg) = find_arg(sub, &globals, bare) else {
            continue; // a top-level key of another subcommand
        };
        if arg.get_long() == Some(FLAG) {
            return Err(Error::Config(format!(
                "config file {file}: key `{key}`: a config file cannot name another config file"
            )));
        }
        if on_command_line(arg, user_args) || set_in_env(arg) {
            continue;
        }
        let values = to_args(arg, &file, &key, value)?;
        if arg.is_global_set() {
            before_sub.extend(values);
        } else {
            after_sub.extend(values);
        }
    }
    let mut out = Vec::with_capacity(args.len() + before_sub.len() + after_sub.len());
    out.extend_from_slice(&args[..sub_index]);
    out.extend(before_sub.into_iter().map(OsString::from));
    out.push(args[sub_index].clone());
    out.extend(after_sub.into_iter().map(OsString::from));
    out.extend_from_slice(&args[sub_index + 1..]);
    Ok(out)
}

/// `--config FILE` / `--config=FILE` on the command line (before any `--`),
/// else `VELOSTREAM_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{FLAG}");
    let prefix = format!("--{FLAG}=");
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == flag {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = s.strip_prefix(&prefix) {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Position and definition of the subcommand named in `args`: the first
/// token that is not a global flag or its value.
fn find_subcommand<'a>(root: &'a Command, args: &[OsString]) -> Option<(usize, &'a Command)> {
    let mut i = 1;
    while i < args.len() {
        let s = args[i].to_string_lossy();
        if let Some(long) = s.strip_prefix("--") {
            let takes_value = root
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            i += if takes_value { 2 } else { 1 };
            continue;
        }
        if s.starts_with('-') {
            i += 1;
            continue;
        }
        return root
            .get_subcommands()
            .find(|c| c.get_name() == s || c.get_all_aliases().any(|a| a == s))
            .map(|c| (i, c));
    }
    None
}

/// The flag of `sub` (or a global flag) whose long name or alias is `key`.
fn find_arg<'a>(sub: &'a Command, globals: &[&'a Arg], key: &str) -> Option<&'a Arg> {
    let matches = |a: &&Arg| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|v| v.contains(&key))
    };
    sub.get_arguments()
        .filter(|a| a.get_long().is_some())
        .find(matches)
        .or_else(|| globals.iter().copied().find(matches))
}

fn long_names(sub: &Command) -> impl Iterator<Item = &str> {
    sub.get_arguments().filter_map(|a| a.get_long())
}

fn on_command_line(arg: &Arg, args: &[OsString]) -> bool {
    let mut names: Vec<String> = arg
        .get_long()
        .into_iter()
        .map(|l| format!("--{l}"))
        .collect();
    if let Some(aliases) = arg.get_all_aliases() {
        names.extend(aliases.into_iter().map(|a| format!("--{a}")));
    }
    let short = arg.get_short().map(|c| format!("-{c}"));
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|s| s != "--")
        .any(|s| {
            names
                .iter()
                .any(|n| s == n.as_str() || s.starts_with(&format!("{n}=")))
                || short
                    .as_ref()
                    .is_some_and(|sh| !s.starts_with("--") && s.starts_with(sh.as_str()))
        })
}

fn set_in_env(arg: &Arg) -> bool {
    arg.get_env()
        .and_then(std::env::var_os)
        .is_some_and(|v| !v.is_empty())
}

/// A secret flag: its environment value is hidden in `--help`.
fn is_secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set()
}

/// The command-line arguments for one setting, each value checked with the
/// flag's own parser.
fn to_args(arg: &Arg, file: &str, key: &str, value: &toml::Value) -> Result<Vec<String>> {
    let long = arg.get_long().expect("config keys map to long flags");
    let wrong = |what: &str| Error::Config(format!("config file {file}: key `{key}`: {what}"));
    match arg.get_action() {
        ArgAction::SetTrue => {
            return match value {
                toml::Value::Boolean(true) => Ok(vec![format!("--{long}")]),
                toml::Value::Boolean(false) => Ok(Vec::new()),
                other => Err(wrong(&format!(
                    "expected true or false, found a {}",
                    other.type_str()
                ))),
            };
        }
        ArgAction::SetFalse | ArgAction::Count | ArgAction::Help | ArgAction::Version => {
            return Err(wrong("this flag cannot be set from a config file"));
        }
        _ => {}
    }
    let many = matches!(arg.get_action(), ArgAction::Append);
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(items) if many => items.iter().collect(),
        toml::Value::Array(_) => {
            return Err(wrong("expected a single value, found an array"));
        }
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let text = match item {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(wrong(&format!(
                    "expected a string or a number, found a {}",
                    other.type_str()
                )))
            }
        };
        if let Err(e) = check_value(arg, long, &text) {
            let detail = if is_secret(arg) {
                "invalid value".to_string()
            } else {
                clap_message(&e)
            };
            return Err(wrong(&detail));
        }
        out.push(format!("--{long}={text}"));
    }
    Ok(out)
}

/// Parses `text` with the flag's own value parser (and case rule) in a
/// one-flag command, so that bad values are caught before the real parse.
fn check_value(arg: &Arg, long: &str, text: &str) -> std::result::Result<(), clap::Error> {
    let probe = arg
        .clone()
        .required(false)
        .global(false)
        .allow_hyphen_values(true)
        .action(ArgAction::Set);
    Command::new("velostream")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{long}={text}")])
        .map(|_| ())
}

/// The first line of a clap error without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

fn unknown<'a>(file: &str, key: &str, what: &str, names: impl Iterator<Item = &'a str>) -> Error {
    let bare = key.rsplit('.').next().unwrap_or(key);
    let best = names
        .map(|n| (levenshtein(bare, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min();
    let hint = best
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Error::Config(format!("config file {file}: unknown {what} `{key}`{hint}"))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Sub};
    use clap::{CommandFactory, Parser};

    fn args(v: &[&str]) -> Vec<OsString> {
        std::iter::once("velostream")
            .chain(v.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn parse(file: &str, cmdline: &[&str]) -> Result<Cli> {
        let expanded = expand_with(
            &Cli::command(),
            args(cmdline),
            Path::new("/etc/vs.toml"),
            file,
        )?;
        Cli::try_parse_from(expanded).map_err(|e| Error::Config(e.to_string()))
    }

    fn consume(cli: Cli) -> crate::cli::consume::ConsumeArgs {
        match cli.command {
            Sub::Consume(c) => c,
            other => panic!("not consume: {other:?}"),
        }
    }

    const FILE: &str = r#"
        brokers = "10.0.0.1:9092"
        topic = "from-file"
        clickhouse-url = "http://10.0.0.2:8123"
        clickhouse-password = "file-secret"
        kafka-option = ["linger.ms=5", "fetch.wait.max.ms=10"]
        log = "info"
        [consume]
        topic = "consume-topic"
        insert-rows = 1000
        create-table = true
        kafka-ssl-key-password = "key-pw"
    "#;

    #[test]
    fn file_supplies_flags_and_sections_override_top_level() {
        let cli = parse(FILE, &["consume", "--table", "t"]).unwrap();
        assert_eq!(cli.log, "info");
        let c = consume(cli);
        assert_eq!(c.kafka.brokers, "10.0.0.1:9092");
        assert_eq!(c.topic, "consume-topic");
        assert_eq!(c.clickhouse.clickhouse_url, ["http://10.0.0.2:8123"]);
        assert_eq!(
            c.clickhouse.clickhouse_password.as_deref(),
            Some("file-secret")
        );
        assert_eq!(c.kafka.ssl_key_password.as_deref(), Some("key-pw"));
        assert_eq!(c.kafka.options, vec!["linger.ms=5", "fetch.wait.max.ms=10"]);
        assert_eq!(c.insert_rows, 1000);
        assert!(c.create_table);
    }

    #[test]
    fn command_line_flags_win_over_the_file() {
        let c = consume(
            parse(
                FILE,
                &[
                    "--log",
                    "debug",
                    "consume",
                    "--table",
                    "t",
                    "--brokers=b:1",
                    "--insert-rows",
                    "7",
                    "-Xa=b",
                ],
            )
            .unwrap(),
        );
        assert_eq!(c.kafka.brokers, "b:1");
        assert_eq!(c.insert_rows, 7);
        assert_eq!(c.kafka.options, vec!["a=b"]);
        // Aliases count as given too.
        let c = consume(
            parse(
                "kafka-ssl-ca-location = \"/file/ca.pem\"\nbrokers = \"b:1\"\ntopic = \"t\"\nclickhouse-url = \"http://h:1\"",
                &["consume", "--table", "t", "--kafka-ssl-ca-location", "/cli/ca.pem"],
            )
            .unwrap(),
        );
        assert_eq!(c.kafka.ssl_ca_location.as_deref(), Some("/cli/ca.pem"));
    }

    #[test]
    fn unknown_keys_and_sections_are_named_with_a_suggestion() {
        let err = parse("brokres = \"b:1\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/vs.toml") && err.contains("`brokres`"),
            "{err}"
        );
        assert!(err.contains("did you mean `brokers`"), "{err}");
        let err = parse("[consume]\ntopik = \"x\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`consume.topik`") && err.contains("`topic`"),
            "{err}"
        );
        let err = parse("[consumer]\ntopic = \"x\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown section `consumer`") && err.contains("`consume`"),
            "{err}"
        );
        // A key of another subcommand is fine at top level, not in a section.
        assert!(parse("rows = 5\n[gen]\nout = \"x\"", &["gen", "--out", "y"]).is_ok());
        assert!(parse("[produce]\nrows = 5", &["gen"]).is_err());
    }

    #[test]
    fn wrong_types_name_the_file_and_key_without_echoing_secrets() {
        let err = parse("insert-rows = \"many\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/vs.toml") && err.contains("`insert-rows`"),
            "{err}"
        );
        let err = parse("create-table = \"yes\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`create-table`") && err.contains("true or false"),
            "{err}"
        );
        let err = parse("brokers = [\"a\", \"b\"]", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`brokers`") && err.contains("single value"),
            "{err}"
        );
        let err = parse("clickhouse-password = true", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`clickhouse-password`"), "{err}");
        let err = parse("security-protocol = \"tls\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`security-protocol`") && err.contains("tls"),
            "{err}"
        );
        let err = parse("brokers = ", &["consume"]).unwrap_err().to_string();
        assert!(err.contains("/etc/vs.toml"), "{err}");
        let err = parse("config = \"other.toml\"", &["consume"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`config`"), "{err}");
    }

    #[test]
    fn finds_the_config_path_and_subcommand() {
        assert_eq!(
            config_path(&args(&["--config", "a.toml", "gen"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["gen", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        let root = Cli::command();
        let (i, sub) =
            find_subcommand(&root, &args(&["--log", "info", "--config", "x", "consume"])).unwrap();
        assert_eq!((i, sub.get_name()), (5, "consume"));
        assert!(find_subcommand(&root, &args(&["--help"])).is_none());
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("brokres", "brokers"), 2);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
