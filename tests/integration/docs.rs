//! Every example in docs/ is valid: each TOML block is a manifest envoke accepts, each reference
//! in a table or code span parses (checked by `envoke check`, which reports `invalid` otherwise).

use serde_json::Value;

use crate::support::{Envoke, closed_address};

fn doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn toml_blocks(text: &str) -> Vec<String> {
    text.split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

fn references(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            let rest = span
                .strip_prefix("aws-sm://")
                .or_else(|| span.strip_prefix("vault://"));
            rest.is_some_and(|rest| !rest.is_empty()) && !span.contains('[')
        })
        .map(str::to_owned)
        .collect()
}

/// Runs `envoke check` against servers that do not answer: references must parse, and nothing
/// may be reported `invalid`.
fn assert_valid(manifest: &str) {
    let envoke = Envoke::new()
        .env("VAULT_ADDR", closed_address())
        .env("VAULT_TOKEN", "t")
        .env("AWS_ENDPOINT_URL", closed_address())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .manifest(manifest);
    let output = envoke.run(["check", "--format", "json"]);
    let report: Value = serde_json::from_str(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "manifest rejected:\n{manifest}\n--- stderr\n{}",
            output.stderr
        )
    });
    for row in report["variables"].as_array().unwrap() {
        assert_ne!(row["status"], "invalid", "{row}\nin:\n{manifest}");
    }
}

#[test]
fn every_manifest_example_is_accepted() {
    let mut text = doc("manifest.md")
        + &doc("references.md")
        + &doc("rotation.md")
        + &doc("authentication.md")
        + &doc("permissions.md");
    // The examples are manifests too.
    for entry in std::fs::read_dir(format!("{}/examples", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            text += &format!("```toml\n{}```\n", std::fs::read_to_string(path).unwrap());
        }
    }
    let blocks = toml_blocks(&text);
    assert!(blocks.len() >= 6, "found {} blocks", blocks.len());
    for block in blocks {
        assert_valid(&block);
    }
}

#[test]
fn every_reference_example_parses() {
    let text = doc("references.md") + &doc("manifest.md");
    let refs = references(&text);
    assert!(refs.len() >= 10, "found {refs:?}");
    let manifest: String = std::iter::once("[env]\n".to_owned())
        .chain(
            refs.iter()
                .enumerate()
                .map(|(i, r)| format!("R{i} = \"{r}\"\n")),
        )
        .collect();
    assert_valid(&manifest);
}

#[test]
fn every_test_security_md_names_exists() {
    let text =
        std::fs::read_to_string(format!("{}/SECURITY.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let named: Vec<(&str, &str)> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.split_once("::"))
        .filter(|(module, test)| {
            !module.is_empty()
                && module.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && test
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(named.len() >= 15, "found {named:?}");
    for (module, test) in named {
        let source = std::fs::read_to_string(format!(
            "{}/tests/integration/{module}.rs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_else(|_| {
            panic!("SECURITY.md names a test module `{module}` that does not exist")
        });
        assert!(
            source.contains(&format!("fn {test}()")),
            "SECURITY.md names {module}::{test}, which does not exist"
        );
    }
}

/// The Dockerfile snippets of README.md and docs/install.md cannot be built here (their base
/// images are not pulled), but examples/Dockerfile is, by the container tests: every line they
/// take from the release image, and their entrypoint, must be the tested example's.
#[test]
fn the_install_snippets_copy_what_the_built_example_copies() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/examples/Dockerfile")).unwrap();
    let example_lines: Vec<&str> = example.lines().collect();
    for page in ["README.md", "docs/install.md"] {
        let text = std::fs::read_to_string(format!("{root}/{page}")).unwrap();
        let snippets: Vec<&str> = text
            .split("```dockerfile\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap())
            .collect();
        assert!(!snippets.is_empty(), "{page} shows no Dockerfile");
        for line in snippets.iter().flat_map(|s| s.lines()) {
            if line.starts_with("COPY --from=envoke") {
                assert!(
                    example_lines.contains(&line),
                    "{page}: `{line}` is not in examples/Dockerfile, which the tests build"
                );
            }
            // The exec form the example uses, with or without the command after `--`.
            if let Some(entrypoint) = line.strip_prefix("ENTRYPOINT ") {
                let argv: Vec<String> = serde_json::from_str(entrypoint)
                    .unwrap_or_else(|_| panic!("{page}: `{line}` is not in exec form"));
                assert_eq!(argv[..3], ["envoke", "run", "--"], "{page}: `{line}`");
            }
        }
    }
}

/// The first fenced block of `language` after `heading` in `text`.
fn block_after(text: &str, heading: &str, language: &str) -> String {
    let from = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let fence = format!("```{language}\n");
    let start = text[from..].find(&fence).unwrap() + from + fence.len();
    let end = text[start..].find("```").unwrap() + start;
    text[start..end].to_owned()
}

#[test]
fn the_migration_guides_first_step_prints_what_it_shows() {
    let text = doc("migrating-from-dotenv.md");
    let dotenv = block_after(&text, "## 1. See what would move", "dotenv");
    let console = block_after(&text, "## 1. See what would move", "console");
    let mut lines = console.lines();
    let command = lines.next().unwrap().strip_prefix("$ envoke ").unwrap();
    let output = crate::support::Envoke::new()
        .file(".env", &dotenv)
        .run(command.split(' ').collect::<Vec<_>>());
    output.assert_code(0);
    let (notes, manifest): (Vec<&str>, Vec<&str>) =
        lines.partition(|line| line.starts_with("envoke: "));
    assert_eq!(output.stdout, manifest.join("\n") + "\n");
    let stderr: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(stderr, notes, "the notes, in order");
}

/// The demo's child prints a mask and the length of each value, never a part of it (its first
/// four characters were all of DB_PORT).
#[test]
fn the_demo_masks_whole_values() {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo")).unwrap();
    let line = demo
        .lines()
        .find(|line| line.contains("child sees"))
        .expect("the demo's child prints what it got");
    assert!(!line.contains("\"$value\""), "{line}");
    assert!(
        line.contains("****") && line.contains("${#value}"),
        "{line}"
    );
}
