// SPDX-License-Identifier: MPL-2.0
//! The examples work: the CLI prints JSON per window, the Python script reads the messages.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>, where cargo put the plugin and the examples for this test run.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn speech() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/speech__librispeech__3.wav")
}

/// Runs `cmd`, requires success (showing its stderr otherwise) and returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cli_prints_one_json_object_per_window() {
    let cli = target_dir().join("examples/tag");
    assert!(
        cli.exists(),
        "{} (built by `cargo test --all-targets`)",
        cli.display()
    );
    let stdout = run_ok(Command::new(&cli).arg(speech()).arg("top-k=3"));
    let windows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(windows.len() >= 5);
    for (k, w) in windows.iter().enumerate() {
        assert_eq!(w["window"], k);
        assert!(w["labels"].as_array().unwrap().len() <= 3);
    }
    let speech_first = windows
        .iter()
        .filter(|w| w["labels"][0] == "Speech")
        .count();
    assert!(
        speech_first * 10 >= windows.len() * 9,
        "{speech_first} of {} windows say Speech first",
        windows.len()
    );

    let missing = Command::new(&cli).arg("/nonexistent.wav").output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.wav"));
}

fn run_python_example(extra: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/read_messages.py");
    run_ok(
        Command::new("/usr/bin/python3")
            .arg(script)
            .args(extra)
            .arg(speech())
            .env("GST_PLUGIN_PATH", target_dir()),
    )
}

#[test]
fn the_python_example_reads_the_messages_and_the_meta() {
    let messages = run_python_example(&[]);
    assert!(messages.lines().count() >= 5, "{messages}");
    assert!(messages.lines().all(|l| l.contains(" s  ")), "{messages}");
    assert!(messages.contains("Speech"), "{messages}");
    // The meta on the buffers carries the same results as the messages, except the window
    // padded at EOS: no buffer follows it to carry it (README, "Messages and metadata").
    let meta = run_python_example(&["--meta"]);
    let (messages, meta): (Vec<&str>, Vec<&str>) =
        (messages.lines().collect(), meta.lines().collect());
    assert_eq!(meta.len() + 1, messages.len());
    assert_eq!(meta[..], messages[..meta.len()]);
}
