// SPDX-License-Identifier: MPL-2.0
//! Renders a file's tagging as a picture: the top classes' scores over time as a heat map, the
//! watched groups' events as spans with their onsets, and the level, on the stream's time axis.
//!
//!     cargo run --release --example timeline -- FILE OUT.png [--top N] [--features OUT.npy]
//!         [audiotagger property=value ...]
//!
//! e.g. `... timeline -- street.wav street.png watch=gunshot,glass,speech`.
//!
//! `--features OUT.npy` also writes what the model is fed for each window, as float32
//! `[windows, frames, bands]` (or `[windows, samples]` for waveform models): the element's
//! front-end run on the very samples the element received, through its own code and the model's
//! descriptor, so a port of a model's front-end can be checked against it (numpy.load).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstaudiotagger::audiotagger::input;
use gstaudiotagger::frontend::{Frontend, Window};
use gstaudiotagger::model::{ModelSession, SessionOptions, runtime};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

#[path = "support/pipeline.rs"]
mod pipeline;
use pipeline::Failure;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const WIDTH: u32 = 1600;

struct Options {
    input: String,
    png: PathBuf,
    top: usize,
    features: Option<PathBuf>,
    properties: Vec<String>,
}

fn options() -> Result<Options, Failure> {
    let usage = || {
        Failure(
            "usage: timeline FILE OUT.png [--top N] [--features OUT.npy] [audiotagger \
             property=value ...]"
                .into(),
            2,
        )
    };
    let mut args = std::env::args().skip(1);
    let input = args.next().ok_or_else(usage)?;
    let png = PathBuf::from(args.next().ok_or_else(usage)?);
    let mut top = 10;
    let mut features = None;
    let mut properties = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--top" => {
                top = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(usage)?
            }
            "--features" => features = Some(PathBuf::from(args.next().ok_or_else(usage)?)),
            _ => properties.push(arg),
        }
    }
    Ok(Options {
        input,
        png,
        top,
        features,
        properties,
    })
}

/// One window as the element reported it.
struct WindowScores {
    start: f64,
    duration: f64,
    scores: Vec<f32>,
    short_term_db: f64,
    rms_db: f64,
}

/// One event of a watched group.
struct EventSpan {
    group: String,
    start: f64,
    end: Option<f64>,
}

/// Stream time in seconds where the segment gives one, else the buffer time.
fn seconds(s: &gst::StructureRef, stream: &str, buffer: &str) -> Option<f64> {
    [stream, buffer]
        .iter()
        .find_map(|&f| s.get::<Option<gst::ClockTime>>(f).ok().flatten())
        .map(|t| t.nseconds() as f64 / 1e9)
}

/// The samples the element received, with their caps, as they came.
#[derive(Default)]
struct Received {
    info: Option<gst_audio::AudioInfo>,
    bytes: Vec<u8>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn run() -> Result<(), Failure> {
    let opts = options()?;
    pipeline::init()?;
    let uri = pipeline::uri_of(&opts.input)?;
    let mut properties = vec!["full-scores=true".to_string()];
    properties.extend(opts.properties.iter().cloned());
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = if opts.features.is_some() {
        tap(received.clone())
    } else {
        gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map_err(|e| Failure(format!("cannot make fakesink: {e}"), 1))?
    };
    let (pipeline, tagger) = pipeline::build(&uri, properties, sink)?;
    let mut windows = Vec::new();
    let mut events: Vec<EventSpan> = Vec::new();
    pipeline::run(&pipeline, |s| {
        if s.name() == "audiotagger" {
            windows.push(WindowScores {
                start: seconds(s, "stream-time", "timestamp").unwrap_or_default(),
                duration: s
                    .get::<gst::ClockTime>("duration")
                    .map_or(0.0, |d| d.nseconds() as f64 / 1e9),
                scores: s
                    .get::<gst::Array>("full-scores")
                    .map(|a| {
                        a.iter()
                            .map(|v| v.get::<f64>().unwrap_or(0.0) as f32)
                            .collect()
                    })
                    .unwrap_or_default(),
                short_term_db: s.get("short-term-db").unwrap_or(-200.0),
                rms_db: s.get("rms-db").unwrap_or(-200.0),
            });
        } else if let (Ok(event), Ok(group)) = (s.get::<&str>("event"), s.get::<String>("group")) {
            let onset = seconds(s, "stream-time", "timestamp").unwrap_or_default();
            match event {
                "start" => events.push(EventSpan {
                    group,
                    start: onset,
                    end: None,
                }),
                _ => {
                    let end = seconds(s, "end-stream-time", "end-timestamp");
                    if let Some(open) = events
                        .iter_mut()
                        .rev()
                        .find(|e| e.group == group && e.end.is_none())
                    {
                        open.end = end;
                    }
                }
            }
        }
        true
    })?;
    if windows.is_empty() {
        return Err(Failure(format!("{}: no window was tagged", opts.input), 1));
    }
    windows.sort_by(|a, b| a.start.total_cmp(&b.start));

    // The labels and the front-end come from the model the element ran.
    let model = PathBuf::from(tagger.property::<String>("model"));
    runtime::ensure_loaded(None).map_err(|e| Failure(e.to_string(), 1))?;
    let session = ModelSession::load(&model, &SessionOptions::default())
        .map_err(|e| Failure(e.to_string(), 1))?;
    let descriptor = session.descriptor();
    if let Some(path) = &opts.features {
        let mut config = descriptor.frontend.clone();
        let hop = tagger.property::<u64>("hop");
        if hop > 0 {
            config = config.with_hop_ns(hop);
        }
        let received = std::mem::take(&mut *received.lock().unwrap());
        let fed = features(config.clone(), &received)?;
        let mut shape = vec![fed.len()];
        shape.extend(config.feature_shape());
        write_npy(path, &shape, fed.iter().flat_map(|w| w.features.iter()))
            .map_err(|e| Failure(format!("{}: {e}", path.display()), 1))?;
        eprintln!("wrote {} ({shape:?})", path.display());
    }
    let top = draw(&opts, &windows, &events, &descriptor.labels)
        .map_err(|e| Failure(format!("{}: {e}", opts.png.display()), 1))?;
    // What the picture shows, as text.
    println!("{} windows", windows.len());
    for (c, peak) in top {
        println!("class {} peak {peak:.3}", descriptor.labels[c]);
    }
    for e in &events {
        let end = e.end.map_or("open".to_string(), |t| format!("{t:.3} s"));
        println!("event {} from {:.3} s to {end}", e.group, e.start);
    }
    eprintln!("wrote {}", opts.png.display());
    Ok(())
}

/// An appsink that keeps every buffer's bytes and the caps they came with.
fn tap(received: Arc<Mutex<Received>>) -> gst::Element {
    gst_app::AppSink::builder()
        .sync(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut r = received.lock().unwrap();
                    if r.info.is_none() {
                        r.info = sample
                            .caps()
                            .and_then(|c| gst_audio::AudioInfo::from_caps(c).ok());
                    }
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        r.bytes.extend_from_slice(&map);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
        .upcast()
}

/// The windows the element's front-end makes of `received`, the padded one at the end included.
fn features(
    config: gstaudiotagger::frontend::FrontendConfig,
    received: &Received,
) -> Result<Vec<Window>, Failure> {
    let info = received
        .info
        .as_ref()
        .ok_or_else(|| Failure("no audio reached the element".into(), 1))?;
    let mut frontend =
        Frontend::new(config, info.rate(), info.channels() as usize).map_err(|e| Failure(e, 1))?;
    let mut out = Vec::new();
    input::push(&mut frontend, info.format(), &received.bytes, &mut out)
        .map_err(|other| Failure(format!("the element got {other:?}, which it refuses"), 1))?;
    frontend.finish(&mut out);
    Ok(out)
}

/// A float32 .npy file (numpy's format 1.0) of `shape`, in C order.
fn write_npy<'a>(
    path: &Path,
    shape: &[usize],
    values: impl Iterator<Item = &'a f32>,
) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let trailing = if dims.len() == 1 { "," } else { "" };
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}{trailing}), }}",
        dims.join(", ")
    );
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes)
}

/// Viridis, from five of its colours.
fn viridis(x: f32) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let x = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f32;
    let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(
    opts: &Options,
    windows: &[WindowScores],
    events: &[EventSpan],
    labels: &[String],
) -> Result<Vec<(usize, f32)>, Box<dyn std::error::Error>> {
    let font =
        std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (apt install fonts-dejavu-core)"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| format!("{FONT} is not a usable font"))?;

    // The classes that reach the highest scores anywhere, best on top.
    let classes = windows.iter().map(|w| w.scores.len()).max().unwrap_or(0);
    let mut best: Vec<(usize, f32)> = (0..classes)
        .map(|c| {
            let peak = windows
                .iter()
                .filter_map(|w| w.scores.get(c))
                .fold(0.0f32, |a, &b| a.max(b));
            (c, peak)
        })
        .collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    best.truncate(opts.top);
    let end = windows
        .iter()
        .map(|w| w.start + w.duration)
        .fold(0.0f64, f64::max);
    let mut groups: Vec<&str> = events.iter().map(|e| e.group.as_str()).collect();
    groups.dedup();
    groups.sort();
    groups.dedup();

    let heat_height = 90 + 26 * best.len() as u32;
    let event_height = 70 + 30 * groups.len().max(1) as u32;
    let level_height = 240;
    let png = &opts.png;
    let root = BitMapBackend::new(png, (WIDTH, heat_height + event_height + level_height))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let (heat, rest) = root.split_vertically(heat_height);
    let (strip, level) = rest.split_vertically(event_height);
    let title = Path::new(&opts.input)
        .file_name()
        .map_or(opts.input.clone(), |n| n.to_string_lossy().into_owned());
    draw_heat(&heat, &title, windows, &best, labels, end)?;
    draw_events(&strip, events, &groups, end)?;
    draw_level(&level, windows, end)?;
    root.present()?;
    Ok(best)
}

const LABEL_AREA: u32 = 260;

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart of one row per name (the first on top) over the stream's time, the rows named left
/// of it.
fn row_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    (caption, size): (String, u32),
    names: &[String],
    end: f64,
) -> Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", size))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d(0.0..end, 0.0..names.len() as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_desc("stream time (s)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let (_, top) = area.get_base_pixel();
    for (r, name) in names.iter().enumerate() {
        let centre = (names.len() - r) as f64 - 0.5;
        let (_, y) = chart.backend_coord(&(0.0, centre));
        let style = TextStyle::from(("sans-serif", 15).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        area.draw(&Text::new(
            name.clone(),
            (LABEL_AREA as i32, y - top),
            style,
        ))?;
    }
    Ok(chart)
}

fn draw_heat(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    windows: &[WindowScores],
    best: &[(usize, f32)],
    labels: &[String],
    end: f64,
) -> DrawResult {
    let rows = best.len();
    let names: Vec<String> = best
        .iter()
        .map(|&(c, peak)| format!("{} ({peak:.2})", labels.get(c).map_or("?", String::as_str)))
        .collect();
    let caption = (format!("{title}: top {rows} classes, score per window"), 24);
    let mut chart = row_chart(area, caption, &names, end)?;
    for (k, w) in windows.iter().enumerate() {
        // Each window's cell runs to the next window's start, so overlapping windows tile.
        let until = windows.get(k + 1).map_or(w.start + w.duration, |n| n.start);
        chart.draw_series(best.iter().enumerate().map(|(r, &(c, _))| {
            let row = (rows - 1 - r) as f64;
            let score = w.scores.get(c).copied().unwrap_or(0.0);
            Rectangle::new(
                [(w.start, row), (until, row + 1.0)],
                viridis(score).filled(),
            )
        }))?;
    }
    Ok(())
}

fn draw_events(
    area: &DrawingArea<BitMapBackend, Shift>,
    events: &[EventSpan],
    groups: &[&str],
    end: f64,
) -> DrawResult {
    let rows = groups.len().max(1);
    let caption = if events.is_empty() {
        "events: none (name groups with watch=...)".to_string()
    } else {
        format!("events: {} (onset marked)", events.len())
    };
    let mut names: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    names.resize(rows, String::new());
    let mut chart = row_chart(area, (caption, 20), &names, end)?;
    for e in events {
        let index = groups.iter().position(|g| *g == e.group).unwrap_or(0);
        let (y0, y1) = ((rows - 1 - index) as f64, (rows - index) as f64);
        let stop = e.end.unwrap_or(end).max(e.start);
        chart.draw_series([Rectangle::new(
            [(e.start, y0), (stop, y1)],
            RGBColor(230, 85, 13).mix(0.55).filled(),
        )])?;
        chart.draw_series([PathElement::new(
            vec![(e.start, y0), (e.start, y1)],
            RGBColor(165, 15, 21).stroke_width(3),
        )])?;
        chart.draw_series([Text::new(
            format!(" {:.2} s", e.start),
            (e.start, y0 + 0.75),
            ("sans-serif", 14).into_font().color(&BLACK),
        )])?;
    }
    Ok(())
}

fn draw_level(
    area: &DrawingArea<BitMapBackend, Shift>,
    windows: &[WindowScores],
    end: f64,
) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .caption("level as the model hears it (dBFS)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d(0.0..end, -100.0..0.0)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .y_label_formatter(&|db| format!("{db:.0}"))
        .x_desc("stream time (s)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let mid = |w: &WindowScores| w.start + w.duration / 2.0;
    chart
        .draw_series(LineSeries::new(
            windows
                .iter()
                .map(|w| (mid(w), w.short_term_db.max(-100.0))),
            RGBColor(33, 113, 181).stroke_width(2),
        ))?
        .label("loudest 25 ms")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(33, 113, 181)));
    chart
        .draw_series(LineSeries::new(
            windows.iter().map(|w| (mid(w), w.rms_db.max(-100.0))),
            RGBColor(120, 120, 120).stroke_width(2),
        ))?
        .label("window RMS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(120, 120, 120)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}
