//! Tests of the `opennebula:` configuration section: defaults, parsing and validation.

use super::*;

fn parse(yaml: &str) -> Result<Config, serde_yaml::Error> {
    serde_yaml::from_str(yaml)
}

fn minimal() -> Config {
    parse("endpoint: https://one.example:2633/RPC2\ncredentials: {file: /etc/one_auth}\n")
        .expect("the minimal configuration parses")
}

fn field_of(config: &Config) -> &'static str {
    config
        .validate()
        .expect_err("the configuration is invalid")
        .field
}

#[test]
fn a_minimal_configuration_gets_the_documented_defaults() {
    let config = minimal();
    assert_eq!(
        config,
        Config::new(
            "https://one.example:2633/RPC2",
            Credentials::File("/etc/one_auth".into())
        )
    );
    assert_eq!(config.timeout, Duration::from_secs(10));
    assert_eq!(config.cache_ttl, Duration::from_secs(30));
    assert_eq!(config.min_interval, Duration::from_secs(1));
    assert_eq!(
        config.zone,
        Some(LabelSource::Attribute(AttributePath::new(
            "HISTORY_RECORDS/HISTORY/CID"
        )))
    );
    assert_eq!(config.region, None);
    assert_eq!(
        config.instance_type,
        Some(LabelSource::Attribute(AttributePath::new(
            "USER_TEMPLATE/INSTANCE_TYPE"
        )))
    );
    assert!(config.addresses.ipv6 && config.addresses.aliases);
    assert!(!config.tls.insecure_skip_verify);
    config.validate().expect("the defaults are valid");
}

#[test]
fn every_key_can_be_set() {
    let config = parse(
        "endpoint: https://one.example:2633/RPC2
credentials:
  secret: {namespace: kube-system, name: one, key: auth}
tls: {caFile: /etc/ca.pem}
timeout: 2s
cacheTtl: 1m30s
minInterval: 250ms
zone: {attribute: USER_TEMPLATE/ZONE}
region: {value: eu-west-1}
instanceType: null
addresses:
  externalNetworks: [public, '7']
  ignoredNetworks: [storage]
  ipv6: false
  aliases: false
",
    )
    .expect("a full configuration parses");
    config.validate().expect("a full configuration is valid");
    assert_eq!(
        config.credentials,
        Credentials::Secret(SecretRef {
            namespace: "kube-system".into(),
            name: "one".into(),
            key: "auth".into(),
        })
    );
    assert_eq!(config.tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(config.timeout, Duration::from_secs(2));
    assert_eq!(config.cache_ttl, Duration::from_secs(90));
    assert_eq!(config.min_interval, Duration::from_millis(250));
    assert_eq!(config.region, Some(LabelSource::Value("eu-west-1".into())));
    assert_eq!(config.instance_type, None, "null turns the default off");
    assert_eq!(config.addresses.external_networks, ["public", "7"]);
    assert_eq!(config.addresses.ignored_networks, ["storage"]);
    assert!(!config.addresses.ipv6 && !config.addresses.aliases);
}

#[test]
fn the_secret_key_defaults_to_credentials() {
    let config = parse(
        "endpoint: http://one:2633/RPC2\ncredentials: {secret: {namespace: ns, name: one}}\n",
    )
    .expect("parses");
    let Credentials::Secret(secret) = config.credentials else {
        panic!("a Secret source");
    };
    assert_eq!(secret.key, "credentials");
}

#[test]
fn credentials_take_exactly_one_source() {
    let both = parse(
        "endpoint: http://one/RPC2\ncredentials: {file: /a, secret: {namespace: n, name: s}}\n",
    );
    assert!(both.is_err(), "file and secret together: {both:?}");
    let neither = parse("endpoint: http://one/RPC2\ncredentials: {}\n");
    assert!(neither.is_err(), "no source: {neither:?}");
    let missing = parse("endpoint: http://one/RPC2\n");
    assert!(missing.is_err(), "credentials are required: {missing:?}");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let error = parse("endpoint: http://one/RPC2\ncredentials: {file: /a}\ncacheTTL: 5s\n")
        .expect_err("a misspelt key");
    assert!(error.to_string().contains("cacheTTL"), "{error}");
    let nested = parse("endpoint: http://one/RPC2\ncredentials: {file: /a}\ntls: {ca: /x}\n")
        .expect_err("a misspelt nested key");
    assert!(nested.to_string().contains("ca"), "{nested}");
}

#[test]
fn a_bad_duration_is_reported_with_its_field() {
    let error = parse("endpoint: http://one/RPC2\ncredentials: {file: /a}\ntimeout: 10 seconds\n")
        .expect_err("not a duration");
    let message = error.to_string();
    assert!(message.contains("timeout"), "{message}");
    assert!(message.contains("\"10 seconds\""), "{message}");
}

#[test]
fn durations_are_numbers_with_a_unit() {
    let ok = [
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("500ms", Duration::from_millis(500)),
        ("10s", Duration::from_secs(10)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("1m30s", Duration::from_secs(90)),
        ("1s500ms", Duration::from_millis(1500)),
        ("1.5s", Duration::from_millis(1500)),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
    for bad in ["", "10", "s", "1.s", "-1s", "10 s", "5d", "99999999999999s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} is not a duration");
    }
}

#[test]
fn an_endpoint_must_be_an_http_or_https_url_with_a_host() {
    for endpoint in ["ftp://one/RPC2", "one:2633", "https:///RPC2", "not a url"] {
        let mut config = minimal();
        config.endpoint = endpoint.into();
        assert_eq!(field_of(&config), "endpoint", "{endpoint}");
    }
    let mut config = minimal();
    config.endpoint = "https://oneadmin:secret@one/RPC2".into();
    let error = config.validate().expect_err("credentials in the URL");
    assert_eq!(error.field, "endpoint");
    assert!(!error.to_string().contains("secret"), "{error}");
}

#[test]
fn an_endpoint_without_a_path_means_rpc2() {
    let mut config = minimal();
    config.endpoint = "https://one.example:2633".into();
    let uri = config.endpoint_uri().expect("valid");
    assert_eq!(uri.to_string(), "https://one.example:2633/RPC2");
    config.endpoint = "http://one.example:2633/custom/RPC2".into();
    let uri = config.endpoint_uri().expect("valid");
    assert_eq!(uri.path(), "/custom/RPC2");
}

#[test]
fn tls_settings_need_https_and_cannot_both_trust_and_skip() {
    let mut config = minimal();
    config.endpoint = "http://one:2633/RPC2".into();
    config.tls.insecure_skip_verify = true;
    assert_eq!(field_of(&config), "tls");
    let mut config = minimal();
    config.tls.ca_file = Some("/ca.pem".into());
    config.tls.insecure_skip_verify = true;
    assert_eq!(field_of(&config), "tls");
}

#[test]
fn a_zero_timeout_is_rejected() {
    let mut config = minimal();
    config.timeout = Duration::ZERO;
    assert_eq!(field_of(&config), "timeout");
}

#[test]
fn label_values_and_paths_are_checked_where_they_are_set() {
    let mut config = minimal();
    config.region = Some(LabelSource::Value("eu west".into()));
    assert_eq!(field_of(&config), "region");
    let mut config = minimal();
    config.zone = Some(LabelSource::Attribute(AttributePath::new(
        "USER_TEMPLATE//ZONE",
    )));
    assert_eq!(field_of(&config), "zone");
    let mut config = minimal();
    config.instance_type = Some(LabelSource::Value("x".repeat(64)));
    assert_eq!(field_of(&config), "instanceType");
}

#[test]
fn empty_names_are_rejected_with_their_field() {
    let mut config = minimal();
    config.addresses.external_networks = vec![" ".into()];
    assert_eq!(field_of(&config), "addresses.externalNetworks");
    let mut config = minimal();
    config.credentials = Credentials::Secret(SecretRef {
        namespace: String::new(),
        name: "one".into(),
        key: "credentials".into(),
    });
    assert_eq!(field_of(&config), "credentials.secret.namespace");
    let mut config = minimal();
    config.credentials = Credentials::File(PathBuf::new());
    assert_eq!(field_of(&config), "credentials.file");
}

#[test]
fn label_values_follow_kubernetes_rules() {
    // Empty is a valid label value (as everywhere else): the label is then not set.
    for ok in ["", "a", "zone-1", "A.b_c", "0"] {
        assert!(check_label_value(ok).is_ok(), "{ok}");
    }
    for bad in ["-a", "a-", "a b", "ü", &"x".repeat(64)] {
        assert!(check_label_value(bad).is_err(), "{bad:?}");
    }
}

fn with_endpoint(endpoint: &str) -> Config {
    Config::new(endpoint, Credentials::File("/etc/one_auth".into()))
}

#[test]
fn plain_http_is_refused_off_loopback_unless_allowed() {
    let remote = with_endpoint("http://one.example:2633/RPC2");
    let error = remote.validate().expect_err("clear text off this host");
    assert_eq!(error.field, "endpoint");
    assert!(error.reason.contains("in clear"), "{error}");
    let allowed = Config {
        allow_insecure_http: true,
        ..remote
    };
    assert!(allowed.validate().is_ok());
    for local in [
        "http://127.0.0.1:2633",
        "http://localhost:2633",
        "http://[::1]:2633",
    ] {
        assert!(with_endpoint(local).validate().is_ok(), "{local}");
    }
    assert!(with_endpoint("https://one.example:2633").validate().is_ok());
}

#[test]
fn the_response_cap_is_bounded() {
    let mut config = minimal();
    assert_eq!(config.max_response_bytes, 32 * 1024 * 1024);
    config.max_response_bytes = 100;
    assert_eq!(field_of(&config), "maxResponseBytes");
    config.max_response_bytes = 2 * 1024 * 1024 * 1024;
    assert_eq!(field_of(&config), "maxResponseBytes");
}
