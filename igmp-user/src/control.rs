//! The daemon's control socket: `igmp-snoop mdb add|del|flush` ask the
//! running daemon, which owns the table, to change it, and wait for its
//! answer. One JSON request line in, one JSON reply line out. The socket is
//! root's (mode 0600): it changes what every port receives.

use std::{
    net::IpAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::monitor;

/// A change to the table, asked of the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// A static (permanent) membership of `port` in `group` (IPv4 or
    /// IPv6, in the same JSON string form): it never expires, and no leave
    /// or query removes it.
    Add {
        port: String,
        group: IpAddr,
        vid: u16,
    },
    /// Removes a membership, static or learned, with its sources.
    Del {
        port: String,
        group: IpAddr,
        vid: u16,
    },
    /// Removes every membership (of `port` only, if given).
    Flush { port: Option<String> },
}

/// The daemon's answer: what it did, or why it did not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

impl Reply {
    pub fn done(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
        }
    }
}

/// A request with the way back to its asker.
pub type Asked = (Request, oneshot::Sender<Reply>);

/// Where the daemon using `pin_dir` takes requests, beside its monitor socket.
pub fn socket_path(pin_dir: &Path) -> PathBuf {
    monitor::socket_path(pin_dir).with_extension("ctl")
}

/// Takes requests on the control socket of `pin_dir` and hands each to the
/// daemon loop through `requests`.
pub async fn serve(pin_dir: &Path, requests: mpsc::Sender<Asked>) -> Result<()> {
    let path = socket_path(pin_dir);
    // A stale socket of a daemon that died: nobody listens on it any more.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} root's", path.display()))?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(answer(stream, requests.clone()));
    }
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<Asked>) {
    let (reader, mut writer) = stream.into_split();
    let Ok(Some(line)) = BufReader::new(reader).lines().next_line().await else {
        return;
    };
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (reply_tx, reply_rx) = oneshot::channel();
            if requests.send((request, reply_tx)).await.is_err() {
                Reply::refused("the daemon is stopping")
            } else {
                reply_rx
                    .await
                    .unwrap_or_else(|_| Reply::refused("the daemon is stopping"))
            }
        }
        Err(error) => Reply::refused(format!("not a request: {error}")),
    };
    if let Ok(mut line) = serde_json::to_string(&reply) {
        line.push('\n');
        let _ = writer.write_all(line.as_bytes()).await;
    }
}

/// Asks the daemon of `pin_dir`; its message when it did it, an error with
/// its message when it refused.
pub async fn ask(pin_dir: &Path, request: &Request) -> Result<String> {
    let path = socket_path(pin_dir);
    let stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "{}: no daemon to ask (is `igmp-snoop run --pin-dir {}` running?)",
            path.display(),
            pin_dir.display()
        )
    })?;
    let (reader, mut writer) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    writer.write_all(line.as_bytes()).await?;
    let answer = BufReader::new(reader)
        .lines()
        .next_line()
        .await?
        .context("the daemon stopped before it answered")?;
    let reply: Reply = serde_json::from_str(&answer).context("an answer that is no reply")?;
    if !reply.ok {
        bail!("{}", reply.message);
    }
    Ok(reply.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line_each() {
        let add = Request::Add {
            port: "p1".into(),
            group: std::net::Ipv4Addr::new(239, 1, 1, 1).into(),
            vid: 0,
        };
        let line = serde_json::to_string(&add).unwrap();
        assert_eq!(
            line,
            r#"{"command":"add","port":"p1","group":"239.1.1.1","vid":0}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), add);
        let flush = serde_json::to_string(&Request::Flush { port: None }).unwrap();
        assert_eq!(flush, r#"{"command":"flush","port":null}"#);
    }

    /// An IPv6 group travels in the same string form: a request line of an
    /// IPv4-only build still reads.
    #[test]
    fn an_ipv6_group_is_a_string_as_an_ipv4_one() {
        let del = Request::Del {
            port: "p1".into(),
            group: "ff0e::1".parse().unwrap(),
            vid: 10,
        };
        let line = serde_json::to_string(&del).unwrap();
        assert_eq!(
            line,
            r#"{"command":"del","port":"p1","group":"ff0e::1","vid":10}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), del);
    }
}
