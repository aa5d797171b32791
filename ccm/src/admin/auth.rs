//! Delegated authentication and authorization of the metrics listener's callers, the way
//! upstream components serve their secure ports: the caller's bearer token goes to the API
//! server as a TokenReview, and the user it names must be allowed `get` on the non-resource
//! path `/metrics` (a SubjectAccessReview).
//!
//! Answers are remembered for [`CACHE_TTL`] per token (at most [`CACHE_ENTRIES`] tokens, kept
//! as SHA-256 digests, never as text), so a scrape every 15 s costs at most the two reviews
//! per token and interval. Both reviews together get [`REVIEW_TIMEOUT`]: an API server that
//! does not answer in time makes the request fail with 503, it never hangs it, and that
//! failure is not remembered.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The path callers must be allowed to `get`.
pub(crate) const METRICS_PATH: &str = "/metrics";
/// How long an answer (allowed, unauthenticated or forbidden) is remembered.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(10);
/// Tokens remembered at once.
pub(crate) const CACHE_ENTRIES: usize = 1024;
/// How long the API server may take for both reviews of one request.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request to the metrics listener is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The token is valid and its user may read `/metrics`: 200.
    Allowed,
    /// No bearer token, or one the API server does not accept: 401.
    Unauthenticated,
    /// A valid token whose user may not read `/metrics`: 403.
    Forbidden,
    /// The API server could not be asked in time: 503.
    Unavailable,
}

impl Decision {
    /// The decision's `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Forbidden => "forbidden",
            Decision::Unavailable => "unavailable",
        }
    }
}

impl EncodeLabelValue for Decision {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: Decision,
}

/// Requests to the metrics listener, by decision.
pub(crate) type AuthMetrics = Family<ResultLabel, Counter>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReviewError {
    #[error("the {review} was not accepted by the API server")]
    Request {
        review: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the API server did not answer the reviews within {0:?}")]
    Timeout(Duration),
}

/// The bearer token of an `Authorization` header (`Bearer <token>`, the scheme in any case).
pub(crate) fn bearer_token(header: Option<&HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Remembered decisions per token digest, each until its expiry; bounded.
#[derive(Debug)]
pub(crate) struct DecisionCache {
    entries: HashMap<Digest, (Decision, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl DecisionCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The decision remembered for `token` if it has not expired at `now`.
    pub(crate) fn get(&mut self, token: &str, now: Instant) -> Option<Decision> {
        let key = digest(token);
        match self.entries.get(&key) {
            Some((decision, expires)) if *expires > now => Some(*decision),
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `token` from `now`. When full, expired entries go first, then
    /// the one closest to expiry.
    pub(crate) fn insert(&mut self, token: &str, decision: Decision, now: Instant) {
        let key = digest(token);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= self.capacity {
                let soonest = (self.entries.iter())
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(key, _)| *key);
                if let Some(soonest) = soonest {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, (decision, now + self.ttl));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Decides requests to the metrics listener by asking the API server, with the cache above.
pub struct Authorizer {
    client: kube::Client,
    cache: Mutex<DecisionCache>,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// `client` needs `create` on `tokenreviews` and `subjectaccessreviews`; give it its own
    /// rate-limit budget, so that a flood of bad tokens never delays the controllers.
    pub fn new(client: kube::Client, metrics: AuthMetrics) -> Self {
        Self {
            client,
            cache: Mutex::new(DecisionCache::new(CACHE_TTL, CACHE_ENTRIES)),
            metrics,
        }
    }

    /// The decision for a request with this `Authorization` header.
    pub async fn decide(&self, authorization: Option<&HeaderValue>) -> Decision {
        let decision = match bearer_token(authorization) {
            None => Decision::Unauthenticated,
            Some(token) => self.decide_token(token).await,
        };
        self.metrics
            .get_or_create(&ResultLabel { result: decision })
            .inc();
        decision
    }

    async fn decide_token(&self, token: &str) -> Decision {
        if let Some(decision) = self.cache().get(token, Instant::now()) {
            return decision;
        }
        let reviewed = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token))
            .await
            .unwrap_or(Err(ReviewError::Timeout(REVIEW_TIMEOUT)));
        match reviewed {
            Ok(decision) => {
                self.cache().insert(token, decision, Instant::now());
                tracing::debug!(?decision, "metrics caller reviewed");
                decision
            }
            Err(error) => {
                let error = crate::telemetry::error_chain(&error);
                tracing::warn!(%error, "cannot review a metrics caller; answering 503");
                Decision::Unavailable
            }
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache
            .lock()
            .expect("the decision cache lock is never poisoned: its users do not panic")
    }

    async fn review(&self, token: &str) -> Result<Decision, ReviewError> {
        let Some(user) = self.authenticate(token).await? else {
            return Ok(Decision::Unauthenticated);
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(METRICS_PATH.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| ReviewError::Request {
                review: "SubjectAccessReview",
                source,
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        Ok(if allowed {
            Decision::Allowed
        } else {
            Decision::Forbidden
        })
    }

    /// The user the token belongs to; `None` when the API server does not accept it.
    async fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| ReviewError::Request {
                review: "TokenReview",
                source,
            })?;
        Ok(answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("test header is valid")
    }

    #[test]
    fn only_a_bearer_header_with_one_token_carries_a_token() {
        assert_eq!(
            bearer_token(Some(&header("Bearer abc.def"))),
            Some("abc.def")
        );
        assert_eq!(bearer_token(Some(&header("bearer abc"))), Some("abc"));
        assert_eq!(bearer_token(None), None);
        for invalid in [
            "Bearer",
            "Bearer ",
            "Basic YWxhZGRpbjpvcGVu",
            "Bearer a b",
            "abc",
        ] {
            assert_eq!(bearer_token(Some(&header(invalid))), None, "{invalid:?}");
        }
    }

    #[test]
    fn a_decision_is_remembered_until_it_expires() {
        let mut cache = DecisionCache::new(Duration::from_secs(10), 8);
        let start = Instant::now();
        cache.insert("token-a", Decision::Allowed, start);
        cache.insert("token-b", Decision::Forbidden, start);
        let later = start + Duration::from_secs(9);
        assert_eq!(cache.get("token-a", later), Some(Decision::Allowed));
        assert_eq!(cache.get("token-b", later), Some(Decision::Forbidden));
        assert_eq!(cache.get("token-c", later), None);
        let expired = start + Duration::from_secs(10);
        assert_eq!(cache.get("token-a", expired), None);
        assert_eq!(cache.len(), 1, "the expired entry read is dropped");
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_one_closest_to_expiry() {
        let mut cache = DecisionCache::new(Duration::from_secs(10), 2);
        let start = Instant::now();
        cache.insert("first", Decision::Allowed, start);
        cache.insert("second", Decision::Allowed, start + Duration::from_secs(1));
        cache.insert(
            "third",
            Decision::Unauthenticated,
            start + Duration::from_secs(2),
        );
        let now = start + Duration::from_secs(3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("first", now), None, "closest to expiry went");
        assert_eq!(cache.get("second", now), Some(Decision::Allowed));
        assert_eq!(cache.get("third", now), Some(Decision::Unauthenticated));
        // Once both have expired, a new token takes a place without evicting a live one.
        let much_later = start + Duration::from_secs(60);
        cache.insert("fourth", Decision::Forbidden, much_later);
        assert_eq!(cache.len(), 1);
        // Re-inserting a remembered token refreshes it in place.
        cache.insert("fourth", Decision::Allowed, much_later);
        assert_eq!(cache.get("fourth", much_later), Some(Decision::Allowed));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn tokens_are_kept_as_digests() {
        let mut cache = DecisionCache::new(Duration::from_secs(10), 2);
        cache.insert("secret-token", Decision::Allowed, Instant::now());
        assert!(!format!("{cache:?}").contains("secret-token"));
    }
}
