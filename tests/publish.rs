// SPDX-License-Identifier: MPL-2.0
//! `audiotagpublish` against a real broker: Debian's mosquitto on a free port of 127.0.0.1,
//! read by its own `mosquitto_sub`, with real audio through `audiotagger`. The payloads are
//! checked against the tagger's bus messages; a broker stopped for 10 s mid-stream loses
//! nothing; passwords (MQTT 3.1.1 and 5) and TLS certificates (made here with openssl) are
//! checked both ways.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::{Broker, Scratch, program};

use gst::prelude::*;
use serde_json::Value;

/// `mosquitto_sub` on every topic at QoS 1 with a persistent session, so that what is
/// published while it reconnects waits for it at the broker. Lines are "topic payload".
/// What a subscriber publishes to itself to know that it is subscribed.
const PROBE_TOPIC: &str = "audiotagger-test/probe";

struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Subscriber {
    fn start(port: u16, extra: &[&str]) -> Subscriber {
        Subscriber::start_as(&format!("test-sub-{port}"), port, extra)
    }

    fn start_as(id: &str, port: u16, extra: &[&str]) -> Subscriber {
        let port = port.to_string();
        let broker = ["-h", "127.0.0.1", "-p", port.as_str()];
        let mut child = Command::new(program("mosquitto_sub"))
            .args(broker)
            .args(["-t", "#", "-v", "-q", "1", "-c", "-i", id])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let probed = Arc::new(Mutex::new(false));
        let out = BufReader::new(child.stdout.take().unwrap());
        let (sink, seen) = (lines.clone(), probed.clone());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let (topic, payload) = line.split_once(' ').unwrap();
                if topic == PROBE_TOPIC {
                    *seen.lock().unwrap() = true;
                    continue;
                }
                let json = serde_json::from_str(payload).unwrap();
                sink.lock().unwrap().push((topic.to_string(), json));
            }
        });
        // Subscribed once a probe comes back to it: on a loaded machine the client may take
        // seconds to connect, and whatever is published before that is not its to receive.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !*probed.lock().unwrap() {
            assert!(
                Instant::now() < deadline,
                "mosquitto_sub never received its probe"
            );
            let _ = Command::new(program("mosquitto_pub"))
                .args(broker)
                .args(["-t", PROBE_TOPIC, "-m", "{}"])
                .args(extra)
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
        Subscriber { child, lines }
    }

    /// Waits until `n` messages came (at most `timeout`) and returns all so far.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.lines.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn audio(name: &str) -> String {
    common::shared_audio().join(name).display().to_string()
}

/// Runs `description` to EOS; returns the `audiotagger-event` bus messages and any errors.
fn run(description: &str) -> (Vec<gst::Structure>, Vec<String>) {
    common::init();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_property("name", "site1");
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger-event") {
                    events.push(s.to_owned());
                }
            }
            gst::MessageView::Error(e) => {
                errors.push(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (events, errors)
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ns(s: &gst::StructureRef, field: &str) -> Value {
    match s.get::<u64>(field).unwrap() {
        u64::MAX => Value::Null,
        t => t.into(),
    }
}

#[test]
fn events_reach_the_broker_with_the_taggers_fields_on_their_groups_topics() {
    let dir = Scratch::new("events");
    let broker = Broker::start(&dir, "allow_anonymous true");
    let sub = Subscriber::start(broker.port, &[]);
    let (events, errors) = run(&format!(
        "filesrc location={} ! decodebin ! audioconvert ! audiotagger name=tagger watch=gunshot,speech \
         ! queue ! tee name=t ! queue ! audiotagpublish name=pub broker=mqtt://127.0.0.1:{} \
         topic=site1/cam3/{{kind}}/{{group}}/{{event}} retain=true ! fakesink t. ! queue ! fakesink",
        audio("gunshot__freesound__1.wav"),
        broker.port
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        events.len() >= 2,
        "the real gunshot starts and stops an event"
    );
    let got = sub.wait_for(events.len(), Duration::from_secs(10));
    assert_eq!(got.len(), events.len(), "one message per event: {got:?}");
    for (s, (topic, json)) in events.iter().zip(&got) {
        let (phase, group) = (
            s.get::<&str>("event").unwrap(),
            s.get::<&str>("group").unwrap(),
        );
        assert_eq!(topic, &format!("site1/cam3/event/{group}/{phase}"));
        assert_eq!(json["schema"], "audiotagger/1");
        assert_eq!(json["kind"], "event");
        assert_eq!(json["event"], phase);
        assert_eq!(json["group"], group);
        assert_eq!(json["element"], "tagger");
        assert_eq!(json["publisher"], "pub");
        assert_eq!(json["pipeline"], "site1");
        for field in ["timestamp", "stream-time", "running-time", "peak-timestamp"] {
            assert_eq!(json[field], ns(s, field), "{field}");
        }
        let labels: Vec<Value> = common::strings(s, "labels")
            .into_iter()
            .map(Value::from)
            .collect();
        assert_eq!(json["labels"], Value::Array(labels));
        let scores: Vec<Value> = common::floats(s, "scores")
            .into_iter()
            .map(Value::from)
            .collect();
        assert_eq!(json["scores"], Value::Array(scores));
        assert!(json["wallclock"].as_str().unwrap().ends_with('Z'));
    }
    let seqs: Vec<u64> = got
        .iter()
        .map(|(_, j)| j["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    assert!(
        got.iter()
            .any(|(t, _)| t == "site1/cam3/event/gunshot/start"),
        "{got:?}"
    );
    // retain=true: a subscriber that comes later gets the last message of each topic.
    let topics: std::collections::HashSet<&String> = got.iter().map(|(t, _)| t).collect();
    let late = Subscriber::start_as("late", broker.port, &[]);
    let retained = late.wait_for(topics.len(), Duration::from_secs(10));
    assert_eq!(retained.len(), topics.len(), "{retained:?}");
    for (topic, json) in &retained {
        let last = got.iter().rev().find(|(t, _)| t == topic).unwrap();
        assert_eq!(json, &last.1);
    }
}

/// The stream plays in real time in live mode (results go downstream from the inference
/// threads' reports); the broker is stopped 5 s in and started again 10 s later.
#[test]
fn a_broker_stopped_for_ten_seconds_mid_stream_loses_nothing_and_keeps_the_order() {
    let dir = Scratch::new("restart");
    let mut broker = Broker::start(&dir, "allow_anonymous true");
    let sub = Subscriber::start(broker.port, &[]);
    let file = dir.path("published.jsonl");
    common::init();
    let names = common::long_files();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! audioconvert ! audiotagger mode=live watch=speech,music \
         ! audiotagpublish broker=mqtt://127.0.0.1:{} publish=all location={} \
         flush-timeout=20000000000 ! fakesink sync=true",
        names[0].display(),
        broker.port,
        file.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let started = Instant::now();
    let at = |s: u64| {
        let t = Duration::from_secs(s).saturating_sub(started.elapsed());
        std::thread::sleep(t);
    };
    at(5);
    broker.stop();
    at(15);
    broker.restart();
    at(25);
    pipeline.send_event(gst::event::Eos::new());
    let mut warnings = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Cannot reach the MQTT broker")),
        "the outage is reported: {warnings:?}"
    );

    let published = json_lines(&file);
    // 25 s of audio at the 0.48 s hop: about 50 windows, of which some 20 while it was down.
    assert!(published.len() >= 40, "{} published", published.len());
    let got = sub.wait_for(published.len(), Duration::from_secs(20));
    // At least once: a message in flight when the broker went away may come twice; the first
    // copies, in order, must be exactly what was published.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&Value> = got
        .iter()
        .map(|(_, j)| j)
        .filter(|j| seen.insert(j["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(firsts.len(), published.len(), "every message arrived");
    for (g, p) in firsts.iter().zip(&published) {
        assert_eq!(*g, p, "in order and as published");
    }
    assert!(
        got.len() - firsts.len() <= 32,
        "duplicates only of what was in flight"
    );
    assert!(published.iter().any(|j| j["kind"] == "event"));
    // The 10 s without a broker held what was published meanwhile.
    let windows: Vec<&Value> = published.iter().filter(|j| j["kind"] == "window").collect();
    let in_gap = windows
        .iter()
        .filter(|j| (6e9..14e9).contains(&j["timestamp"].as_f64().unwrap()))
        .count();
    assert!(in_gap >= 10, "{in_gap} windows from the outage");
}

fn openssl(dir: &Scratch, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for `cn` (with the SANs of 127.0.0.1 and localhost).
fn make_certificates(dir: &Scratch, ca: &str, leaves: &[&str]) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
    let subject = format!("/CN={ca}");
    let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
    args.extend([subject.as_str(), "-keyout", &key, "-out", &pem]);
    args.extend(ec);
    openssl(dir, &args);
    std::fs::write(
        dir.path("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    for cn in leaves {
        let subject = format!("/CN={cn}");
        let (key, csr, crt) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
        );
        let mut args = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
        args.extend(ec);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &pem,
                "-CAkey",
                &key_of(ca),
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
    }
}

fn key_of(name: &str) -> String {
    format!("{name}.key")
}

fn password_file(dir: &Scratch) -> PathBuf {
    let path = dir.path("passwords");
    let status = Command::new(program("mosquitto_passwd"))
        .args(["-c", "-b"])
        .arg(&path)
        .args(["camera", "s3cret"])
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn gunshot_publish(props: &str) -> (Vec<gst::Structure>, Vec<String>) {
    run(&format!(
        "filesrc location={} ! decodebin ! audioconvert ! audiotagger watch=gunshot \
         ! audiotagpublish {props} ! fakesink",
        audio("gunshot__freesound__1.wav")
    ))
}

#[test]
fn a_wrong_password_is_refused_with_an_error_naming_the_credentials_in_mqtt_3_and_5() {
    let dir = Scratch::new("password");
    let pw = password_file(&dir);
    let broker = Broker::start(
        &dir,
        &format!("allow_anonymous false\npassword_file {}", pw.display()),
    );
    let sub = Subscriber::start(broker.port, &["-u", "camera", "-P", "s3cret"]);
    let mut expected = 0;
    for protocol in ["3.1.1", "5"] {
        let url = format!(
            "broker=mqtt://127.0.0.1:{} protocol={protocol}",
            broker.port
        );
        // QoS 0 on a healthy local broker: sent once, and it all comes.
        let (events, errors) =
            gunshot_publish(&format!("{url} username=camera password=s3cret qos=0"));
        assert!(errors.is_empty(), "{protocol}: {errors:?}");
        expected += events.len();
        let got = sub.wait_for(expected, Duration::from_secs(10));
        assert_eq!(got.len(), expected, "{protocol}");

        let (_, errors) = gunshot_publish(&format!("{url} username=camera password=wrong"));
        assert_eq!(errors.len(), 1, "{protocol}: {errors:?}");
        assert!(errors[0].contains("refused the credentials"), "{errors:?}");
        assert!(errors[0].contains("username and password"), "{errors:?}");
    }
}

#[test]
fn tls_with_a_client_certificate_works_and_a_wrong_ca_is_refused() {
    let dir = Scratch::new("tls");
    make_certificates(&dir, "ca", &["server", "client", "subscriber"]);
    make_certificates(&dir, "otherca", &[]);
    let pw = password_file(&dir);
    let p = |name: &str| dir.path(name).display().to_string();
    let broker = Broker::start(
        &dir,
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
             allow_anonymous false\npassword_file {}",
            p("ca.pem"),
            p("server.pem"),
            p("server.key"),
            pw.display()
        ),
    );
    let sub = Subscriber::start(
        broker.port,
        &[
            "--cafile",
            &p("ca.pem"),
            "--cert",
            &p("subscriber.pem"),
            "--key",
            &p("subscriber.key"),
            "-u",
            "camera",
            "-P",
            "s3cret",
        ],
    );
    let tls = format!(
        "broker=mqtts://localhost:{} protocol=5 username=camera password=s3cret \
         tls-cert-file={} tls-key-file={}",
        broker.port,
        p("client.pem"),
        p("client.key")
    );
    let (events, errors) = gunshot_publish(&format!("{tls} tls-ca-file={}", p("ca.pem")));
    assert!(errors.is_empty(), "{errors:?}");
    let got = sub.wait_for(events.len(), Duration::from_secs(10));
    assert_eq!(got.len(), events.len());
    assert_eq!(got[0].1["group"], "gunshot");

    let (_, errors) = gunshot_publish(&format!("{tls} tls-ca-file={}", p("otherca.pem")));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("TLS"), "{errors:?}");
    assert!(errors[0].contains("tls-ca-file"), "{errors:?}");
}

#[test]
fn without_a_broker_results_go_to_a_json_lines_file_with_every_window() {
    let dir = Scratch::new("file");
    let file = dir.path("out.jsonl");
    common::init();
    let description = format!(
        "filesrc location={} ! decodebin ! audioconvert ! audiotagger watch=gunshot \
         ! audiotagpublish publish=all location={} ! fakesink",
        audio("gunshot__freesound__1.wav"),
        file.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut bus_results = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) => bus_results.extend(e.structure().map(|s| s.to_owned())),
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let lines = json_lines(&file);
    // One line per bus message, in the bus's order: windows and events interleaved as posted.
    assert_eq!(lines.len(), bus_results.len());
    for (line, s) in lines.iter().zip(&bus_results) {
        let kind = if s.name() == "audiotagger" {
            "window"
        } else {
            "event"
        };
        assert_eq!(line["kind"], kind);
        assert_eq!(line["timestamp"], ns(s, "timestamp"));
    }
    let windows = lines.iter().filter(|l| l["kind"] == "window").count();
    assert!(windows >= 8, "{windows} windows of a 4.3 s clip");
}

#[test]
fn configuration_errors_name_the_cause() {
    let src = "audiotestsrc num-buffers=10 ! audiotagpublish name=pub";
    let cases = [
        ("", "Nowhere to publish"),
        ("broker=http://x", "mqtt://"),
        ("broker=mqtt://127.0.0.1:1 topic=a/#", "wildcard"),
        ("broker=mqtt://127.0.0.1:1 topic=a/{colour}", "{kind}"),
        (
            "broker=mqtt://127.0.0.1:1 tls-ca-file=/nonexistent.pem",
            "mqtts://",
        ),
        (
            "broker=mqtts://127.0.0.1:1 tls-ca-file=/nonexistent.pem",
            "/nonexistent.pem",
        ),
        (
            "broker=mqtts://127.0.0.1:1 tls-cert-file=/a.pem",
            "tls-key-file",
        ),
        (
            "location=/nonexistent-dir/x.jsonl",
            "/nonexistent-dir/x.jsonl",
        ),
    ];
    for (props, needle) in cases {
        let (error, source) = common::expect_start_error(&format!("{src} {props} ! fakesink"));
        assert_eq!(source, "pub", "{props}");
        assert!(
            error.message().contains(needle),
            "{props}: {}",
            error.message()
        );
    }
}

/// A window result as `audiotagger` sends it in-band, for the harness tests.
fn window_event(tagger: &str, at_ms: u64) -> gst::Event {
    let s = gst::Structure::builder("audiotagger")
        .field("element", tagger)
        .field("timestamp", gst::ClockTime::from_mseconds(at_ms))
        .field("duration", gst::ClockTime::from_mseconds(975))
        .build();
    gst::event::CustomDownstream::builder(s).build()
}

#[test]
fn the_window_interval_keeps_one_window_per_tagger_per_interval_and_buffers_pass_untouched() {
    common::init();
    let dir = Scratch::new("interval");
    let file = dir.path("w.jsonl");
    let element = gst::ElementFactory::make("audiotagpublish")
        .property_from_str("publish", "all")
        .property("window-interval", 1_000_000_000u64)
        .property("location", file.display().to_string())
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(common::f32_mono_caps(16000));
    h.play();
    let bytes = common::noise_bytes(6400, 3);
    // Two taggers' windows every 0.48 s for 3 s, interleaved as a tee's merge might.
    for i in 0..7u64 {
        for tagger in ["a", "b"] {
            assert!(h.push_event(window_event(tagger, i * 480)));
        }
        let out = h
            .push_and_pull(gst::Buffer::from_slice(bytes.clone()))
            .unwrap();
        assert_eq!(out.map_readable().unwrap().as_slice(), &bytes[..]);
    }
    h.push_event(gst::event::Eos::new());
    let lines = json_lines(&file);
    let kept = |tagger: &str| -> Vec<u64> {
        lines
            .iter()
            .filter(|l| l["element"] == tagger)
            .map(|l| l["timestamp"].as_u64().unwrap() / 1_000_000)
            .collect()
    };
    // 0 kept; 480 and 960 are within 1 s of it; 1440 kept; then 2880.
    assert_eq!(kept("a"), [0, 1440, 2880]);
    assert_eq!(kept("b"), [0, 1440, 2880]);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..6).collect::<Vec<_>>());
}

#[test]
fn a_full_outbox_drops_window_results_never_events_and_says_so() {
    let dir = Scratch::new("full");
    let mut broker = Broker::start(&dir, "allow_anonymous true");
    let sub = Subscriber::start(broker.port, &[]);
    broker.stop();
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! audioconvert ! audiotagger watch=gunshot,speech \
         ! audiotagpublish name=pub broker=mqtt://127.0.0.1:{} publish=all outbox-size=4 \
         flush-timeout=30000000000 ! fakesink",
        audio("gunshot__freesound__1.wav"),
        broker.port
    ))
    .unwrap();
    let publisher = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("pub")
        .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    // The clip is through in well under 2 s; the element now waits at EOS for the broker.
    std::thread::sleep(Duration::from_secs(2));
    let dropped = publisher.property::<u64>("dropped");
    let pending = publisher.property::<u64>("pending");
    broker.restart();
    let (mut events, mut warnings) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) => events.extend(
                e.structure()
                    .filter(|s| s.name() == "audiotagger-event")
                    .map(|s| s.to_owned()),
            ),
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(dropped > 0, "a 4.3 s clip has more than 4 windows");
    assert!(
        warnings.iter().any(|w| w.contains("outbox is full")),
        "{warnings:?}"
    );
    let got = sub.wait_for(pending as usize, Duration::from_secs(10));
    assert_eq!(got.len() as u64, pending, "what was held arrives: {got:?}");
    let kinds = |k: &str| got.iter().filter(|(_, j)| j["kind"] == k).count();
    assert_eq!(kinds("event"), events.len(), "every event arrives");
    assert!(events.len() >= 2, "the gunshot starts and stops");
    assert!(kinds("window") <= 4);
    let seqs: Vec<u64> = got
        .iter()
        .map(|(_, j)| j["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
}
