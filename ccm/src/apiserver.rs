//! The connection to the Kubernetes API server: kubeconfig or in-cluster configuration.
//!
//! Never depends on cluster DNS or node addresses: in-cluster configuration uses the
//! `KUBERNETES_SERVICE_HOST` address, and a kubeconfig names the server explicitly.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::KubeArgs;

#[derive(Debug, thiserror::Error)]
pub enum ApiserverError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig given and no in-cluster configuration")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Builds the client from `--kubeconfig`, else from the in-cluster environment.
pub async fn client(args: &KubeArgs) -> Result<Client, ApiserverError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let error = |source| ApiserverError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(error)?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(error)?
        }
        None => Config::infer().await.map_err(ApiserverError::Infer)?,
    };
    Client::try_from(config).map_err(ApiserverError::Client)
}
