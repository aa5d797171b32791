//! Drives the generated client over an in-process mock transport and checks
//! what it puts on the wire: the HTTP/2 path and the gRPC-framed message.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::codegen::{Service, http};

use crate::{GoBgpServiceClient, api};

/// What the client sent for one call.
#[derive(Debug)]
struct Seen {
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// In-process transport that records each request and answers with a
/// trailers-only `UNIMPLEMENTED` status.
#[derive(Debug, Default, Clone)]
struct MockTransport {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service<http::Request<Body>> for MockTransport {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = req
                .into_body()
                .collect()
                .await
                .expect("request body")
                .to_bytes()
                .to_vec();
            seen.lock().expect("lock").push(Seen {
                path,
                content_type,
                body,
            });
            let response = http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", "12")
                .header("grpc-message", "mock")
                .body(Body::empty())
                .expect("static response");
            Ok(response)
        })
    }
}

fn mock_client() -> (GoBgpServiceClient<MockTransport>, MockTransport) {
    let transport = MockTransport::default();
    (GoBgpServiceClient::new(transport.clone()), transport)
}

/// gRPC length-prefixed message: 1 byte compression flag, 4 bytes big-endian
/// length, then the protobuf encoding.
fn grpc_frame(msg: &impl Message) -> Vec<u8> {
    let encoded = msg.encode_to_vec();
    let len = u32::try_from(encoded.len()).expect("small message");
    let mut frame = vec![0];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

#[tokio::test]
async fn add_path_hits_upstream_method_path() {
    let (mut client, transport) = mock_client();
    let req = api::AddPathRequest {
        table_type: api::TableType::Global.into(),
        vrf_id: String::new(),
        path: Some(api::Path {
            uuid: vec![1, 2, 3],
            ..Default::default()
        }),
    };
    let status = client
        .add_path(req.clone())
        .await
        .expect_err("mock answers UNIMPLEMENTED");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), "mock");

    let seen = transport.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api.GoBgpService/AddPath");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/grpc"));
    assert_eq!(seen[0].body, grpc_frame(&req));
}

#[tokio::test]
async fn streaming_rpcs_hit_upstream_method_paths() {
    let (mut client, transport) = mock_client();
    let list_path = api::ListPathRequest {
        table_type: api::TableType::Global.into(),
        family: Some(api::Family {
            afi: api::family::Afi::Ip6.into(),
            safi: api::family::Safi::Unicast.into(),
        }),
        ..Default::default()
    };
    let status = client
        .list_path(list_path.clone())
        .await
        .expect_err("mock answers UNIMPLEMENTED");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let status = client
        .watch_event(api::WatchEventRequest::default())
        .await
        .expect_err("mock answers UNIMPLEMENTED");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let status = client
        .set_policy_assignment(api::SetPolicyAssignmentRequest::default())
        .await
        .expect_err("mock answers UNIMPLEMENTED");
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    let seen = transport.seen.lock().expect("lock");
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api.GoBgpService/ListPath",
            "/api.GoBgpService/WatchEvent",
            "/api.GoBgpService/SetPolicyAssignment",
        ]
    );
    assert_eq!(seen[0].body, grpc_frame(&list_path));
}
