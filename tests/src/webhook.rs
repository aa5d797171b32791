//! A validating admission webhook that allows everything, but can hold the requests of one
//! user for a while first: a slow webhook on Leases, as a stand-in for any write that hangs
//! (a stalled connection, a frozen apiserver) while the rest of the API keeps working.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::https::{Answer, Handler, HttpsError, Server};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Server(#[from] HttpsError),
    #[error("registering the webhook configuration failed")]
    Register(#[source] kube::Error),
}

/// The longest a request is held: under the 30 s webhook timeout, so the apiserver always
/// gets an answer.
pub const MAX_HOLD: Duration = Duration::from_secs(28);

struct Shared {
    hold_user: watch::Receiver<Option<String>>,
    seen: Mutex<Vec<String>>,
}

/// A webhook on one resource's updates; holds the chosen user's requests while told to.
pub struct HoldingWebhook {
    server: Server,
    shared: Arc<Shared>,
    hold: watch::Sender<Option<String>>,
    name: String,
    client: Client,
}

impl std::fmt::Debug for HoldingWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldingWebhook")
            .field("address", &self.server.address)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HoldingWebhook {
    /// Serves the webhook and registers it for `UPDATE` of `group/version/resource`.
    pub async fn register(
        client: Client,
        name: &str,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<Self, WebhookError> {
        let (hold, hold_user) = watch::channel(None);
        let shared = Arc::new(Shared {
            hold_user,
            seen: Mutex::default(),
        });
        let server = Server::start(shared.clone(), true, "holding webhook").await?;
        let ca = server
            .ca_pem
            .clone()
            .expect("a TLS server always has its CA");
        let configuration = ValidatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            webhooks: Some(vec![ValidatingWebhook {
                name: format!("{name}.rig.baremetal-ccm.io"),
                admission_review_versions: vec!["v1".into()],
                side_effects: "None".into(),
                failure_policy: Some("Ignore".into()),
                timeout_seconds: Some(30),
                client_config: WebhookClientConfig {
                    url: Some(format!("https://{}/validate", server.address)),
                    ca_bundle: Some(ByteString(ca.into_bytes())),
                    service: None,
                },
                rules: Some(vec![RuleWithOperations {
                    api_groups: Some(vec![group.to_owned()]),
                    api_versions: Some(vec![version.to_owned()]),
                    operations: Some(vec!["UPDATE".into()]),
                    resources: Some(vec![resource.to_owned()]),
                    scope: Some("*".into()),
                }]),
                ..ValidatingWebhook::default()
            }]),
        };
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &configuration)
            .await
            .map_err(WebhookError::Register)?;
        Ok(Self {
            server,
            shared,
            hold,
            name: name.to_owned(),
            client,
        })
    }

    /// Holds `user`'s requests (each up to [`MAX_HOLD`]) from now on; `None` lets them pass.
    pub fn hold(&self, user: Option<&str>) {
        self.hold.send_replace(user.map(str::to_owned));
    }

    /// The users of every request the webhook has seen, in arrival order.
    pub fn seen(&self) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .expect("the webhook's log lock is never poisoned")
            .clone()
    }

    /// Unregisters the webhook (it also stops serving when dropped).
    pub async fn unregister(self) -> Result<(), kube::Error> {
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await
            .map(drop)
    }
}

impl Handler for Shared {
    async fn answer(&self, body: Vec<u8>) -> Answer {
        let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let request = &review["request"];
        let user = request["userInfo"]["username"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.seen
            .lock()
            .expect("the webhook's log lock is never poisoned")
            .push(user.clone());
        let mut hold_user = self.hold_user.clone();
        let held = |wanted: &Option<String>| wanted.as_deref() == Some(user.as_str());
        if held(&hold_user.borrow()) {
            // Released when the hold is lifted or moved to another user, else after the cap.
            let _ = tokio::time::timeout(MAX_HOLD, hold_user.wait_for(|w| !held(w))).await;
        }
        let response = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["uid"], "allowed": true},
        });
        Answer {
            status: 200,
            content_type: "application/json",
            body: response.to_string(),
        }
    }
}
