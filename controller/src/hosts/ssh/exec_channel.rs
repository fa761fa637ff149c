//! `ExecChannel`: one command running on a host over an SSH exec channel, with its stdin as
//! `AsyncWrite`, its stdout as `AsyncRead`, its stderr as lines and its exit status as a watch.
//!
//! A pump task owns the channel's read side and routes every message as it arrives, so stderr and the
//! exit status flow even while nobody reads stdout. russh has no per-channel flow control on the
//! receiving side (it grants window as soon as data arrives and then waits for the channel's queue),
//! so a stdout reader that stops reading eventually stalls the whole connection: read stdout
//! promptly, or drop it (then further output is discarded).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

/// Chunks of stdout buffered between the pump and the reader (each at most one SSH packet, 32 KiB).
const STDOUT_QUEUE: usize = 64;
/// Stderr lines buffered for a reader; when full, further lines are dropped (and counted in a log).
const STDERR_QUEUE: usize = 1024;
/// Longest stderr line kept; longer ones are cut.
const MAX_STDERR_LINE: usize = 64 * 1024;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by a signal (name without `SIG`, e.g. `TERM`).
    Signal { signal: String, core_dumped: bool },
    /// The channel ended without an exit status: the connection was lost or the channel was closed
    /// before the command finished.
    Unknown,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The exit code, when the command exited normally.
    pub fn code(&self) -> Option<u32> {
        match self {
            ExitStatus::Code(c) => Some(*c),
            _ => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal { signal, core_dumped } => {
                write!(
                    f,
                    "killed by SIG{signal}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            ExitStatus::Unknown => write!(f, "no exit status (channel or connection closed)"),
        }
    }
}

/// Everything a finished command produced (see [`super::SshConnection::run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Stdout as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy UTF-8).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A command running on a host. The parts are public so they can go to different tasks:
/// `stdout` to a reader, `stdin` to a writer, `exit` to whoever waits for the end.
///
/// The channel is closed (the remote command sees EOF on stdin and a closed stdout) when `stdin`,
/// `stdout` and `control` have all been dropped, or on [`ExecControl::close`]. Shutting `stdin` down
/// (`AsyncWriteExt::shutdown`) sends EOF but keeps the channel open for the output.
#[derive(Debug)]
pub struct ExecChannel {
    pub stdin: ExecStdin,
    pub stdout: ExecStdout,
    pub stderr: StderrLines,
    pub exit: ExitWatch,
    pub control: ExecControl,
}

/// Closes the channel when the last of stdin, stdout and control is dropped.
#[derive(Debug)]
struct ChannelRelease {
    _guard: DropGuard,
}

/// The command's stdin. Writes fail with `BrokenPipe` once the channel has ended.
pub struct ExecStdin {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
    ended_token: CancellationToken,
    _release: Arc<ChannelRelease>,
}

impl std::fmt::Debug for ExecStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStdin").finish_non_exhaustive()
    }
}

impl ExecStdin {
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.ended_token.is_cancelled() || self.ended.as_mut().poll(cx).is_ready() {
            Poll::Ready(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the remote command's channel has ended",
            ))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncWrite for ExecStdin {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.ended_token.is_cancelled() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the remote command's channel has ended",
            )));
        }
        match self.inner.as_mut().poll_write(cx, buf) {
            Poll::Ready(r) => Poll::Ready(r),
            // A channel the host has closed never grants window again: stop waiting when it ends.
            Poll::Pending => self.poll_ended(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ended_token.is_cancelled() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.as_mut().poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.poll_ended(cx).map(|_| Ok(())),
        }
    }
}

/// The command's stdout as a byte stream: EOF when the command closes it; an `UnexpectedEof`
/// ("connection lost") error when the connection drops first.
#[derive(Debug)]
pub struct ExecStdout {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
    _release: Arc<ChannelRelease>,
}

impl AsyncRead for ExecStdout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                buf.put_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Ok(bytes)) => self.chunk = bytes,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The command's stderr, split into lines (without the newline, lossy UTF-8).
#[derive(Debug)]
pub struct StderrLines {
    rx: mpsc::Receiver<String>,
}

impl StderrLines {
    /// The next line, or `None` when stderr has ended.
    pub async fn next_line(&mut self) -> Option<String> {
        self.rx.recv().await
    }
}

/// The command's exit status, once the channel has ended. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExitWatch {
    rx: watch::Receiver<Option<ExitStatus>>,
}

impl ExitWatch {
    /// Waits until the channel has ended and returns how the command ended.
    pub async fn wait(&mut self) -> ExitStatus {
        match self.rx.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or(ExitStatus::Unknown),
            Err(_) => ExitStatus::Unknown,
        }
    }

    /// The exit status if the channel has already ended.
    pub fn get(&self) -> Option<ExitStatus> {
        self.rx.borrow().clone()
    }
}

/// Signals and closing for the channel.
#[derive(Debug)]
pub struct ExecControl {
    write: Arc<ChannelWriteHalf<Msg>>,
    released: CancellationToken,
    _release: Arc<ChannelRelease>,
}

impl ExecControl {
    /// Sends a signal to the remote command (OpenSSH delivers it to the command's process).
    pub async fn signal(&self, signal: Sig) -> Result<(), russh::Error> {
        self.write.signal(signal).await
    }

    /// Closes the channel now: the remote command's stdin and stdout are closed, stdout here ends,
    /// and the exit status becomes whatever had arrived (usually [`ExitStatus::Unknown`]).
    pub fn close(&self) {
        self.released.cancel();
    }
}

/// Wires a freshly exec'd channel into an [`ExecChannel`] and spawns its pump. `early` holds messages
/// that arrived while waiting for the exec reply.
pub(super) fn start(
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    early: Vec<ChannelMsg>,
    host: String,
) -> ExecChannel {
    let write = Arc::new(write);
    let released = CancellationToken::new();
    let ended = CancellationToken::new();
    let release = Arc::new(ChannelRelease {
        _guard: released.clone().drop_guard(),
    });
    let (stdout_tx, stdout_rx) = mpsc::channel(STDOUT_QUEUE);
    let (stderr_tx, stderr_rx) = mpsc::channel(STDERR_QUEUE);
    let (exit_tx, exit_rx) = watch::channel(None);
    let stdin = ExecStdin {
        inner: Box::pin(write.make_writer()),
        ended: Box::pin(ended.clone().cancelled_owned()),
        ended_token: ended.clone(),
        _release: release.clone(),
    };
    let pump = Pump {
        read,
        write: write.clone(),
        stdout: Some(stdout_tx),
        stderr: Some(stderr_tx),
        stderr_partial: Vec::new(),
        stderr_dropped: 0,
        status: None,
        host,
    };
    tokio::spawn(pump.run(early, released.clone(), ended, exit_tx));
    ExecChannel {
        stdin,
        stdout: ExecStdout {
            rx: stdout_rx,
            chunk: Bytes::new(),
            _release: release.clone(),
        },
        stderr: StderrLines { rx: stderr_rx },
        exit: ExitWatch { rx: exit_rx },
        control: ExecControl {
            write,
            released,
            _release: release,
        },
    }
}

struct Pump {
    read: ChannelReadHalf,
    write: Arc<ChannelWriteHalf<Msg>>,
    stdout: Option<mpsc::Sender<io::Result<Bytes>>>,
    stderr: Option<mpsc::Sender<String>>,
    stderr_partial: Vec<u8>,
    stderr_dropped: u64,
    status: Option<ExitStatus>,
    host: String,
}

impl Pump {
    async fn run(
        mut self,
        early: Vec<ChannelMsg>,
        released: CancellationToken,
        ended: CancellationToken,
        exit_tx: watch::Sender<Option<ExitStatus>>,
    ) {
        let mut closed_by_host = false;
        let mut closed_here = false;
        for msg in early {
            if self.handle(msg).await {
                closed_by_host = true;
            }
        }
        while !closed_by_host {
            tokio::select! {
                // Cancel-safe: `wait` is a plain mpsc receive.
                msg = self.read.wait() => match msg {
                    Some(msg) => closed_by_host = self.handle(msg).await,
                    None => break,
                },
                () = released.cancelled() => {
                    let _ = self.write.close().await;
                    self.stdout = None;
                    // russh forgets a channel as soon as it sends our close and drops the host's
                    // answering close, so waiting for it would wait forever: take what has already
                    // arrived and stop.
                    while let Ok(Some(msg)) = tokio::time::timeout(std::time::Duration::ZERO, self.read.wait()).await {
                        if self.handle(msg).await {
                            break;
                        }
                    }
                    closed_here = true;
                    break;
                }
            }
        }
        self.flush_stderr(true);
        if !closed_by_host
            && !closed_here
            && let Some(stdout) = self.stdout.take()
        {
            let _ = stdout
                .send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("ssh connection to {} lost before the command's output ended", self.host),
                )))
                .await;
        }
        if self.stderr_dropped > 0 {
            tracing::debug!(host = %self.host, lines = self.stderr_dropped, "Dropped stderr lines nobody read.");
        }
        ended.cancel();
        exit_tx.send_replace(Some(self.status.take().unwrap_or(ExitStatus::Unknown)));
    }

    /// Routes one message; true when the host closed the channel.
    async fn handle(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => {
                if let Some(tx) = &self.stdout
                    && tx.send(Ok(data)).await.is_err()
                {
                    self.stdout = None;
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                self.stderr_partial.extend_from_slice(&data);
                self.flush_stderr(false);
            }
            ChannelMsg::Eof => self.stdout = None,
            ChannelMsg::ExitStatus { exit_status } => self.status = Some(ExitStatus::Code(exit_status)),
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                ..
            } => {
                self.status = Some(ExitStatus::Signal {
                    signal: signal_name_of(&signal_name),
                    core_dumped,
                })
            }
            ChannelMsg::Close => return true,
            _ => {}
        }
        false
    }

    /// Sends complete stderr lines (all remaining bytes when `end`); cuts lines that grow too long.
    fn flush_stderr(&mut self, end: bool) {
        loop {
            let line = match self.stderr_partial.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let mut line: Vec<u8> = self.stderr_partial.drain(..=pos).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    line
                }
                None if self.stderr_partial.len() > MAX_STDERR_LINE => {
                    self.stderr_partial.drain(..MAX_STDERR_LINE).collect()
                }
                None if end && !self.stderr_partial.is_empty() => std::mem::take(&mut self.stderr_partial),
                None => return,
            };
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(tx) = &self.stderr {
                match tx.try_send(text) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => self.stderr_dropped += 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => self.stderr = None,
                }
            }
        }
    }
}

/// The signal's name as OpenSSH sends it (`TERM`, `KILL`, …).
pub(super) fn signal_name_of(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name.as_str(),
    }
    .to_string()
}
