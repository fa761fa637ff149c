//! Public-key authentication of a connection: keys from ssh-agent (`ssh.use_agent`, `SSH_AUTH_SOCK`)
//! first, then the identity file (`ssh.identity_file`, with its passphrase from the environment
//! variable named by `ssh.identity_passphrase_env`). Every attempt is recorded so that a refusal says
//! exactly which keys were offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::client_handler::ClientHandler;
use super::{ConnectOptions, Passphrase, SshError};

/// How the connection was authenticated, for `itervox doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A key held by ssh-agent (its comment and fingerprint).
    Agent { key: String },
    /// The identity file.
    IdentityFile { path: PathBuf },
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthMethod::Agent { key } => write!(f, "ssh-agent key {key}"),
            AuthMethod::IdentityFile { path } => write!(f, "key {}", path.display()),
        }
    }
}

/// Loads (and decrypts) a private key file. Decryption is CPU-heavy (bcrypt KDF), so callers run it on
/// the blocking pool.
pub(super) fn load_identity_file(
    path: &Path,
    passphrase: Option<&Passphrase>,
    passphrase_env: Option<&str>,
) -> Result<PrivateKey, SshError> {
    let key_err = |reason: String| SshError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| key_err(format!("cannot read it: {e}")))?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => match (passphrase, passphrase_env) {
            (Some(pass), env) => russh::keys::decode_secret_key(&text, Some(pass.expose())).map_err(|e| {
                key_err(format!(
                    "cannot decrypt it with the passphrase from ${}: wrong passphrase or damaged key ({e})",
                    env.unwrap_or("?")
                ))
            }),
            (None, Some(env)) => Err(key_err(format!(
                "the key is encrypted and the environment variable {env} (ssh.identity_passphrase_env) is not set"
            ))),
            (None, None) => Err(key_err(
                "the key is encrypted: set ssh.identity_passphrase_env to the name of an environment variable \
                 holding its passphrase, or load it into ssh-agent and set ssh.use_agent"
                    .to_string(),
            )),
        },
        Err(e) => Err(key_err(format!("not a private key in a format OpenSSH writes: {e}"))),
    }
}

/// Offers every configured key in turn until the host accepts one.
pub(super) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    host: &str,
    opts: &ConnectOptions,
    identity: Option<Result<Arc<PrivateKey>, SshError>>,
) -> Result<AuthMethod, SshError> {
    let mut tried: Vec<String> = Vec::new();
    let mut remaining: Vec<String> = Vec::new();
    let disconnected = |e: russh::Error| SshError::Disconnected {
        host: host.to_string(),
        reason: format!("during authentication: {e}"),
    };

    if opts.use_agent {
        match &opts.agent_socket {
            None => tried.push("ssh-agent: SSH_AUTH_SOCK is not set".to_string()),
            Some(socket) => match AgentClient::connect_uds(socket).await {
                Err(e) => tried.push(format!("ssh-agent at {}: cannot connect ({e})", socket.display())),
                Ok(mut agent) => match agent.request_identities().await {
                    Err(e) => tried.push(format!("ssh-agent at {}: cannot list keys ({e})", socket.display())),
                    Ok(identities) if identities.is_empty() => {
                        tried.push(format!("ssh-agent at {}: it holds no keys", socket.display()))
                    }
                    Ok(identities) => {
                        for identity in identities {
                            let AgentIdentity::PublicKey { key, comment } = identity else {
                                continue;
                            };
                            let label = describe_key(&key, &comment);
                            let hash = rsa_hash(handle, &key).await.map_err(disconnected)?;
                            let result = handle
                                .authenticate_publickey_with(user, key, hash, &mut agent)
                                .await
                                .map_err(|e| SshError::Disconnected {
                                    host: host.to_string(),
                                    reason: format!("while ssh-agent signed with {label}: {e}"),
                                })?;
                            match result {
                                AuthResult::Success => return Ok(AuthMethod::Agent { key: label }),
                                failure => {
                                    remaining = remaining_methods(&failure);
                                    tried.push(format!("the host refused ssh-agent key {label}"));
                                }
                            }
                        }
                    }
                },
            },
        }
    }

    let mut key_error = None;
    match (identity, &opts.identity_file) {
        (Some(Ok(key)), Some(path)) => {
            let label = format!("{} ({})", path.display(), describe_key(key.public_key(), ""));
            let hash = rsa_hash(handle, key.public_key()).await.map_err(disconnected)?;
            let result = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(disconnected)?;
            match result {
                AuthResult::Success => return Ok(AuthMethod::IdentityFile { path: path.clone() }),
                failure => {
                    remaining = remaining_methods(&failure);
                    tried.push(format!("the host refused key {label}"));
                }
            }
        }
        (Some(Err(e)), _) => {
            tried.push(e.to_string());
            key_error = Some(e);
        }
        _ => {}
    }

    match key_error {
        // Only the identity file was configured and it could not be used: that is the problem to fix.
        Some(e) if !opts.use_agent => Err(e),
        _ => Err(SshError::Auth {
            user: user.to_string(),
            host: host.to_string(),
            tried,
            remaining,
        }),
    }
}

/// The RSA signature hash the host prefers (SHA-512/256 per `server-sig-algs`); `None` for other keys.
async fn rsa_hash(handle: &Handle<ClientHandler>, key: &PublicKey) -> Result<Option<HashAlg>, russh::Error> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    Ok(handle.best_supported_rsa_hash().await?.flatten())
}

fn remaining_methods(result: &AuthResult) -> Vec<String> {
    match result {
        AuthResult::Failure { remaining_methods, .. } => remaining_methods
            .iter()
            .map(|m| <&'static str>::from(m).to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn describe_key(key: &PublicKey, comment: &str) -> String {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    if comment.is_empty() {
        format!("{} {fingerprint}", key.algorithm().as_str())
    } else {
        format!("{comment} ({} {fingerprint})", key.algorithm().as_str())
    }
}
