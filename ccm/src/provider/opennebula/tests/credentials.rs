//! Tests of reading and checking the session string.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use kube::api::ObjectMeta;

use super::*;

fn secret_ref() -> SecretRef {
    SecretRef {
        namespace: "kube-system".into(),
        name: "one".into(),
        key: "credentials".into(),
    }
}

fn secret_with(key: &str, value: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta::default(),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(value.to_vec()),
        )])),
        ..Secret::default()
    }
}

#[test]
fn user_and_password_are_split_at_the_first_colon_and_a_trailing_newline_dropped() {
    let session = Session::parse("oneadmin:pa:ss\n", "test").expect("valid");
    assert_eq!(session.user(), "oneadmin");
    assert_eq!(session.expose(), "oneadmin:pa:ss");
    let crlf = Session::parse("oneadmin:secret\r\n", "test").expect("valid");
    assert_eq!(crlf.expose(), "oneadmin:secret");
}

#[test]
fn debug_output_never_shows_the_password() {
    let session = Session::parse("oneadmin:hunter2", "test").expect("valid");
    let shown = format!("{session:?}");
    assert!(shown.contains("oneadmin"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn malformed_credentials_are_rejected_without_echoing_them() {
    for bad in [
        "",
        "\n",
        "oneadmin",
        ":secret",
        "oneadmin:",
        "oneadmin:secret\n\n",
        "oneadmin:sec\nret",
        "oneadmin:secret\0",
    ] {
        let error = Session::parse(bad, "file /x").expect_err("malformed");
        let message = error.to_string();
        assert!(message.contains("file /x"), "{message}");
        if bad.len() > 9 {
            assert!(!message.contains("secret"), "{message}");
        }
    }
}

#[tokio::test]
async fn a_credentials_file_is_read() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("one_auth");
    std::fs::write(&path, "serveradmin:s3cret\n").expect("written");
    let session = load(&Credentials::File(path), None)
        .await
        .expect("the file is read");
    assert_eq!(session.expose(), "serveradmin:s3cret");
}

#[tokio::test]
async fn a_missing_credentials_file_names_its_path() {
    let error = load(&Credentials::File("/nonexistent/one_auth".into()), None)
        .await
        .expect_err("no such file");
    assert!(matches!(error, CredentialsError::File { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/one_auth"),
        "{error}"
    );
}

#[tokio::test]
async fn a_secret_source_without_a_kubernetes_client_is_an_error() {
    let error = load(&Credentials::Secret(secret_ref()), None)
        .await
        .expect_err("no client");
    assert!(matches!(error, CredentialsError::NoKubeClient), "{error:?}");
}

#[test]
fn the_session_comes_from_the_secrets_key() {
    let secret = secret_with("credentials", b"oneadmin:from-secret\n");
    let session = session_from_secret(&secret, &secret_ref()).expect("valid");
    assert_eq!(session.expose(), "oneadmin:from-secret");
}

#[test]
fn a_secret_without_the_key_names_the_key() {
    let secret = secret_with("other", b"oneadmin:x");
    let error = session_from_secret(&secret, &secret_ref()).expect_err("no key");
    assert!(
        error.to_string().contains("kube-system/one") && error.to_string().contains("credentials"),
        "{error}"
    );
}

#[test]
fn a_secret_value_that_is_not_utf8_is_rejected() {
    let secret = secret_with("credentials", &[0xff, 0xfe, b':', b'x']);
    let error = session_from_secret(&secret, &secret_ref()).expect_err("not UTF-8");
    assert!(
        matches!(error, CredentialsError::NotUtf8 { .. }),
        "{error:?}"
    );
}
