//! A TCP proxy on loopback that can stall: while frozen it neither reads nor forwards, so the
//! connections through it stay open and silent (no RST, no FIN), as over a stalled network
//! path or a half-open connection. Severing then drops every connection it holds, bytes in
//! flight included (the path never recovers), and new connections pass again.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Frozen,
}

/// A running proxy; dropping it stops it and every connection.
#[derive(Debug)]
pub struct StallingProxy {
    pub address: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped by [`StallingProxy::sever`]: connections of an older generation end.
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StallingProxy {
    /// Forwards connections to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let (generation, generation_rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let born = *generation_rx.borrow();
                let (mode, generation) = (mode_rx.clone(), generation_rx.clone());
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    pipe(client, server, mode, generation, born).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            address,
            mode,
            generation,
            task,
        })
    }

    /// Stops forwarding in both directions; connections stay open.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Drops every connection made so far (what they had in flight is lost), then forwards
    /// again.
    pub fn sever(&self) {
        self.generation.send_modify(|g| *g += 1);
        self.mode.send_replace(Mode::Forward);
    }
}

/// Copies both ways, one chunk at a time, each only while forwarding; ends when either side
/// closes or the connection's generation is severed.
async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mode: watch::Receiver<Mode>,
    generation: watch::Receiver<u64>,
    born: u64,
) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = copy(
        client_read,
        server_write,
        mode.clone(),
        generation.clone(),
        born,
    );
    let down = copy(server_read, client_write, mode, generation, born);
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut generation: watch::Receiver<u64>,
    born: u64,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // Neither read nor write while frozen; end once severed.
        let severed = |g: &u64| *g != born;
        tokio::select! {
            result = mode.wait_for(|m| *m == Mode::Forward) => {
                if result.is_err() {
                    return;
                }
            }
            _ = generation.wait_for(severed) => return,
        }
        if severed(&generation.borrow()) {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = generation.wait_for(severed) => return,
            // A freeze while waiting for bytes: leave them unread.
            _ = mode.wait_for(|m| *m == Mode::Frozen) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a freeze wait for the thaw.
        tokio::select! {
            result = mode.wait_for(|m| *m == Mode::Forward) => {
                if result.is_err() {
                    return;
                }
            }
            _ = generation.wait_for(severed) => return,
        }
        if severed(&generation.borrow()) || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
