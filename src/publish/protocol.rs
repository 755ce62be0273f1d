// SPDX-License-Identifier: MPL-2.0

//! MQTT 3.1.1 and 5 behind one face: `rumqttc` has a client of each, alike but of different
//! types. The publisher only needs to connect, hand over publishes, and hear of connections,
//! writes, acknowledgements and their end.

use std::time::Duration;

use rumqttc::v5;
use rumqttc::{Outgoing, TlsConfiguration, Transport};

/// The MQTT version spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// A connection's options, for either version.
#[derive(Clone)]
pub enum Options {
    V311(Box<rumqttc::MqttOptions>),
    V5(Box<v5::MqttOptions>),
}

pub struct Settings<'a> {
    pub client_id: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub keep_alive: Duration,
    pub credentials: Option<(&'a str, &'a str)>,
    pub tls: Option<native_tls::TlsConnector>,
}

/// Packets of up to 1 MiB: a window result with its full scores and embedding is about 20 kB.
const MAX_PACKET: usize = 1 << 20;

impl Options {
    /// A clean session (clean start): what the broker does not acknowledge is the publisher's
    /// to send again, not the client's.
    pub fn new(version: Version, s: Settings) -> Options {
        let transport = s
            .tls
            .map(|c| Transport::tls_with_config(TlsConfiguration::NativeConnector(c)));
        match version {
            Version::V311 => {
                let mut o = rumqttc::MqttOptions::new(s.client_id, s.host, s.port);
                o.set_keep_alive(s.keep_alive)
                    .set_clean_session(true)
                    .set_max_packet_size(MAX_PACKET, MAX_PACKET);
                if let Some((user, password)) = s.credentials {
                    o.set_credentials(user, password);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                Options::V311(Box::new(o))
            }
            Version::V5 => {
                let mut o = v5::MqttOptions::new(s.client_id, s.host, s.port);
                o.set_keep_alive(s.keep_alive)
                    .set_clean_start(true)
                    .set_max_packet_size(Some(MAX_PACKET as u32));
                if let Some((user, password)) = s.credentials {
                    o.set_credentials(user, password);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                Options::V5(Box::new(o))
            }
        }
    }

    /// A fresh client and event loop (which connects on its first poll).
    pub fn connect(&self, capacity: usize) -> (Client, EventLoop) {
        match self {
            Options::V311(o) => {
                let (c, l) = rumqttc::AsyncClient::new((**o).clone(), capacity);
                (Client::V311(c), EventLoop::V311(Box::new(l)))
            }
            Options::V5(o) => {
                let (c, l) = v5::AsyncClient::new((**o).clone(), capacity);
                (Client::V5(c), EventLoop::V5(Box::new(l)))
            }
        }
    }
}

pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Client {
    /// Hands a publish to the event loop without waiting; false if it is gone.
    pub fn try_publish(&self, topic: &str, qos0: bool, retain: bool, payload: &[u8]) -> bool {
        match self {
            Client::V311(c) => {
                let qos = if qos0 {
                    rumqttc::QoS::AtMostOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                };
                c.try_publish(topic, qos, retain, payload.to_vec()).is_ok()
            }
            Client::V5(c) => {
                let qos = if qos0 {
                    v5::mqttbytes::QoS::AtMostOnce
                } else {
                    v5::mqttbytes::QoS::AtLeastOnce
                };
                c.try_publish(topic, qos, retain, payload.to_vec()).is_ok()
            }
        }
    }

    pub fn try_disconnect(&self) -> bool {
        match self {
            Client::V311(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

pub enum EventLoop {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// What a poll of the event loop brought.
#[derive(Debug)]
pub enum Happened {
    Connected,
    /// The next handed-over publish was written as this packet id.
    Written(u16),
    Acknowledged(u16),
    Disconnected,
    Other,
}

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// Another try will not change it: the reason, for the user.
    Refused(String),
    /// Worth another try.
    Lost(String),
}

const CREDENTIALS: &str =
    "the broker refused the credentials (not authorised): check username and password";
const CLIENT_ID: &str = "the broker refused the client id: set a different client-id";

fn tls_failed(e: &rumqttc::TlsError) -> Option<Ended> {
    match e {
        rumqttc::TlsError::NativeTls(e) => Some(Ended::Refused(format!(
            "TLS with the broker failed ({e}): check tls-ca-file (the CA that signed the \
             broker's certificate), that the broker's certificate names the host in the URI, \
             and the client certificate"
        ))),
        _ => None,
    }
}

impl EventLoop {
    pub async fn poll(&mut self) -> Result<Happened, Ended> {
        match self {
            EventLoop::V311(l) => {
                use rumqttc::{ConnectReturnCode as Code, ConnectionError as E, Event, Packet};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Ok(Happened::Connected),
                    Ok(Event::Incoming(Packet::PubAck(a))) => Ok(Happened::Acknowledged(a.pkid)),
                    Ok(Event::Outgoing(o)) => Ok(outgoing(o)),
                    Ok(_) => Ok(Happened::Other),
                    Err(e) => Err(match &e {
                        E::ConnectionRefused(Code::BadUserNamePassword | Code::NotAuthorized) => {
                            Ended::Refused(CREDENTIALS.into())
                        }
                        E::ConnectionRefused(Code::BadClientId) => Ended::Refused(CLIENT_ID.into()),
                        E::ConnectionRefused(Code::RefusedProtocolVersion) => Ended::Refused(
                            "the broker does not speak MQTT 3.1.1: try protocol=5".into(),
                        ),
                        E::Tls(t) => tls_failed(t).unwrap_or(Ended::Lost(e.to_string())),
                        _ => Ended::Lost(e.to_string()),
                    }),
                }
            }
            EventLoop::V5(l) => {
                use v5::mqttbytes::v5::{ConnectReturnCode as Code, Packet};
                use v5::{ConnectionError as E, Event};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Ok(Happened::Connected),
                    Ok(Event::Incoming(Packet::PubAck(a))) => Ok(Happened::Acknowledged(a.pkid)),
                    Ok(Event::Outgoing(o)) => Ok(outgoing(o)),
                    Ok(_) => Ok(Happened::Other),
                    Err(e) => Err(match &e {
                        E::ConnectionRefused(
                            Code::BadUserNamePassword
                            | Code::NotAuthorized
                            | Code::BadAuthenticationMethod,
                        ) => Ended::Refused(CREDENTIALS.into()),
                        E::ConnectionRefused(
                            Code::BadClientId | Code::ClientIdentifierNotValid,
                        ) => Ended::Refused(CLIENT_ID.into()),
                        E::ConnectionRefused(
                            Code::RefusedProtocolVersion | Code::UnsupportedProtocolVersion,
                        ) => Ended::Refused(
                            "the broker does not speak MQTT 5: try protocol=3.1.1".into(),
                        ),
                        E::ConnectionRefused(Code::Banned) => {
                            Ended::Refused("the broker has banned this client".into())
                        }
                        E::Tls(t) => tls_failed(t).unwrap_or(Ended::Lost(e.to_string())),
                        _ => Ended::Lost(e.to_string()),
                    }),
                }
            }
        }
    }
}

fn outgoing(o: Outgoing) -> Happened {
    match o {
        Outgoing::Publish(pkid) => Happened::Written(pkid),
        Outgoing::Disconnect => Happened::Disconnected,
        _ => Happened::Other,
    }
}
