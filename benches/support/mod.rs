// SPDX-License-Identifier: MPL-2.0
//! What the at-scale benches share: medians, WAV writing, features, bare ONNX Runtime runs,
//! timed pipelines and live streams.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstaudiotagger::frontend::{Frontend, FrontendConfig};
use gstaudiotagger::model::{ModelSession, Provider, SessionOptions};

pub const BUFFER_MS: u64 = 20;
/// Repeats of every throughput figure; the median is reported.
pub const ROUNDS: usize = 3;

/// `cargo test` runs the bench binaries without `--bench`; they then return at once.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The parts of a bench asked for by name after `--` (`cargo bench --bench scale -- live`):
/// every argument that is not a flag.
pub fn parts() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

pub fn write_wav(path: &Path, samples: &[f32], rate: u32, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// ../shared/audio/long as a broadcast chain has it: 48 kHz stereo (right channel 0.8×), as a
/// 16-bit WAV at `path`.
pub fn write_long_48k_stereo(path: &Path) {
    let stereo: Vec<f32> = crate::common::long_recordings(48000)
        .iter()
        .flat_map(|&s| [s, 0.8 * s])
        .collect();
    write_wav(path, &stereo, 48000, 2);
}

/// The log-mel patch of every complete window at YAMNet's hop.
pub fn features_of(audio: &[f32]) -> Vec<Vec<f32>> {
    let mut frontend = Frontend::new(FrontendConfig::yamnet(), 16000, 1).unwrap();
    let mut windows = Vec::new();
    frontend.push(audio, &mut windows);
    windows.into_iter().map(|w| w.features).collect()
}

/// Windows per second of `session` over `features` in batches of `batch`, exactly as given to
/// ONNX Runtime, after one warm-up batch. On a GPU the last batch is padded to the others'
/// size: a new batch size there costs far more than the run itself.
pub fn bare_ort(session: &mut ModelSession, batch: usize, features: &[Vec<f32>]) -> f64 {
    let pad = session.provider() != Provider::Cpu;
    let chunks: Vec<(Vec<f32>, usize)> = features
        .chunks(batch)
        .map(|c| {
            let mut flat = c.concat();
            let mut windows = c.len();
            if pad && windows < batch {
                flat.resize(flat.len() / windows * batch, 0.0);
                windows = batch;
            }
            (flat, windows)
        })
        .collect();
    session.run_exact(&chunks[0].0, chunks[0].1, false).unwrap();
    let started = Instant::now();
    for (chunk, windows) in &chunks {
        session.run_exact(chunk, *windows, false).unwrap();
    }
    features.len() as f64 / started.elapsed().as_secs_f64()
}

/// [`bare_ort`] on a session loaded for the purpose.
pub fn bare_ort_loaded(
    model: &Path,
    options: &SessionOptions,
    batch: usize,
    features: &[Vec<f32>],
) -> f64 {
    let mut session = ModelSession::load(model, options).unwrap();
    assert_eq!(
        session.provider(),
        options.provider,
        "{:?}",
        session.fallback()
    );
    bare_ort(&mut session, batch, features)
}

/// Launches `n` copies of `filesrc location=input ! decodebin ! audioconvert ! audiotagger
/// model=model {properties} ! fakesink sync=false` (no `model=` for `None`: the default model),
/// prerolls them, then plays them all at once.
/// Returns (windows reported by all, wall seconds from PLAYING to the last EOS).
pub fn files_at_once(
    input: &Path,
    model: Option<&Path>,
    properties: &str,
    n: usize,
) -> (usize, f64) {
    let model = model
        .map(|m| format!("model=\"{}\"", m.display()))
        .unwrap_or_default();
    let pipelines: Vec<gst::Element> = (0..n)
        .map(|_| {
            gst::parse::launch(&format!(
                "filesrc location=\"{}\" ! decodebin ! audioconvert ! audiotagger {model} \
                 {properties} ! fakesink sync=false",
                input.display(),
            ))
            .unwrap()
        })
        .collect();
    // READY → PAUSED loads the model and prerolls; only the streams themselves are timed.
    for p in &pipelines {
        p.set_state(gst::State::Paused).unwrap();
    }
    for p in &pipelines {
        let _ = p.state(gst::ClockTime::from_seconds(120));
    }
    let started = Instant::now();
    for p in &pipelines {
        p.set_state(gst::State::Playing).unwrap();
    }
    let windows: usize = std::thread::scope(|s| {
        let waiters: Vec<_> = pipelines
            .iter()
            .map(|p| {
                let bus = p.bus().unwrap();
                s.spawn(move || {
                    crate::common::window_messages(&bus, gst::ClockTime::NONE, "files at once")
                        .len()
                })
            })
            .collect();
        waiters.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let wall = started.elapsed().as_secs_f64();
    for p in &pipelines {
        p.set_state(gst::State::Null).unwrap();
    }
    (windows, wall)
}

/// Wall seconds (on one core: the pipeline has one streaming thread) of `filesrc
/// location=input ! decodebin ! audioconvert ! fakesink sync=false` from PLAYING to EOS after a
/// preroll, median of [`ROUNDS`]: reading and parsing the file, which every end-to-end run pays.
pub fn decode_only(input: &Path) -> f64 {
    let times: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let p = gst::parse::launch(&format!(
                "filesrc location=\"{}\" ! decodebin ! audioconvert ! fakesink sync=false",
                input.display()
            ))
            .unwrap();
            p.set_state(gst::State::Paused).unwrap();
            let _ = p.state(gst::ClockTime::from_seconds(60));
            let started = Instant::now();
            p.set_state(gst::State::Playing).unwrap();
            let end = p.bus().unwrap().timed_pop_filtered(
                gst::ClockTime::from_seconds(300),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
            let wall = started.elapsed().as_secs_f64();
            assert!(
                matches!(
                    end.as_ref().map(|m| m.view()),
                    Some(gst::MessageView::Eos(_))
                ),
                "decoding {} did not reach EOS: {end:?}",
                input.display()
            );
            p.set_state(gst::State::Null).unwrap();
            wall
        })
        .collect();
    median(&times)
}

pub struct LiveResult {
    pub cpu_cores: f64,
    pub windows: usize,
    pub skipped: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Growth of the process's resident memory from before the pipelines were built to the
    /// end of the run: the streams, their elements and one shared model session.
    pub memory_mib: f64,
    /// Events started, and candidates a second look rejected (`looks-rejected`).
    pub starts: usize,
    pub rejected: u64,
    /// With a broker: messages (events and windows) delivered to a subscriber, and the
    /// window results' latency from the window's last sample to delivery (p50, p99).
    pub delivered: usize,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// This process's resident memory, MiB.
fn resident_mib() -> f64 {
    crate::common::rss_kib() as f64 / 1024.0
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// `n` live streams of `seconds`, each a different offset into `audio`, pushed at real-time
/// pace through `audiotagger model=model mode=live {properties}`. Started in lockstep, every
/// stream completes a window at the same instant (the worst case for latency); staggered, their
/// starts spread over one hop, as independent cameras' would be. With `broker` (a port of
/// 127.0.0.1), each stream also publishes its events and window results there through
/// `audiotagpublish`, and a subscriber in this process times their delivery.
pub fn live_streams(
    model: &Path,
    properties: &str,
    n: usize,
    seconds: u64,
    audio: &[f32],
    staggered: bool,
    broker: Option<u16>,
) -> LiveResult {
    // SAFETY: malloc_trim only releases free heap pages. It hands freed heap back to the
    // system, so this run's growth starts from what is in use, not from what an earlier run
    // left cached.
    unsafe { libc::malloc_trim(0) };
    let memory_before = resident_mib();
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let buffer = (16000 * BUFFER_MS / 1000) as usize;
    let total_buffers = (seconds * 1000 / BUFFER_MS) as usize;
    let hop_buffers = 480 / BUFFER_MS as usize;
    let start_tick = |k: usize| if staggered { k * hop_buffers / n } else { 0 };
    // Set once every pipeline runs: stream time 0 is pushed then.
    let origin_cell = Arc::new(OnceLock::<Instant>::new());
    let mut pipelines = Vec::new();
    let mut sources = Vec::new();
    let mut taggers = Vec::new();
    let started_ms = |k: usize| (start_tick(k) as u64) * BUFFER_MS;
    let delivery = broker.map(|port| {
        let starts: Vec<u64> = (0..n).map(started_ms).collect();
        subscribe(port, origin_cell.clone(), starts)
    });
    for k in 0..n {
        let started_ms = started_ms(k);
        let publish = match broker {
            Some(port) => format!(
                "! audiotagpublish broker=mqtt://127.0.0.1:{port} publish=all \
                 topic=bench/{{pipeline}}/{{kind}}"
            ),
            None => String::new(),
        };
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src is-live=true format=time caps=audio/x-raw,format=F32LE,rate=16000,\
             channels=1,layout=interleaved ! audiotagger name=tag model=\"{}\" mode=live \
             {properties} {publish} ! fakesink sync=false",
            model.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        pipeline.set_property("name", format!("stream{k}"));
        let bus = pipeline.bus().unwrap();
        let latencies = latencies.clone();
        let origin = origin_cell.clone();
        let starts = starts.clone();
        // Runs in the thread that posts, at the moment it posts.
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Element(e) = msg.view()
                && let Some(s) = e.structure().filter(|s| s.name() == "audiotagger-event")
                && s.get::<&str>("event") == Ok("start")
            {
                starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let gst::MessageView::Element(e) = msg.view()
                && let Some(s) = e.structure().filter(|s| s.name() == "audiotagger")
                && !s.get::<bool>("partial").unwrap_or(true)
            {
                let end = s.get::<gst::ClockTime>("timestamp").unwrap()
                    + s.get::<gst::ClockTime>("duration").unwrap();
                // The buffer holding the window's last sample is pushed when it is complete.
                let pushed_ms = started_ms + end.mseconds().div_ceil(BUFFER_MS) * BUFFER_MS;
                let arrived = *origin.get().unwrap() + Duration::from_millis(pushed_ms);
                let now = Instant::now();
                latencies
                    .lock()
                    .unwrap()
                    .push(now.saturating_duration_since(arrived).as_secs_f64() * 1000.0);
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        sources.push(
            pipeline
                .by_name("src")
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap(),
        );
        taggers.push(pipeline.by_name("tag").unwrap());
        pipelines.push(pipeline);
    }
    let origin = Instant::now() + Duration::from_millis(100);
    origin_cell.set(origin).unwrap();
    let cpu_before = cpu_time();
    let wall_before = Instant::now();
    for tick in 0..total_buffers + hop_buffers {
        let due = origin + Duration::from_millis((tick as u64 + 1) * BUFFER_MS);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for (k, src) in sources.iter().enumerate() {
            let Some(i) = tick
                .checked_sub(start_tick(k))
                .filter(|&i| i < total_buffers)
            else {
                continue;
            };
            let at = (k * 16000 * 7 + i * buffer) % (audio.len() - buffer);
            let bytes: Vec<u8> = audio[at..at + buffer]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let mut buf = gst::Buffer::from_mut_slice(bytes);
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(i as u64 * BUFFER_MS));
            b.set_duration(gst::ClockTime::from_mseconds(BUFFER_MS));
            src.push_buffer(buf).unwrap();
        }
    }
    // Let the last windows come out before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    let memory_mib = resident_mib() - memory_before;
    let skipped = taggers
        .iter()
        .map(|t| t.property::<u64>("windows-skipped"))
        .sum();
    let rejected = taggers
        .iter()
        .map(|t| t.property::<u64>("looks-rejected"))
        .sum();
    for p in &pipelines {
        p.set_state(gst::State::Null).unwrap();
    }
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort_by(f64::total_cmp);
    let (mut delivered, messages) = delivery
        .map(|d| std::mem::take(&mut *d.lock().unwrap()))
        .unwrap_or_default();
    delivered.sort_by(f64::total_cmp);
    LiveResult {
        cpu_cores: cpu.as_secs_f64() / wall.as_secs_f64(),
        windows: l.len(),
        skipped,
        p99_ms: percentile(&l, 0.99),
        max_ms: l.last().copied().unwrap_or(f64::NAN),
        memory_mib,
        starts: starts.load(std::sync::atomic::Ordering::Relaxed),
        rejected,
        delivered: messages,
        delivery_p50_ms: percentile(&delivered, 0.5),
        delivery_p99_ms: percentile(&delivered, 0.99),
    }
}

/// What the subscriber saw: window latencies (ms) and the count of all messages.
type Deliveries = Arc<Mutex<(Vec<f64>, usize)>>;

/// A subscriber to `bench/#` on the broker at `port`: counts every message, and for each
/// complete window result of stream k (which started `starts[k]` ms after the origin) takes
/// the time from the push of the buffer holding the window's last sample to its delivery.
fn subscribe(port: u16, origin: Arc<OnceLock<Instant>>, starts: Vec<u64>) -> Deliveries {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let latencies: Deliveries = Arc::default();
    let out = latencies.clone();
    let mut options = MqttOptions::new(format!("bench-sub-{port}"), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 64);
    client.subscribe("bench/#", QoS::AtLeastOnce).unwrap();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            let Ok(Event::Incoming(Packet::Publish(p))) = event else {
                if event.is_err() {
                    return;
                }
                continue;
            };
            let now = Instant::now();
            let Some(origin) = origin.get() else { continue };
            let json: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            out.lock().unwrap().1 += 1;
            if json["kind"] != "window" || json["partial"] != false {
                continue;
            }
            let k: usize = json["pipeline"].as_str().unwrap()["stream".len()..]
                .parse()
                .unwrap();
            let end_ns = json["timestamp"].as_u64().unwrap() + json["duration"].as_u64().unwrap();
            let pushed_ms = starts[k] + (end_ns / 1_000_000).div_ceil(BUFFER_MS) * BUFFER_MS;
            let arrived = *origin + Duration::from_millis(pushed_ms);
            out.lock()
                .unwrap()
                .0
                .push(now.saturating_duration_since(arrived).as_secs_f64() * 1000.0);
        }
    });
    // Subscribed before the first window ends.
    std::thread::sleep(Duration::from_millis(300));
    latencies
}

/// Prints the live-stream table: 8, 32 and 128 streams, staggered then in lockstep.
pub fn live_table(model: &Path, properties: &str, seconds: u64, audio: &[f32]) {
    println!(
        "{:>7} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10} {:>12}",
        "streams", "starts", "CPU (cores)", "windows", "skipped", "p99 latency", "max", "memory"
    );
    for staggered in [true, false] {
        for n in [8, 32, 128] {
            let r = live_streams(model, properties, n, seconds, audio, staggered, None);
            println!(
                "{n:>7} {:>10} {:>12.2} {:>10} {:>12} {:>9.1} ms {:>7.1} ms {:>8.0} MiB",
                if staggered { "staggered" } else { "lockstep" },
                r.cpu_cores,
                r.windows,
                r.skipped,
                r.p99_ms,
                r.max_ms,
                r.memory_mib
            );
        }
    }
}
