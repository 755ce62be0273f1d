// SPDX-License-Identifier: MPL-2.0

//! `audiotagpublish`: passes audio through and publishes the results an `audiotagger` before
//! it sends in-band.
//!
//! Lock order: `settings`, then `state`. The MQTT thread reports through `on_status`, which
//! takes neither: it posts messages and sets `refused`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::payload::{self, Envelope};
use super::{Protocol, What};
use crate::publish::Message;
use crate::publish::jsonl::LineWriter;
use crate::publish::mqtt::{self, BrokerConfig, Publisher, Status};
use crate::publish::topic::{self, TopicFields};

pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "audiotagpublish",
        gst::DebugColorFlags::empty(),
        Some("Publishes audiotagger results to MQTT or a JSON-lines file"),
    )
});

const DEFAULT_TOPIC: &str = "audiotagger/{pipeline}/{element}/{kind}";
const DEFAULT_QOS: u32 = 1;
const DEFAULT_OUTBOX_SIZE: u32 = 10_000;
const DEFAULT_FLUSH_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(5);
const DEFAULT_KEEP_ALIVE: u32 = 30;

#[derive(Debug, Clone)]
struct Settings {
    broker: String,
    protocol: Protocol,
    client_id: String,
    topic: String,
    qos: u32,
    retain: bool,
    what: What,
    window_interval: gst::ClockTime,
    username: String,
    password: String,
    tls_ca_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    keep_alive: u32,
    outbox_size: u32,
    flush_timeout: gst::ClockTime,
    location: Option<PathBuf>,
    append: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            broker: String::new(),
            protocol: Protocol::V311,
            client_id: String::new(),
            topic: DEFAULT_TOPIC.into(),
            qos: DEFAULT_QOS,
            retain: false,
            what: What::Events,
            window_interval: gst::ClockTime::ZERO,
            username: String::new(),
            password: String::new(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            outbox_size: DEFAULT_OUTBOX_SIZE,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            location: None,
            append: false,
        }
    }
}

struct State {
    settings: Settings,
    mqtt: Option<Arc<Publisher>>,
    file: Option<LineWriter>,
    pipeline: String,
    seq: u64,
    /// Per `audiotagger`: the timestamp of the last window result published (window-interval).
    last_window: HashMap<String, u64>,
    /// A full outbox was warned about; cleared when the broker is back.
    warned_full: bool,
}

#[derive(Default)]
pub struct AudioTagPublish {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The broker refused us (credentials, TLS): an error was posted; the stream stops.
    refused: Arc<AtomicBool>,
}

#[glib::object_subclass]
impl ObjectSubclass for AudioTagPublish {
    const NAME: &'static str = "GstAudioTagPublish";
    type Type = super::AudioTagPublish;
    type ParentType = gst_base::BaseTransform;
}

fn path_of(value: &glib::Value) -> Option<PathBuf> {
    value
        .get::<Option<String>>()
        .expect("type checked by the spec")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

fn path_value(p: &Option<PathBuf>) -> glib::Value {
    p.as_ref().map(|p| p.display().to_string()).to_value()
}

impl ObjectImpl for AudioTagPublish {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ready = gst::PARAM_FLAG_MUTABLE_READY;
            vec![
                glib::ParamSpecString::builder("broker")
                    .nick("Broker")
                    .blurb("MQTT broker URI: mqtt://host:1883, or mqtts://host:8883 for TLS. Empty: no MQTT (use location)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("protocol", Protocol::V311)
                    .nick("Protocol")
                    .blurb("MQTT version: 3.1.1 (every broker) or 5")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("client-id")
                    .nick("Client id")
                    .blurb("MQTT client id; empty: audiotagpublish-<pid>-<element name>, unique per element")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("topic")
                    .nick("Topic")
                    .blurb("Topic template; {kind} (event, window), {group} (the event's group, tags for windows), {event} (start, stop, tags), {element} (the audiotagger), {pipeline}")
                    .default_value(Some(DEFAULT_TOPIC))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("qos")
                    .nick("QoS")
                    .blurb("MQTT quality of service: 1 (default) is acknowledged and sent again until it is; 0 is sent once")
                    .maximum(1)
                    .default_value(DEFAULT_QOS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("retain")
                    .nick("Retain")
                    .blurb("Ask the broker to keep the last message of each topic for new subscribers")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("publish", What::Events)
                    .nick("Publish")
                    .blurb("What to publish: events (starts and stops) or all (also every window's tags)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("window-interval")
                    .nick("Window interval")
                    .blurb("With publish=all, at most one window result per audiotagger per this much stream time (ns); 0: every window")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("username")
                    .nick("User name")
                    .blurb("MQTT user name; empty: none")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password")
                    .nick("Password")
                    .blurb("MQTT password (write-only)")
                    .flags(glib::ParamFlags::WRITABLE | ready)
                    .build(),
                glib::ParamSpecString::builder("tls-ca-file")
                    .nick("TLS CA file")
                    .blurb("PEM file of the CA that signed the broker's certificate, the only CA then trusted; empty: the system's CAs")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-cert-file")
                    .nick("TLS client certificate")
                    .blurb("PEM file of a client certificate, for brokers that require one (with tls-key-file)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-key-file")
                    .nick("TLS client key")
                    .blurb("PEM file of the client certificate's private key, PKCS#8 (BEGIN PRIVATE KEY)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("keep-alive")
                    .nick("Keep-alive")
                    .blurb("Seconds between MQTT pings on an idle connection; a dead broker is noticed within 1.5 times this")
                    .minimum(5)
                    .maximum(3600)
                    .default_value(DEFAULT_KEEP_ALIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("outbox-size")
                    .nick("Outbox size")
                    .blurb("Messages held while the broker is unreachable; when full the oldest window results are dropped (never events)")
                    .minimum(1)
                    .default_value(DEFAULT_OUTBOX_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("flush-timeout")
                    .nick("Flush timeout")
                    .blurb("At EOS and on stop, wait at most this long (ns) for the broker to acknowledge what is held")
                    .default_value(DEFAULT_FLUSH_TIMEOUT.nseconds())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Also (or only) write each message as one JSON line to this file; empty: no file")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("append")
                    .nick("Append")
                    .blurb("Append to location instead of replacing it")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("dropped")
                    .nick("Dropped")
                    .blurb("Window results dropped because the outbox was full (events are never dropped)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("pending")
                    .nick("Pending")
                    .blurb("Messages the broker has not acknowledged yet")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked by the spec")
                .unwrap_or_default()
        };
        match pspec.name() {
            "broker" => s.broker = string(),
            "protocol" => s.protocol = value.get().expect("type checked by the spec"),
            "client-id" => s.client_id = string(),
            "topic" => s.topic = string(),
            "qos" => s.qos = value.get().expect("type checked by the spec"),
            "retain" => s.retain = value.get().expect("type checked by the spec"),
            "publish" => s.what = value.get().expect("type checked by the spec"),
            "window-interval" => {
                s.window_interval =
                    gst::ClockTime::from_nseconds(value.get().expect("type checked by the spec"))
            }
            "username" => s.username = string(),
            "password" => s.password = string(),
            "tls-ca-file" => s.tls_ca_file = path_of(value),
            "tls-cert-file" => s.tls_cert_file = path_of(value),
            "tls-key-file" => s.tls_key_file = path_of(value),
            "keep-alive" => s.keep_alive = value.get().expect("type checked by the spec"),
            "outbox-size" => s.outbox_size = value.get().expect("type checked by the spec"),
            "flush-timeout" => {
                s.flush_timeout =
                    gst::ClockTime::from_nseconds(value.get().expect("type checked by the spec"))
            }
            "location" => s.location = path_of(value),
            "append" => s.append = value.get().expect("type checked by the spec"),
            other => unreachable!("no writable property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "broker" => s.broker.to_value(),
            "protocol" => s.protocol.to_value(),
            "client-id" => s.client_id.to_value(),
            "topic" => s.topic.to_value(),
            "qos" => s.qos.to_value(),
            "retain" => s.retain.to_value(),
            "publish" => s.what.to_value(),
            "window-interval" => s.window_interval.nseconds().to_value(),
            "username" => s.username.to_value(),
            "password" => None::<String>.to_value(),
            "tls-ca-file" => path_value(&s.tls_ca_file),
            "tls-cert-file" => path_value(&s.tls_cert_file),
            "tls-key-file" => path_value(&s.tls_key_file),
            "keep-alive" => s.keep_alive.to_value(),
            "outbox-size" => s.outbox_size.to_value(),
            "flush-timeout" => s.flush_timeout.nseconds().to_value(),
            "location" => path_value(&s.location),
            "append" => s.append.to_value(),
            "dropped" | "pending" => {
                drop(s);
                let state = self.state.lock().unwrap();
                let mqtt = state.as_ref().and_then(|st| st.mqtt.as_ref());
                match pspec.name() {
                    "dropped" => mqtt.map_or(0, |m| m.dropped()).to_value(),
                    _ => mqtt.map_or(0, |m| m.pending() as u64).to_value(),
                }
            }
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for AudioTagPublish {}

impl ElementImpl for AudioTagPublish {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Audio tag publisher",
                "Filter/Audio/Network",
                "Publishes the events and tags of an audiotagger before it to an MQTT broker or a \
                 JSON-lines file; audio passes through untouched",
                "audiotagger developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for AudioTagPublish {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        if settings.broker.is_empty() && settings.location.is_none() {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("Nowhere to publish: set broker=mqtt://host:1883, location=FILE.jsonl, or both")
            ));
        }
        topic::validate(&settings.topic)
            .map_err(|why| gst::error_msg!(gst::ResourceError::Settings, ("Bad topic: {why}")))?;
        self.refused.store(false, Ordering::SeqCst);
        let file = match &settings.location {
            Some(path) => Some(
                LineWriter::create(path, settings.append)
                    .map_err(|why| gst::error_msg!(gst::ResourceError::OpenWrite, ("{why}")))?,
            ),
            None => None,
        };
        let mqtt = if settings.broker.is_empty() {
            None
        } else {
            Some(Arc::new(self.start_mqtt(&settings)?))
        };
        *self.state.lock().unwrap() = Some(State {
            pipeline: self.pipeline_name(),
            settings,
            mqtt,
            file,
            seq: 0,
            last_window: HashMap::new(),
            warned_full: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let Some(state) = self.state.lock().unwrap().take() else {
            return Ok(());
        };
        let timeout = Duration::from_nanos(state.settings.flush_timeout.nseconds());
        if let Some(mqtt) = state.mqtt {
            let left = mqtt.stop(timeout);
            if left > 0 && !self.refused.load(Ordering::SeqCst) {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Write,
                    ("{left} messages were not delivered to the broker"),
                    [
                        "the broker did not acknowledge them within flush-timeout ({})",
                        state.settings.flush_timeout
                    ]
                );
            }
        }
        if let Some(file) = state.file
            && let Err(why) = file.close()
        {
            gst::element_imp_warning!(self, gst::ResourceError::Write, ("{why}"));
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstream(e) => {
                if let Some(s) = e.structure()
                    && let Some(kind) = payload::kind(s)
                {
                    self.publish(s, kind);
                }
            }
            gst::EventView::Eos(_) => self.flush(),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(
        &self,
        _buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.flow()
    }

    fn transform_ip(&self, _buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.flow()
    }
}

impl AudioTagPublish {
    fn start_mqtt(&self, settings: &Settings) -> Result<Publisher, gst::ErrorMessage> {
        let bad = |why: String| gst::error_msg!(gst::ResourceError::Settings, ("{why}"));
        let (host, port, tls) = mqtt::parse_uri(&settings.broker).map_err(bad)?;
        let client_cert = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "tls-cert-file and tls-key-file go together: set both or neither".into(),
                ));
            }
        };
        let client_id = if settings.client_id.is_empty() {
            format!(
                "audiotagpublish-{}-{}",
                std::process::id(),
                self.obj().name()
            )
        } else {
            settings.client_id.clone()
        };
        let config = BrokerConfig {
            host,
            port,
            tls,
            client_id,
            credentials: (!settings.username.is_empty())
                .then(|| (settings.username.clone(), settings.password.clone())),
            ca_file: settings.tls_ca_file.clone(),
            client_cert,
            version: match settings.protocol {
                Protocol::V311 => mqtt::Version::V311,
                Protocol::V5 => mqtt::Version::V5,
            },
            qos: settings.qos as u8,
            retain: settings.retain,
            keep_alive: Duration::from_secs(settings.keep_alive.into()),
            capacity: settings.outbox_size as usize,
        };
        let element = self.obj().downgrade();
        let broker = settings.broker.clone();
        let refused = self.refused.clone();
        Publisher::start(config, move |status| {
            let Some(element) = element.upgrade() else {
                return;
            };
            match status {
                Status::Connected { after_outage } => {
                    if after_outage {
                        gst::info!(CAT, obj = element, "broker {broker} is back");
                    } else {
                        gst::debug!(CAT, obj = element, "connected to {broker}");
                    }
                }
                Status::Unreachable(why) => {
                    gst::element_warning!(
                        element,
                        gst::ResourceError::OpenWrite,
                        ("Cannot reach the MQTT broker {broker}: messages are held and sent when it is back"),
                        ["{why}"]
                    );
                }
                Status::Refused(why) => {
                    refused.store(true, Ordering::SeqCst);
                    gst::element_error!(
                        element,
                        gst::ResourceError::NotAuthorized,
                        ("The MQTT broker {broker} refused the connection: {why}"),
                        ["nothing more is published"]
                    );
                }
            }
        })
        .map_err(bad)
    }

    fn flow(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.refused.load(Ordering::SeqCst) {
            Err(gst::FlowError::Error)
        } else {
            Ok(gst::FlowSuccess::Ok)
        }
    }

    /// The name of the outermost bin this element is in.
    fn pipeline_name(&self) -> String {
        let mut top: gst::Object = self.obj().clone().upcast();
        while let Some(parent) = top.parent() {
            top = parent;
        }
        top.name().to_string()
    }

    fn publish(&self, s: &gst::StructureRef, kind: &str) {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return;
        };
        let element = s.get::<&str>("element").unwrap_or_default().to_string();
        let is_window = kind == "window";
        if is_window {
            if state.settings.what == What::Events {
                return;
            }
            let at = s.get::<u64>("timestamp").unwrap_or_default();
            let interval = state.settings.window_interval.nseconds();
            if let Some(&last) = state.last_window.get(&element)
                && interval > 0
                && at < last.saturating_add(interval)
                && at >= last
            {
                return;
            }
            state.last_window.insert(element.clone(), at);
        }
        let publisher = self.obj().name();
        let envelope = Envelope {
            seq: state.seq,
            pipeline: &state.pipeline,
            publisher: publisher.as_str(),
            wallclock: SystemTime::now(),
        };
        state.seq += 1;
        let json = payload::to_json(s, kind, &envelope);
        let bytes = serde_json::to_vec(&json).unwrap_or_default();
        let mut warnings = Vec::new();
        if let Some(file) = state.file.as_mut()
            && let Err(why) = file.write(bytes.clone())
        {
            state.file = None;
            warnings.push(why);
        }
        if let Some(mqtt) = &state.mqtt {
            let text = |key: &str| s.get::<&str>(key).ok().unwrap_or("tags");
            let fields = TopicFields {
                kind,
                group: text("group"),
                event: text("event"),
                element: &element,
                pipeline: &state.pipeline,
            };
            let pushed = mqtt.publish(Message {
                topic: topic::expand(&state.settings.topic, &fields),
                payload: bytes,
                droppable: is_window,
            });
            // Warned once per filling: again only after the outbox has half emptied.
            if pushed.dropped && !state.warned_full {
                state.warned_full = true;
                warnings.push(format!(
                    "the outbox is full ({} messages held for the broker): dropping the oldest \
                     window results, never events (see the dropped property; raise outbox-size \
                     or publish=events)",
                    mqtt.pending()
                ));
            } else if state.warned_full && mqtt.pending() < state.settings.outbox_size as usize / 2
            {
                state.warned_full = false;
            }
        }
        drop(guard);
        for why in warnings {
            gst::element_imp_warning!(self, gst::ResourceError::Write, ("{why}"));
        }
    }

    /// EOS: waits (at most flush-timeout) until what was published is delivered.
    fn flush(&self) {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return;
        };
        let flush_timeout = state.settings.flush_timeout;
        let timeout = Duration::from_nanos(flush_timeout.nseconds());
        if let Some(file) = state.file.as_mut() {
            file.sync(timeout);
        }
        // Waited for without the state, which the MQTT thread's reports and the properties use.
        let mqtt = state.mqtt.clone();
        drop(guard);
        let left = match mqtt {
            Some(mqtt) if !mqtt.flush(timeout) => mqtt.pending(),
            _ => 0,
        };
        if left > 0 && !self.refused.load(Ordering::SeqCst) {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("{left} messages not yet delivered to the broker at EOS"),
                [
                    "flush-timeout ({flush_timeout}) ran out; they are still held and sent until the element stops"
                ]
            );
        }
    }
}
