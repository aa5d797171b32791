//! A small HTTP/1.1 server on a loopback port, optionally over TLS with a fresh test CA, for
//! the rig's stand-ins of external endpoints (the OpenNebula XML-RPC endpoint, admission
//! webhooks). Keep-alive, `Content-Length` bodies only; the handler sees each request body.
//!
//! And the client side, for servers under test that speak HTTPS (the product's metrics
//! listener): one `GET` per connection, the certificate checked against a test CA or, for a
//! self-signed one, not at all.

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
    #[error("the CA certificate is not valid PEM")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    #[error("cannot connect to {address}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS handshake with {address} failed")]
    Handshake {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the exchange with {address} failed")]
    Exchange {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the answer from {address} is not HTTP/1.1: {head:?}")]
    Malformed { address: SocketAddr, head: String },
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

/// A serving certificate for `127.0.0.1` and `localhost` and the fresh CA that signed it, as
/// PEM.
#[derive(Debug, Clone)]
pub struct LocalhostCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl LocalhostCertificate {
    /// Issues one from a fresh CA named `ca_name`.
    pub fn issue(ca_name: &str) -> Result<Self, HttpsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{ca_name} test CA"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, ca_name);
        let cert = params.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

fn localhost_tls(ca_name: &str) -> Result<(String, rustls::ServerConfig), HttpsError> {
    let issued = LocalhostCertificate::issue(ca_name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![issued.cert_der],
            rustls::pki_types::PrivateKeyDer::Pkcs8(issued.key_der.into()),
        )?;
    Ok((issued.ca_pem, config))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Signed for `localhost` by this CA (PEM).
    Ca(&'a str),
    /// Anything: for a server's self-signed certificate, which proves nothing anyway (what
    /// scrapers do with `insecure_skip_verify`). The handshake's signatures are still checked.
    AnyCertificate,
}

/// A TLS connection to `address` (server name `localhost`), handshake done.
pub async fn connect_tls(
    address: SocketAddr,
    trust: Trust<'_>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HttpsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::Ca(pem) => {
            use rustls::pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            let ca = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(HttpsError::CaPem)?;
            roots.add(ca)?;
            builder.with_root_certificates(roots)
        }
        Trust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    }
    .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|source| HttpsError::Connect { address, source })?;
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .expect("localhost is a valid server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|source| HttpsError::Handshake { address, source })
}

/// An answer to [`get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header lines as sent, `Name: value`.
    pub headers: Vec<String>,
    pub body: String,
}

/// `GET path` over HTTPS with `Authorization: Bearer <bearer>` when given, on a connection of
/// its own.
pub async fn get(
    address: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    trust: Trust<'_>,
) -> Result<Reply, HttpsError> {
    let mut stream = connect_tls(address, trust).await?;
    let authorization = bearer
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    let exchange = |source| HttpsError::Exchange { address, source };
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(exchange)?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        // A server that closes without close_notify after its answer has still answered.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(source) => return Err(exchange(source)),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let malformed = || HttpsError::Malformed {
        address,
        head: text.chars().take(200).collect(),
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let mut lines = head.split("\r\n");
    let status = (lines.next())
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|code| code.parse().ok())
        .ok_or_else(malformed)?;
    Ok(Reply {
        status,
        headers: lines.map(str::to_owned).collect(),
        body: body.to_owned(),
    })
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
