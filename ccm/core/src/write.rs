//! The one shape of a planned cluster write. The core plans writes; a writer in the binary
//! applies them, one writer per kind, and nothing else writes.
//!
//! Every planned write is a JSON merge patch. A patch that must not overwrite a concurrent
//! change carries the `resourceVersion` it was planned on, so the API server refuses it (409)
//! instead of applying it to an object the plan never saw.

use serde_json::Value;

/// One planned merge patch to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// To the object itself (metadata, spec).
    Object(Value),
    /// To its `status` subresource.
    Status(Value),
}

impl Patch {
    /// The merge patch itself.
    pub fn body(&self) -> &Value {
        match self {
            Patch::Object(body) | Patch::Status(body) => body,
        }
    }

    /// The same patch, made to carry `version` as its `resourceVersion` precondition.
    pub fn at_version(&self, version: &str) -> Patch {
        let mut patched = self.clone();
        let body = match &mut patched {
            Patch::Object(body) | Patch::Status(body) => body,
        };
        body["metadata"]["resourceVersion"] = Value::String(version.to_owned());
        patched
    }

    pub fn is_status(&self) -> bool {
        matches!(self, Patch::Status(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_later_patch_carries_the_version_the_earlier_one_produced() {
        let planned = Patch::Status(json!({"metadata": {"resourceVersion": "7"}, "status": {}}));
        let chained = planned.at_version("8");
        assert_eq!(chained.body()["metadata"]["resourceVersion"], "8");
        assert!(chained.is_status());
        assert_eq!(planned.body()["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn a_patch_without_metadata_gains_the_precondition() {
        let planned = Patch::Object(json!({"spec": {"providerID": "baremetal://n1"}}));
        let body = planned.at_version("3").body().clone();
        assert_eq!(
            body,
            json!({"spec": {"providerID": "baremetal://n1"}, "metadata": {"resourceVersion": "3"}})
        );
    }
}
