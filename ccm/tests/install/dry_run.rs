//! Every object the chart renders, for every value set, is accepted by a real kube-apiserver:
//! the CRDs and Namespaces are created for real (the objects after them need them), every
//! other object with a server-side dry run (`dryRun=All`: validation and admission, nothing
//! stored), as `kubectl apply --dry-run=server` would.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Scope, pinned_kind};
use rig::cluster::TestCluster;
use serde_json::Value;

use super::chart::{name, render, value_sets};

/// What the API server answered for one object.
async fn dry_run_create(client: &kube::Client, object: &Value) -> Result<(), String> {
    let (api_version, kind) = (
        object["apiVersion"].as_str().unwrap(),
        object["kind"].as_str().unwrap(),
    );
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("the API server does not serve {api_version} {kind}: {e}"))?;
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            dynamic.metadata.namespace.as_deref().unwrap_or("default"),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&params, &dynamic)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Creates the CRDs and Namespaces among `objects` for real (a CRD that exists already is
/// checked with a dry-run server-side apply instead), and returns the other objects.
async fn create_prerequisites(cluster: &TestCluster, objects: Vec<Value>) -> Vec<Value> {
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut rest = Vec::new();
    let mut new_crds = Vec::new();
    for object in objects {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        match object["kind"].as_str().unwrap() {
            "CustomResourceDefinition" => {
                let crd: CustomResourceDefinition = serde_json::from_value(object).unwrap();
                if crds.get_opt(&name).await.unwrap().is_some() {
                    let params = PatchParams::apply("install-test").dry_run();
                    crds.patch(&name, &params, &Patch::Apply(&crd))
                        .await
                        .unwrap_or_else(|e| panic!("CRD {name} as an upgrade: {e}"));
                } else {
                    new_crds.push(crd);
                }
            }
            "Namespace" => {
                if namespaces.get_opt(&name).await.unwrap().is_none() {
                    let namespace = serde_json::from_value(object).unwrap();
                    namespaces
                        .create(&PostParams::default(), &namespace)
                        .await
                        .unwrap_or_else(|e| panic!("Namespace {name}: {e}"));
                }
            }
            _ => rest.push(object),
        }
    }
    cluster.install_crds(&new_crds).await.unwrap();
    rest
}

#[tokio::test]
async fn every_object_of_every_value_set_is_accepted_by_the_api_server() {
    rig::init_test_logging();
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    for values in value_sets() {
        let objects = render(values.as_deref().into_iter().collect::<Vec<_>>().as_slice());
        let objects = create_prerequisites(&cluster, objects).await;
        assert!(
            objects.len() >= 10,
            "{}: {} objects",
            name(values.as_deref()),
            objects.len()
        );
        let mut refused = Vec::new();
        for object in &objects {
            if let Err(error) = dry_run_create(&client, object).await {
                refused.push(format!(
                    "{} {}: {error}",
                    object["kind"].as_str().unwrap(),
                    object["metadata"]["name"].as_str().unwrap()
                ));
            }
        }
        assert!(
            refused.is_empty(),
            "{}: the API server refuses {refused:#?}",
            name(values.as_deref())
        );
    }
    // A dry run stores nothing: the next value set's objects could be created again.
    let daemonsets: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(client, "kube-system");
    assert!(daemonsets.get_opt("baremetal-ccm").await.unwrap().is_none());
}

#[tokio::test]
async fn the_dry_run_refuses_an_invalid_object() {
    // The check above could pass by validating nothing; this object must be refused.
    rig::init_test_logging();
    let cluster = TestCluster::start().await.unwrap();
    let objects = create_prerequisites(&cluster, render(&[])).await;
    let mut controller = (objects.into_iter())
        .find(|o| o["kind"] == "DaemonSet" && o["metadata"]["name"] == "baremetal-ccm")
        .unwrap();
    controller["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        Value::from(70000);
    let error = dry_run_create(&cluster.client(), &controller)
        .await
        .expect_err("a port above 65535 is invalid");
    assert!(error.contains("containerPort"), "{error}");
}
