//! Writes straight into the rig's etcd, past the API server: for benchmarks that need more
//! objects than the API server creates in reasonable time (kube-apiserver 1.33+ counts every
//! ClusterIP on each Service create, so 100,000 Services take hours; docs/scale.md).
//!
//! The API server reads what is written here as its own: its storage decodes JSON as well as
//! protobuf, and its watch cache follows etcd, so the objects appear in lists and watches
//! like created ones. The caller makes them valid (e.g. from an object the API server
//! created); nothing here validates or defaults.
//!
//! Through etcd's v3 JSON gateway (`POST /v3/kv/txn`, keys and values base64), so no etcd
//! client library is needed; many puts per transaction, several transactions at a time.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Puts per transaction: etcd refuses more than `--max-txn-ops` (128 by default).
const PUTS_PER_TXN: usize = 128;
/// Transactions in flight, each on its own connection.
const CONNECTIONS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("connecting to etcd at 127.0.0.1:{port} failed")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP to etcd failed")]
    Http(#[from] hyper::Error),
    #[error("etcd refused a transaction ({status}): {body}")]
    Refused {
        status: http::StatusCode,
        body: String,
    },
}

/// etcd's client port on loopback, as the rig started it.
#[derive(Debug, Clone, Copy)]
pub struct Etcd {
    pub(crate) port: u16,
}

impl Etcd {
    /// Puts every `(key, value)`, `PUTS_PER_TXN` per transaction, at most `per_second` puts a
    /// second; returns how many were put. The pace matters to the API server: its watch cache
    /// closes a watcher that falls 100 events behind (`apiserver_terminated_watchers_total`),
    /// and its own informers are such watchers, so puts much faster than any real client
    /// creates would cost relists and leave its controllers working on stale caches.
    pub async fn put_all(
        &self,
        items: impl Iterator<Item = (String, Vec<u8>)>,
        per_second: u32,
    ) -> Result<usize, EtcdError> {
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            connections.push(tokio::sync::Mutex::new(self.connect().await?));
        }
        let connections = &connections;
        let batches = chunks(items, PUTS_PER_TXN);
        let every =
            std::time::Duration::from_secs_f64(PUTS_PER_TXN as f64 / f64::from(per_second.max(1)));
        let start = tokio::time::Instant::now();
        let paced = futures::stream::iter(batches.enumerate()).then(move |(i, batch)| async move {
            let due = start + every * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due).await;
            (i, batch)
        });
        let counts: Vec<usize> = paced
            .map(|(i, batch)| async move {
                let mut sender = connections[i % CONNECTIONS].lock().await;
                txn(&mut sender, &batch).await.map(|()| batch.len())
            })
            .buffer_unordered(CONNECTIONS)
            .try_collect()
            .await?;
        Ok(counts.into_iter().sum())
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, EtcdError> {
        let port = self.port;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|source| EtcdError::Connect { port, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| EtcdError::Connect { port, source })?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// One transaction without conditions: all of `puts` or none.
async fn txn(
    sender: &mut SendRequest<Full<Bytes>>,
    puts: &[(String, Vec<u8>)],
) -> Result<(), EtcdError> {
    let success: Vec<serde_json::Value> = puts
        .iter()
        .map(|(key, value)| {
            serde_json::json!({"requestPut": {"key": base64(key.as_bytes()), "value": base64(value)}})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "success": success }))
        .expect("a JSON value serializes");
    let request = http::Request::post("/v3/kv/txn")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a POST with a static path is a valid request");
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_success() {
        Ok(())
    } else {
        Err(EtcdError::Refused {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// `items` in vectors of at most `size`, lazily.
fn chunks<T>(mut items: impl Iterator<Item = T>, size: usize) -> impl Iterator<Item = Vec<T>> {
    std::iter::from_fn(move || {
        let chunk: Vec<T> = items.by_ref().take(size).collect();
        (!chunk.is_empty()).then_some(chunk)
    })
}

/// Standard base64 with padding (RFC 4648 section 4), as the gateway's JSON wants bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let word = group
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        // RFC 4648 section 10.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn chunks_keep_every_item_in_order() {
        let got: Vec<Vec<u32>> = chunks(0..7, 3).collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(chunks(0..0, 3).count(), 0);
    }
}
