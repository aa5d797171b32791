//! Where gobgpd's API is (`unix:///path/gobgpd.sock` or `http://127.0.0.1:PORT`) and the
//! tonic channel to it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Uri};

/// gobgpd's API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (`--api-hosts=unix:///run/gobgp/gobgpd.sock`).
    Unix(PathBuf),
    /// Plain HTTP/2 over TCP (`--api-hosts=127.0.0.1:50051`).
    Http(Uri),
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("gobgpd endpoint {0:?} is neither unix:///path nor http://host:port")]
    Scheme(String),
    #[error("gobgpd endpoint {0:?} names no socket path")]
    EmptyPath(String),
    #[error("gobgpd endpoint {endpoint:?} is not a valid URI")]
    Uri {
        endpoint: String,
        #[source]
        source: http::uri::InvalidUri,
    },
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("unix:") {
            // unix:///abs/path and unix:/abs/path are absolute; unix:rel/path is relative.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(EndpointError::EmptyPath(text.to_owned()));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if text.starts_with("http://") {
            let uri = text.parse().map_err(|source| EndpointError::Uri {
                endpoint: text.to_owned(),
                source,
            })?;
            return Ok(Endpoint::Http(uri));
        }
        Err(EndpointError::Scheme(text.to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(uri) => write!(f, "{uri}"),
        }
    }
}

/// Connects a channel; later calls reconnect on their own if the connection drops.
pub(crate) async fn channel(
    endpoint: &Endpoint,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    match endpoint {
        Endpoint::Http(uri) => {
            Channel::builder(uri.clone())
                .connect_timeout(connect_timeout)
                .connect()
                .await
        }
        Endpoint::Unix(path) => {
            let path = path.clone();
            // The URI is required by tonic but unused: the connector always dials the socket.
            Channel::from_static("http://gobgpd.invalid")
                .connect_timeout(connect_timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_and_http_endpoints_are_recognized() {
        assert_eq!(
            "unix:///run/gobgp/gobgpd.sock".parse::<Endpoint>().ok(),
            Some(Endpoint::Unix("/run/gobgp/gobgpd.sock".into()))
        );
        assert_eq!(
            "unix:run/gobgpd.sock".parse::<Endpoint>().ok(),
            Some(Endpoint::Unix("run/gobgpd.sock".into()))
        );
        let http = "http://127.0.0.1:50051".parse::<Endpoint>().expect("http");
        assert_eq!(http.to_string(), "http://127.0.0.1:50051/");
        assert!(matches!(
            "unix://".parse::<Endpoint>(),
            Err(EndpointError::EmptyPath(_))
        ));
        assert!(matches!(
            "127.0.0.1:50051".parse::<Endpoint>(),
            Err(EndpointError::Scheme(_))
        ));
    }
}
