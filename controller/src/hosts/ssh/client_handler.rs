//! The russh client handler of one connection: applies the host key policy against known_hosts during
//! the key exchange, and reports the end of the connection (with its reason) to the rest of the
//! controller.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use russh::client::{self, DisconnectReason};
use russh::keys::{HashAlg, PublicKey, PublicKeyOrCertificate};
use tokio_util::sync::CancellationToken;

use super::SshError;
use crate::config::HostKeyPolicy;
use crate::hosts::known_hosts::{self, Verification};

/// How the host's key came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyTrust {
    /// It is recorded in known_hosts on this line.
    Known { line: usize },
    /// It was unknown and has just been recorded (`accept-new`).
    Learned,
    /// It was not checked (`strict_host_key_checking: no`).
    Unchecked,
}

/// The key the host presented and why it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyInfo {
    /// Key type, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub trust: HostKeyTrust,
}

/// State the connection task shares with the [`super::SshConnection`].
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Cancelled when the connection task ends, for whatever reason.
    pub closed: CancellationToken,
    /// Why the connection ended (first reason wins).
    pub reason: Mutex<Option<String>>,
    /// Set during the key exchange.
    pub host_key: Mutex<Option<HostKeyInfo>>,
    /// The last measured round trip in microseconds (0 = not measured yet).
    pub latency_micros: AtomicU64,
}

impl Shared {
    pub fn set_reason(&self, reason: String) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn host_key(&self) -> Option<HostKeyInfo> {
        self.host_key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The handler's error: russh's own, or a host key refusal carrying the full [`SshError`].
#[derive(Debug)]
pub(super) enum HandlerError {
    Russh(russh::Error),
    HostKey(Box<SshError>),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

pub(super) struct ClientHandler {
    /// The host as the user wrote it, for messages.
    pub host: String,
    /// The name looked up in known_hosts (`host` or `[host]:port`).
    pub known_hosts_name: String,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    /// Keepalive settings, to explain a timeout.
    pub keepalive_note: String,
    pub shared: Arc<Shared>,
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        // The handler lives exactly as long as the connection task: its drop is the end of the
        // connection, whatever the path (error, disconnect, last handle dropped).
        self.shared.set_reason("the connection ended".to_string());
        self.shared.closed.cancel();
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key: PublicKey = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // Host certificates are not requested; should one arrive, its bare key is checked.
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let algorithm = key.algorithm().as_str().to_string();
        let trust = match self.policy {
            HostKeyPolicy::No => {
                tracing::warn!(
                    host = %self.host,
                    %fingerprint,
                    "Accepting the host key without checking it (ssh.strict_host_key_checking: no)."
                );
                HostKeyTrust::Unchecked
            }
            policy => {
                let path = self.known_hosts.clone();
                let name = self.known_hosts_name.clone();
                let learn = policy == HostKeyPolicy::AcceptNew;
                let checked_key = key.clone();
                let verification =
                    tokio::task::spawn_blocking(move || known_hosts::verify(&path, &name, &checked_key, learn))
                        .await
                        .map_err(|e| HandlerError::Russh(russh::Error::IO(std::io::Error::other(e))))?
                        .map_err(|e| HandlerError::HostKey(Box::new(SshError::KnownHosts(e))))?;
                let refuse = |e: SshError| Err(HandlerError::HostKey(Box::new(e)));
                match verification {
                    Verification::Known { line } => HostKeyTrust::Known { line },
                    Verification::Learned => {
                        tracing::info!(
                            host = %self.host,
                            %fingerprint,
                            known_hosts = %self.known_hosts.display(),
                            "Recorded the new host's key (ssh.strict_host_key_checking: accept-new)."
                        );
                        HostKeyTrust::Learned
                    }
                    Verification::Unknown => {
                        return refuse(SshError::HostKeyUnknown {
                            host: self.host.clone(),
                            fingerprint,
                            known_hosts: self.known_hosts.clone(),
                        });
                    }
                    Verification::Changed { line } => {
                        return refuse(SshError::HostKeyChanged {
                            host: self.host.clone(),
                            fingerprint,
                            known_hosts: self.known_hosts.clone(),
                            line,
                        });
                    }
                    Verification::Revoked { line } => {
                        return refuse(SshError::HostKeyRevoked {
                            host: self.host.clone(),
                            fingerprint,
                            known_hosts: self.known_hosts.clone(),
                            line,
                        });
                    }
                }
            }
        };
        *self.shared.host_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(HostKeyInfo {
            algorithm,
            fingerprint,
            trust,
        });
        Ok(true)
    }

    async fn disconnected(&mut self, reason: DisconnectReason<Self::Error>) -> Result<(), Self::Error> {
        let text = match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                format!(
                    "the host closed the connection ({:?}: {})",
                    info.reason_code, info.message
                )
            }
            DisconnectReason::Error(HandlerError::Russh(e)) => match e {
                russh::Error::KeepaliveTimeout => {
                    format!(
                        "the host stopped answering keepalives ({}); the host or the network is down",
                        self.keepalive_note
                    )
                }
                russh::Error::InactivityTimeout => {
                    format!(
                        "nothing received from the host ({}); the host or the network is down",
                        self.keepalive_note
                    )
                }
                russh::Error::IO(e) => format!("connection lost: {e}"),
                russh::Error::HUP | russh::Error::Disconnect => "the host closed the connection".to_string(),
                other => format!("connection failed: {other}"),
            },
            DisconnectReason::Error(HandlerError::HostKey(e)) => e.to_string(),
        };
        tracing::debug!(host = %self.host, reason = %text, "SSH connection ended.");
        self.shared.set_reason(text);
        Ok(())
    }
}
