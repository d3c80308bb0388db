//! The README cannot rot: its two first commands exist and are what CI runs, and every `lake`
//! command line in its shell blocks names a real subcommand with flags that subcommand has.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The lines of the README's ```sh blocks.
fn shell_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("```") {
            inside = line == "```sh";
            continue;
        }
        if inside {
            lines.push(line.to_string());
        }
    }
    lines
}

#[test]
fn the_first_two_commands_are_the_demo_and_the_tests_and_ci_runs_the_tests() {
    let text = readme();
    let first: Vec<String> = shell_lines(&text).into_iter().take(2).collect();
    assert!(first[0].starts_with("scripts/demo.sh"), "{first:?}");
    assert!(first[1].starts_with("scripts/test.sh"), "{first:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in ["scripts/demo.sh", "scripts/test.sh", ".ci/run"] {
        let mode = std::fs::metadata(root.join(script))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec scripts/test.sh"),
        "{ci}"
    );
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    // The binary it runs is the one it builds: the demo profile's.
    assert!(demo.contains("cargo build --profile demo "), "{demo}");
    assert!(demo.contains("/demo/lake\" demo \"$@\""), "{demo}");
}

#[test]
fn every_lake_command_in_the_readme_exists_with_its_flags() {
    let mut checked = 0;
    for line in shell_lines(&readme()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "lake") else {
            continue;
        };
        let Some(sub) = words.get(at + 1) else {
            continue;
        };
        let help = lake().args([sub, "--help"]).output().unwrap();
        assert!(
            help.status.success(),
            "README: `lake {sub}` is not a command ({line})"
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words[at + 2..].iter().take_while(|w| !w.starts_with('#')) {
            let flag = flag
                .trim_start_matches('[')
                .split(['=', ']'])
                .next()
                .unwrap_or_default();
            if flag.starts_with("--") && flag.len() > 2 {
                assert!(
                    help.contains(flag),
                    "README: `lake {sub}` has no {flag} ({line})"
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} lake commands found in the README"
    );
}
