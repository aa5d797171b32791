//! The two OpenNebula methods the provider calls, over the rate-limited transport, and the
//! reading of OpenNebula's answer array `[success, body or message, error code, …]`.

use std::time::Duration;

use tracing::debug;

use super::config::AttributePath;
use super::credentials::Session;
use super::error::{OpenNebulaError, code};
use super::rate_limit::MinInterval;
use super::transport::{Transport, TransportError};
use super::vm::{self, Vm};
use super::xmlrpc::{self, Value, XmlRpcError};

pub(crate) const VM_INFO: &str = "one.vm.info";
pub(crate) const VM_POOL_INFO_EXTENDED: &str = "one.vmpool.infoextended";

/// `one.vmpool.infoextended` filter flag: all resources the user may see.
const FILTER_ALL: i64 = -2;
/// Range start and end: the whole pool.
const WHOLE_RANGE: i64 = -1;
/// State filter: any state except DONE.
const ANY_BUT_DONE: i64 = -1;

/// An authenticated, rate-limited client of the OpenNebula XML-RPC API.
#[derive(Debug)]
pub(crate) struct Api {
    transport: Transport,
    session: Session,
    limit: MinInterval,
}

impl Api {
    pub(crate) fn new(transport: Transport, session: Session, min_interval: Duration) -> Api {
        Api {
            transport,
            session,
            limit: MinInterval::new(min_interval),
        }
    }

    /// `one.vm.info(id, decrypt = false)`; [`OpenNebulaError::NoSuchVm`] when OpenNebula
    /// answers NO_EXISTS. A DONE VM is returned as such.
    pub(crate) async fn vm_info(
        &self,
        id: u32,
        paths: &[AttributePath],
    ) -> Result<Vm, OpenNebulaError> {
        let params = vec![Value::Int(i64::from(id)), Value::Bool(false)];
        let body = match self.call(VM_INFO, params).await {
            Err(OpenNebulaError::Api { code, message, .. }) if code == code::NO_EXISTS => {
                return Err(OpenNebulaError::NoSuchVm { id, message });
            }
            other => other?,
        };
        vm::parse_vm(&body, paths).map_err(|source| OpenNebulaError::MalformedXml {
            method: VM_INFO,
            source,
        })
    }

    /// Every VM the user may see that is not DONE, with full templates.
    pub(crate) async fn vm_pool(
        &self,
        paths: &[AttributePath],
    ) -> Result<Vec<Vm>, OpenNebulaError> {
        let params = vec![
            Value::Int(FILTER_ALL),
            Value::Int(WHOLE_RANGE),
            Value::Int(WHOLE_RANGE),
            Value::Int(ANY_BUT_DONE),
        ];
        let body = self.call(VM_POOL_INFO_EXTENDED, params).await?;
        vm::parse_pool(&body, paths).map_err(|source| OpenNebulaError::MalformedXml {
            method: VM_POOL_INFO_EXTENDED,
            source,
        })
    }

    /// Calls `method` with the session string before `params`; the body string of a
    /// successful answer.
    async fn call(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> Result<String, OpenNebulaError> {
        self.limit.wait().await;
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(self.session.expose().to_owned()));
        all.extend(params);
        let started = tokio::time::Instant::now();
        let body = self
            .transport
            .post(xmlrpc::encode_call(method, &all))
            .await
            .map_err(|source| match source {
                TransportError::Timeout { .. } => OpenNebulaError::Timeout {
                    method,
                    source: Box::new(source),
                },
                source => OpenNebulaError::Transport {
                    method,
                    source: Box::new(source),
                },
            })?;
        debug!(
            method,
            bytes = body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "OpenNebula answered"
        );
        let values = xmlrpc::decode_response(&body).map_err(|source| match source {
            XmlRpcError::Fault { code, message } => OpenNebulaError::Fault {
                method,
                code,
                message,
            },
            source => OpenNebulaError::MalformedResponse { method, source },
        })?;
        interpret(method, values)
    }
}

/// Reads OpenNebula's answer: one array parameter `[success, body or message, code, …]`.
pub(crate) fn interpret(
    method: &'static str,
    values: Vec<Value>,
) -> Result<String, OpenNebulaError> {
    let malformed = |what: String| OpenNebulaError::MalformedResponse {
        method,
        source: XmlRpcError::Unexpected(what),
    };
    let mut values = values.into_iter();
    let answer = match (values.next(), values.next()) {
        (Some(Value::Array(answer)), None) => answer,
        (Some(other), None) => {
            return Err(malformed(format!(
                "the answer is a {}, not an array",
                other.kind()
            )));
        }
        _ => return Err(malformed("the answer is not exactly one parameter".into())),
    };
    let mut answer = answer.into_iter();
    match (answer.next(), answer.next(), answer.next()) {
        (Some(Value::Bool(true)), Some(Value::String(body)), _) => Ok(body),
        (Some(Value::Bool(true)), Some(other), _) => Err(malformed(format!(
            "a successful answer carries a {}, not a string",
            other.kind()
        ))),
        (Some(Value::Bool(false)), Some(Value::String(message)), Some(Value::Int(code))) => {
            Err(failure(method, code, message))
        }
        _ => Err(malformed(
            "the answer is not [boolean, string, int, …]".into(),
        )),
    }
}

fn failure(method: &'static str, code: i64, message: String) -> OpenNebulaError {
    match code {
        code::AUTHENTICATION => OpenNebulaError::Auth { method, message },
        code::AUTHORIZATION => OpenNebulaError::Denied { method, message },
        code => OpenNebulaError::Api {
            method,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(values: Vec<Value>) -> Vec<Value> {
        vec![Value::Array(values)]
    }

    #[test]
    fn a_successful_answer_yields_its_body() {
        let body = interpret(
            VM_INFO,
            answer(vec![
                Value::Bool(true),
                Value::String("<VM/>".into()),
                Value::Int(0),
            ]),
        )
        .expect("a successful answer");
        assert_eq!(body, "<VM/>");
    }

    #[test]
    fn a_failed_authentication_is_an_auth_error_with_opennebulas_message() {
        let message = "[one.vm.info] User couldn't be authenticated, aborting call.";
        let error = interpret(
            VM_INFO,
            answer(vec![
                Value::Bool(false),
                Value::String(message.into()),
                Value::Int(0x100),
                Value::Int(-1),
            ]),
        )
        .expect_err("a failed answer");
        assert!(
            matches!(&error, OpenNebulaError::Auth { message: m, .. } if m == message),
            "{error:?}"
        );
    }

    #[test]
    fn other_codes_keep_code_and_message() {
        let error = interpret(
            VM_INFO,
            answer(vec![
                Value::Bool(false),
                Value::String("[one.vm.info] Error getting virtual machine [7].".into()),
                Value::Int(0x400),
                Value::Int(7),
            ]),
        )
        .expect_err("a failed answer");
        assert!(
            matches!(error, OpenNebulaError::Api { code: 0x400, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn answers_of_another_shape_are_malformed() {
        let shapes = [
            vec![],
            vec![Value::String("x".into())],
            answer(vec![Value::Bool(true)]),
            answer(vec![Value::Bool(true), Value::Int(3), Value::Int(0)]),
            answer(vec![
                Value::Int(1),
                Value::String("x".into()),
                Value::Int(0),
            ]),
            answer(vec![Value::Bool(false), Value::String("x".into())]),
        ];
        for shape in shapes {
            let error = interpret(VM_INFO, shape.clone()).expect_err("not an answer");
            assert!(
                matches!(error, OpenNebulaError::MalformedResponse { .. }),
                "{shape:?}: {error:?}"
            );
        }
    }
}
