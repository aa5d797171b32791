//! The metrics listener's TLS settings: the operator's certificate and key (PEM files, read
//! once at start), else a self-signed certificate generated at start and kept in memory only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read a certificate from {path}")]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read a private key from {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("generating a self-signed certificate failed")]
    Generate(#[source] rcgen::Error),
    #[error("the certificate and key cannot be used for TLS")]
    Config(#[source] rustls::Error),
}

/// The server configuration with the certificate chain and key of `files` (certificate, key),
/// else with a fresh self-signed certificate.
pub fn server_config(files: Option<(&Path, &Path)>) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match files {
        Some((cert, key)) => (read_chain(cert)?, read_key(key)?),
        None => self_signed()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    // The listener speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |source| TlsError::Certificate {
        path: path.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Key {
        path: path.to_owned(),
        source,
    })
}

/// A certificate for `localhost` and `127.0.0.1`, signed by its own key: it encrypts, it
/// proves nothing about the server (scrapers skip verification or get a real certificate).
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(TlsError::Generate)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "baremetal-ccm metrics (self-signed)",
    );
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_generated_without_files() {
        let config = server_config(None).expect("a certificate is generated");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn the_operators_certificate_and_key_are_read_from_pem_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["metrics.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        server_config(Some((&cert_path, &key_path))).expect("the pair is usable");
    }

    #[test]
    fn unreadable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "not a certificate\n").expect("write");
        std::fs::write(&key, "not a key\n").expect("write");
        let error = server_config(Some((&cert, &key))).expect_err("no certificate in the file");
        assert!(
            matches!(&error, TlsError::NoCertificate { path } if *path == cert),
            "{error:?}"
        );
        let missing = dir.path().join("missing.crt");
        let error = server_config(Some((&missing, &key))).expect_err("no such file");
        assert!(error.to_string().contains("missing.crt"), "{error}");
    }
}
