//! A small HTTP/1.1 server on a loopback port, optionally over TLS with a fresh test CA, for
//! the rig's stand-ins of external endpoints (the OpenNebula XML-RPC endpoint, admission
//! webhooks). Keep-alive, `Content-Length` bodies only; the handler sees each request body.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("cannot listen on loopback")]
    Listen(#[source] std::io::Error),
    #[error("generating the test certificates failed")]
    Certificates(#[from] rcgen::Error),
    #[error("setting up TLS failed")]
    Tls(#[from] rustls::Error),
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// What serves the requests: called with each request body.
pub trait Handler: Send + Sync + 'static {
    fn answer(&self, body: Vec<u8>) -> impl Future<Output = Answer> + Send;
}

/// A running server; dropping it stops it and every connection.
#[derive(Debug)]
pub struct Server {
    pub address: SocketAddr,
    /// The PEM of the CA that signed a TLS server's certificate.
    pub ca_pem: Option<String>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves plain HTTP (`tls: false`) or HTTPS with a certificate for `127.0.0.1` and
    /// `localhost` from a fresh CA named `ca_name`.
    pub async fn start<H: Handler>(
        handler: Arc<H>,
        tls: bool,
        ca_name: &str,
    ) -> Result<Self, HttpsError> {
        let (ca_pem, acceptor) = if tls {
            let (pem, config) = localhost_tls(ca_name)?;
            (
                Some(pem),
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            )
        } else {
            (None, None)
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HttpsError::Listen)?;
        let address = listener.local_addr().map_err(HttpsError::Listen)?;
        let task = tokio::spawn(accept_loop(listener, acceptor, handler));
        Ok(Server {
            address,
            ca_pem,
            task,
        })
    }
}

fn localhost_tls(ca_name: &str) -> Result<(String, rustls::ServerConfig), HttpsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{ca_name} test CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, ca_name);
    let cert = params.signed_by(&key, &ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    Ok((ca.pem(), config))
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Arc<H>,
) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or the like: give the system a moment instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let handler = handler.clone();
        match &tls {
            None => {
                connections.spawn(serve_connection(stream, handler));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    // A client that rejects our certificate ends the handshake; nothing to do.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, handler).await;
                    }
                });
            }
        }
        while connections.try_join_next().is_some() {}
    }
}

/// HTTP/1.1 with keep-alive: request head, `Content-Length` body, answer, repeat.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin, H: Handler>(
    stream: S,
    handler: Arc<H>,
) {
    let mut stream = BufReader::new(stream);
    while let Some(body) = read_request(&mut stream).await {
        let answer = handler.answer(body).await;
        let reason = if answer.status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            answer.status,
            answer.content_type,
            answer.body.len()
        );
        let inner = stream.get_mut();
        let written = async {
            inner.write_all(head.as_bytes()).await?;
            inner.write_all(answer.body.as_bytes()).await?;
            inner.flush().await
        };
        if written.await.is_err() {
            return;
        }
    }
}

/// The body of the next request; `None` when the client closed or sent nonsense.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read_until(b'\n', &mut head).await.ok()?;
        if read == 0 || head.len() > MAX_HEAD {
            return None;
        }
    }
    let head = String::from_utf8(head).ok()?;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())?;
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}
