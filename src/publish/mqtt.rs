// SPDX-License-Identifier: MPL-2.0

//! Publishing to an MQTT broker from a thread of its own, so that the caller never waits.
//!
//! The [`Outbox`] is the only copy of what is not yet delivered: each connection is a fresh
//! `rumqttc` event loop with a clean session, which forgets everything when it drops; the
//! messages it had not had acknowledged go out again, in order, on the next connection. (The
//! client's own retransmission only covers a resumed session, which a restarted broker without
//! persistence does not offer.)

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::outbox::{Message, Outbox, Pushed};
pub use super::protocol::Version;
use super::protocol::{Client, Ended, EventLoop, Happened, Options, Settings};

/// Messages on the wire at once per connection: below the client's own in-flight limit (100),
/// so its packet ids never collide and it writes them in the order they were handed over.
const WINDOW: usize = 32;
/// Wait between attempts to reach a broker that is down.
const RETRY: Duration = Duration::from_millis(500);
/// How long a stopping publisher waits for its DISCONNECT to be written.
const DISCONNECT_WAIT: Duration = Duration::from_secs(1);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    /// PEM file of the CA that signed the broker's certificate (else the system's CAs).
    pub ca_file: Option<PathBuf>,
    /// PEM files of a client certificate and its PKCS#8 key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub version: Version,
    /// 0 or 1.
    pub qos: u8,
    pub retain: bool,
    pub keep_alive: Duration,
    /// Messages held while the broker cannot be reached (see [`Outbox`]).
    pub capacity: usize,
}

/// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS); `tcp://` and `ssl://`
/// are accepted as their synonyms.
pub fn parse_uri(uri: &str) -> Result<(String, u16, bool), String> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("broker \"{uri}\" is not a URI like mqtt://host:1883"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(format!(
                "broker \"{uri}\": unknown scheme \"{other}\" (use mqtt:// or mqtts://)"
            ));
        }
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 address in brackets has colons of its own.
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("broker \"{uri}\": \"{p}\" is not a port number"))?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!("broker \"{uri}\" names no host"));
    }
    Ok((host.to_string(), port, tls))
}

/// What the connection thread tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Connected; `after_outage` when an [`Status::Unreachable`] came before.
    Connected { after_outage: bool },
    /// The broker cannot be reached now; messages are held and it is tried again.
    Unreachable(String),
    /// The broker or TLS refused this configuration; the thread has stopped.
    Refused(String),
}

struct Shared {
    outbox: Mutex<Outbox>,
    /// Signalled whenever the outbox empties.
    emptied: Condvar,
    wake: tokio::sync::Notify,
    stopping: AtomicBool,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running publisher. Dropping it stops it without waiting for delivery; [`Publisher::stop`]
/// waits first.
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Publisher {
    /// Reads the TLS files and starts the connection thread; the broker itself is reached
    /// from there (its refusals come through `on_status`).
    pub fn start(
        config: BrokerConfig,
        on_status: impl Fn(Status) + Send + 'static,
    ) -> Result<Publisher, String> {
        let options = mqtt_options(&config)?;
        let qos0 = config.qos == 0;
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox::new(config.capacity)),
            emptied: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the MQTT thread's runtime: {e}"))?;
        let thread_shared = shared.clone();
        let retain = config.retain;
        let thread = std::thread::Builder::new()
            .name("audiotagpublish-mqtt".into())
            .spawn(move || {
                runtime.block_on(run(&thread_shared, options, qos0, retain, &on_status));
                // Whatever is left will not be sent: let a waiting flush go.
                thread_shared.emptied.notify_all();
            })
            .map_err(|e| format!("cannot start the MQTT thread: {e}"))?;
        Ok(Publisher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `message`; never waits.
    pub fn publish(&self, message: Message) -> Pushed {
        let pushed = self.shared.outbox().push(message);
        self.shared.wake.notify_one();
        pushed
    }

    /// Window results dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.shared.outbox().dropped()
    }

    /// Messages not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.shared.outbox().len()
    }

    /// Waits until every message is acknowledged, at most `timeout`; true if they all were.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut outbox = self.shared.outbox();
        while !outbox.is_empty() && self.is_running() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            outbox = self
                .shared
                .emptied
                .wait_timeout(outbox, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        outbox.is_empty()
    }

    fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Flushes (at most `timeout`), disconnects and returns how many messages were left.
    pub fn stop(&self, timeout: Duration) -> usize {
        self.flush(timeout);
        self.halt();
        self.pending()
    }

    fn halt(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.halt();
    }
}

fn mqtt_options(config: &BrokerConfig) -> Result<Options, String> {
    let tls = if config.tls {
        Some(tls_connector(config)?)
    } else if config.ca_file.is_some() || config.client_cert.is_some() {
        return Err(format!(
            "TLS files are set but the broker URI is mqtt://{}:{}: use mqtts:// for TLS",
            config.host, config.port
        ));
    } else {
        None
    };
    let settings = Settings {
        client_id: &config.client_id,
        host: &config.host,
        port: config.port,
        keep_alive: config.keep_alive,
        credentials: config
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str())),
        tls,
    };
    Ok(Options::new(config.version, settings))
}

fn tls_connector(config: &BrokerConfig) -> Result<native_tls::TlsConnector, String> {
    let read = |what: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = &config.ca_file {
        let ca = native_tls::Certificate::from_pem(&read("CA file", path)?)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
        // The CA named is the only one trusted.
        builder
            .disable_built_in_roots(true)
            .add_root_certificate(ca);
    }
    if let Some((cert, key)) = &config.client_cert {
        let identity =
            native_tls::Identity::from_pkcs8(&read("certificate", cert)?, &read("key", key)?)
                .map_err(|e| {
                    format!(
                        "client certificate {} with key {}: {e} (the key must be PKCS#8 PEM)",
                        cert.display(),
                        key.display()
                    )
                })?;
        builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

async fn run(
    shared: &Shared,
    options: Options,
    qos0: bool,
    retain: bool,
    on_status: &(impl Fn(Status) + Send),
) {
    let mut down = false;
    while !shared.stopping.load(Ordering::SeqCst) {
        let (client, eventloop) = options.connect(WINDOW + 8);
        let ended = connection(
            shared, &client, eventloop, qos0, retain, on_status, &mut down,
        )
        .await;
        shared.outbox().disconnected();
        match ended {
            Ok(()) => return,
            Err(Ended::Refused(why)) => {
                on_status(Status::Refused(why));
                return;
            }
            Err(Ended::Lost(why)) => {
                if !down {
                    down = true;
                    on_status(Status::Unreachable(why));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Runs one connection until it fails or the publisher stops (`Ok`).
async fn connection(
    shared: &Shared,
    client: &Client,
    mut eventloop: EventLoop,
    qos0: bool,
    retain: bool,
    on_status: &(impl Fn(Status) + Send),
    down: &mut bool,
) -> Result<(), Ended> {
    let mut connected = false;
    let mut disconnecting = false;
    loop {
        if shared.stopping.load(Ordering::SeqCst) && !disconnecting {
            if !connected || !client.try_disconnect() {
                return Ok(());
            }
            disconnecting = true;
        }
        if connected && !disconnecting {
            let mut outbox = shared.outbox();
            while let Some(m) = outbox.next_to_send(WINDOW) {
                // The channel holds more than the window, so this is refused only when the
                // event loop is gone, which its next poll reports.
                if !client.try_publish(&m.topic, qos0, retain, &m.payload) {
                    break;
                }
            }
        }
        tokio::select! {
            happened = eventloop.poll() => match happened? {
                Happened::Connected => {
                    connected = true;
                    on_status(Status::Connected { after_outage: std::mem::take(down) });
                }
                Happened::Written(pkid) => {
                    let mut outbox = shared.outbox();
                    outbox.written(pkid, qos0);
                    if outbox.is_empty() {
                        shared.emptied.notify_all();
                    }
                }
                Happened::Acknowledged(pkid) => {
                    let mut outbox = shared.outbox();
                    outbox.acknowledged(pkid);
                    if outbox.is_empty() {
                        shared.emptied.notify_all();
                    }
                }
                Happened::Disconnected => return Ok(()),
                Happened::Other => {}
            },
            _ = shared.wake.notified() => {}
            // A broker that has stopped reading must not hold up the element's stop.
            _ = tokio::time::sleep(DISCONNECT_WAIT), if disconnecting => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_uris() {
        assert_eq!(
            parse_uri("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            parse_uri("mqtts://broker.local").unwrap(),
            ("broker.local".into(), 8883, true)
        );
        assert_eq!(
            parse_uri("tcp://[::1]:1883").unwrap(),
            ("::1".into(), 1883, false)
        );
        assert!(parse_uri("http://x").unwrap_err().contains("mqtts://"));
        assert!(parse_uri("mqtt://x:port").unwrap_err().contains("port"));
        assert!(parse_uri("127.0.0.1:1883").is_err());
        assert!(parse_uri("mqtt://").is_err());
    }
}
