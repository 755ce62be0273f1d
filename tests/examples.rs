// SPDX-License-Identifier: MPL-2.0
//! The examples work: the CLI prints JSON per window, the Python script reads the messages, the
//! timeline draws a file and dumps the features the model is fed.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>, where cargo put the plugin and the examples for this test run.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The example binary `name`, which must have been built.
fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} (built by `cargo test --all-targets`)",
        path.display()
    );
    path
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
    let cli = example("tag");
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

#[test]
fn the_timeline_draws_a_file_and_dumps_what_the_model_is_fed() {
    let timeline = example("timeline");
    let dir = std::env::temp_dir().join(format!("audiotagger-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (png, npy) = (dir.join("speech.png"), dir.join("speech.npy"));
    // 16 kHz mono: the model's rate, so the independent reference needs no resampler.
    let stdout = run_ok(
        Command::new(&timeline)
            .arg(speech())
            .arg(&png)
            .args(["--top", "5", "--features"])
            .arg(&npy)
            .arg("watch=speech"),
    );
    let head = std::fs::read(&png).unwrap();
    assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        u32::from_be_bytes(head[16..20].try_into().unwrap()),
        1600,
        "width"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[1].starts_with("class Speech "), "{stdout}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("class ")).count(),
        5,
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("event speech from 0.")),
        "speech from the start: {stdout}"
    );

    // The dump against the numpy float64 reference of YAMNet's published front-end, which
    // shares no code with ours: every complete window, to the front-end parity bound.
    let check = r#"
import sys
import numpy as np
sys.path.insert(0, "models")
import yamnet_reference as ref
dump = np.load(sys.argv[1])
samples, rate = ref.load_wav(sys.argv[2])
assert rate == 16000 and samples.shape[1] == 1
expected = ref.patches(ref.log_mel(samples[:, 0]))
assert dump.dtype == np.float32 and dump.shape[1:] == (96, 64), dump.shape
# The element also pads the tail into one last window.
assert dump.shape[0] == expected.shape[0] + 1, (dump.shape, expected.shape)
worst = np.abs(dump[: len(expected)] - expected).max()
assert worst <= 1e-4, worst
print(len(dump), worst)
"#;
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = run_ok(
        Command::new(python)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-c", check])
            .arg(&npy)
            .arg(speech()),
    );
    assert!(!out.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();

    let usage = Command::new(&timeline).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: timeline"));
}
