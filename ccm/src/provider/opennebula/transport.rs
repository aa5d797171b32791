//! HTTP(S) to the XML-RPC endpoint: one POST per call, each bounded by the configured timeout
//! (connection, request and the whole response) and by a response size limit; TLS with the
//! system's roots, a configured CA file, or (when asked) no verification at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::Tls;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read the CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} holds an unreadable PEM block")]
    CaPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the CA file {path} holds no certificate")]
    CaEmpty { path: PathBuf },
    #[error("the CA file {path} holds a certificate that cannot be a trust anchor")]
    CaRejected {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot load the system's trusted roots (set tls.caFile)")]
    NativeRoots(#[source] std::io::Error),
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    #[error("cannot build the request to {endpoint}")]
    Request {
        endpoint: Uri,
        #[source]
        source: http::Error,
    },
    #[error("the request to {endpoint} failed")]
    Send {
        endpoint: Uri,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the answer of {endpoint} is larger than {limit} bytes (maxResponseBytes)")]
    TooLarge { endpoint: Uri, limit: usize },
    #[error("reading the response of {endpoint} failed")]
    Body {
        endpoint: Uri,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{endpoint} answered HTTP {status}")]
    Status {
        endpoint: Uri,
        status: http::StatusCode,
    },
    #[error("{endpoint} did not answer within {timeout:?}")]
    Timeout {
        endpoint: Uri,
        timeout: Duration,
        #[source]
        source: tokio::time::error::Elapsed,
    },
}

/// A connection pool to the endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Uri,
    timeout: Duration,
    /// The largest answer read; a larger one is an error rather than unbounded memory.
    max_response: usize,
}

impl Transport {
    pub(crate) async fn new(
        endpoint: Uri,
        tls: &Tls,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let https = endpoint.scheme_str() == Some("https");
        let tls_config = client_tls(tls, https).await?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Transport {
            client: Client::builder(TokioExecutor::new()).build(connector),
            endpoint,
            timeout,
            max_response: usize::try_from(super::config::DEFAULT_MAX_RESPONSE_BYTES)
                .unwrap_or(usize::MAX),
        })
    }

    /// Answers larger than `bytes` are refused.
    pub(crate) fn with_max_response(mut self, bytes: u64) -> Self {
        self.max_response = usize::try_from(bytes).unwrap_or(usize::MAX);
        self
    }

    /// POSTs an XML document and returns the body of a 2xx answer.
    pub(crate) async fn post(&self, xml: String) -> Result<Bytes, TransportError> {
        let request = http::Request::post(self.endpoint.clone())
            .header(CONTENT_TYPE, "text/xml")
            .header(
                USER_AGENT,
                concat!("baremetal-ccm/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(xml)))
            .map_err(|source| TransportError::Request {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| TransportError::Send {
                        endpoint: self.endpoint.clone(),
                        source,
                    })?;
            let status = response.status();
            if !status.is_success() {
                return Err(TransportError::Status {
                    endpoint: self.endpoint.clone(),
                    status,
                });
            }
            let body = Limited::new(response.into_body(), self.max_response)
                .collect()
                .await
                .map_err(|source| {
                    if source
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        TransportError::TooLarge {
                            endpoint: self.endpoint.clone(),
                            limit: self.max_response,
                        }
                    } else {
                        TransportError::Body {
                            endpoint: self.endpoint.clone(),
                            source,
                        }
                    }
                })?;
            Ok(body.to_bytes())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(source) => Err(TransportError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
                source,
            }),
        }
    }
}

async fn client_tls(tls: &Tls, https: bool) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::Tls)?;
    let config = if !https {
        // Never used for plain HTTP; empty roots avoid needing the system's.
        builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth()
    } else if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &tls.ca_file {
        builder
            .with_root_certificates(read_roots(path).await?)
            .with_no_client_auth()
    } else {
        builder
            .with_native_roots()
            .map_err(TransportError::NativeRoots)?
            .with_no_client_auth()
    };
    Ok(config)
}

async fn read_roots(path: &Path) -> Result<RootCertStore, TransportError> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|source| TransportError::CaFile {
            path: path.to_owned(),
            source,
        })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TransportError::CaPem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TransportError::CaEmpty {
            path: path.to_owned(),
        });
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|source| TransportError::CaRejected {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// `insecureSkipVerify`: any certificate for any name is accepted; the handshake signatures
/// are still checked, so the connection is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
