//! Packaging that cannot be built here (no Docker engine) is still checked
//! for real: the Dockerfile's essentials against the compose file and the
//! binary's actual dynamic libraries, the compose `pipeline` profile
//! validates, and the generated shell completions and man page work.

use std::path::PathBuf;
use std::process::Command;

use crate::harness;

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

fn read(rel: &str) -> String {
    let p: PathBuf = harness::repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(harness::repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}; run {}", harness::INSTALL_COMMAND));
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The instructions of the Dockerfile's last stage.
fn runtime_stage(dockerfile: &str) -> Vec<String> {
    let mut stage = Vec::new();
    let mut line = String::new();
    for raw in dockerfile.lines() {
        let t = raw.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        line.push_str(t.trim_end_matches('\\'));
        line.push(' ');
        if t.ends_with('\\') {
            continue;
        }
        let instr = std::mem::take(&mut line);
        if instr.starts_with("FROM ") {
            stage.clear();
        }
        stage.push(instr.trim().to_string());
    }
    stage
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_matches_compose() {
    let dockerfile = read("Dockerfile");
    let froms = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(froms >= 2, "not a multi-stage build ({froms} FROM)");
    let stage = runtime_stage(&dockerfile);
    assert!(
        stage[0].starts_with("FROM debian:bookworm-slim"),
        "{stage:?}"
    );
    let user = stage
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as root: USER {user}");
    assert!(stage
        .iter()
        .any(|i| i == "ENTRYPOINT [\"/usr/local/bin/velostream\"]"));
    assert!(stage
        .iter()
        .any(|i| i.starts_with("COPY --from=build ") && i.ends_with(" /usr/local/bin/velostream")));
    let exposed: Vec<&str> = stage
        .iter()
        .filter_map(|i| i.strip_prefix("EXPOSE "))
        .flat_map(|p| p.split_whitespace())
        .collect();

    // The compose services use that image and those ports, and Prometheus scrapes them.
    let compose = run(
        "docker-compose",
        &[
            "-f",
            "infra/docker-compose.yml",
            "--profile",
            "pipeline",
            "config",
        ],
    );
    for (service, port) in [("consumer", "9465"), ("producer", "9464")] {
        assert!(exposed.contains(&port), "EXPOSE lacks {port}: {exposed:?}");
        let block: String = compose
            .split(&format!("\n  {service}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {service} service:\n{compose}"))
            .split("\n  ")
            .take_while(|_| true)
            .collect::<Vec<_>>()
            .join("\n  ");
        let block = block.split("\n  kafka").next().unwrap();
        assert!(block.contains("velostream:local"), "{service}: {block}");
        assert!(
            block.contains("pipeline"),
            "{service} not in the pipeline profile"
        );
        assert!(
            block.contains(&format!("--metrics-addr=0.0.0.0:{port}")),
            "{service}: {block}"
        );
    }
    assert!(compose.contains("dockerfile: Dockerfile"), "{compose}");
    let prom = read("infra/prometheus/prometheus.yml");
    assert!(prom.contains("\"producer:9464\"") && prom.contains("\"consumer:9465\""));
    run(
        "promtool",
        &["check", "config", "infra/prometheus/prometheus.yml"],
    );
}

#[test]
fn runtime_image_provides_every_library_the_binary_links() {
    let ldd = run("ldd", &[BIN]);
    let dockerfile = read("Dockerfile");
    let runtime = runtime_stage(&dockerfile).join("\n");
    for line in ldd.lines() {
        let lib = line.split_whitespace().next().unwrap_or("");
        let lib = lib.rsplit('/').next().unwrap();
        // Base image (debian:bookworm-slim): libc6, libgcc-s1, zlib1g, libstdc++6.
        let from_base = [
            "linux-vdso",
            "ld-linux",
            "libc.so",
            "libm.so",
            "libgcc_s",
            "libz.so",
            "libpthread",
            "libdl.so",
            "librt.so",
            "libstdc++",
        ];
        if from_base.iter().any(|b| lib.starts_with(b)) {
            continue;
        }
        let package = match lib {
            l if l.starts_with("libssl.so.3") || l.starts_with("libcrypto.so.3") => "libssl3",
            other => panic!("the binary links {other}, which the runtime image does not install"),
        };
        assert!(runtime.contains(package), "runtime stage lacks {package}");
    }
}

#[test]
fn bash_completion_sources_and_completes_subcommands() {
    let script = run(BIN, &["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("velostream.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "set -e; source {}; COMP_WORDS=(velostream sta); COMP_CWORD=1; COMP_LINE='velostream sta'; \
         COMP_POINT=${{#COMP_LINE}}; _velostream velostream sta velostream; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(velostream status --wait); COMP_CWORD=2; COMP_LINE='velostream status --wait'; \
         COMP_POINT=${{#COMP_LINE}}; _velostream velostream --wait status; echo \"${{COMPREPLY[*]}}\"",
        file.display()
    );
    let out = run("bash", &["-c", &probe]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("status"), "{out}");
    assert!(
        lines.next().unwrap_or("").contains("--wait-drained"),
        "{out}"
    );
    for shell in ["zsh", "fish"] {
        let s = run(BIN, &["completions", shell]);
        for sub in ["produce", "consume", "status", "provision", "verify", "man"] {
            assert!(s.contains(sub), "{shell} completion lacks {sub}");
        }
    }
}

#[test]
fn man_page_renders_with_every_subcommand_and_flag() {
    let page = run(BIN, &["man"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("velostream.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new("man")
        .args(["-l", file.to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap_or_else(|e| panic!("man: {e}; apt-get install man-db"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l: {stderr}");
    assert!(!stderr.contains("warning"), "roff warnings: {stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let help = run(BIN, &["--help"]);
    // Every subcommand listed by --help has its section, and its flags.
    let subs: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.starts_with("Options:"))
        // A subcommand's line is indented by two spaces; a description
        // wrapped onto the next line is indented further.
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .collect();
    assert!(subs.len() >= 9, "{subs:?}");
    for sub in subs {
        assert!(
            text.contains(&format!("VELOSTREAM {}", sub.to_uppercase())),
            "no section for {sub}"
        );
        // Visible aliases (`[alias: --kafka-…]`) are not man page entries.
        let sub_help: String = run(BIN, &[sub, "--help"])
            .split("[alias:")
            .enumerate()
            .map(|(i, part)| match part.split_once(']') {
                Some((_, rest)) if i > 0 => rest,
                _ => part,
            })
            .collect::<Vec<_>>()
            .join(" ");
        for flag in sub_help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 3)
            .map(|w| w.trim_end_matches([',', '.', '>', ')']))
            .map(|w| w.split(['=', '[', '<']).next().unwrap())
        {
            assert!(
                text.contains(flag),
                "{sub} {flag} missing from the man page"
            );
        }
    }
    // --out-dir writes the full page and one page per subcommand.
    let out_dir = dir.path().join("man1");
    run(BIN, &["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("velostream.1")).unwrap(),
        page
    );
    assert!(out_dir.join("velostream-status.1").exists());
}

#[test]
fn completions_and_man_into_a_closed_pipe_do_not_panic() {
    for args in [&["completions", "bash"][..], &["man"][..]] {
        // `velostream … | head -1`: the reader goes away after one line.
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // close the pipe before anything is written
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
    }
}
