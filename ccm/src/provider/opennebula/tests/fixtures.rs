//! Builders of VMs and NICs for the provider's unit tests.

use super::config::AttributePath;
use super::vm::{Nic, Vm, VmState};

/// A running VM named `name` with nothing else; add to it with the builder methods.
pub(crate) fn vm(id: u32, name: &str) -> Vm {
    Vm {
        id,
        name: name.to_owned(),
        state: VmState::Active,
        lcm_state: Some(3),
        uuid: None,
        nics: Vec::new(),
        attributes: Default::default(),
    }
}

/// A NIC on the network named `network` with an IPv4 address.
pub(crate) fn nic(network: &str, ip: &str) -> Nic {
    Nic {
        network: Some(network.to_owned()),
        ip: Some(ip.to_owned()),
        ..Nic::default()
    }
}

pub(crate) trait VmBuilder {
    fn in_state(self, state: VmState) -> Self;
    fn with_uuid(self, uuid: &str) -> Self;
    fn with_nic(self, nic: Nic) -> Self;
    fn with_attribute(self, path: &str, value: &str) -> Self;
}

impl VmBuilder for Vm {
    fn in_state(mut self, state: VmState) -> Self {
        self.state = state;
        self
    }

    fn with_uuid(mut self, uuid: &str) -> Self {
        self.uuid = Some(uuid.to_owned());
        self
    }

    fn with_nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    fn with_attribute(mut self, path: &str, value: &str) -> Self {
        self.attributes
            .insert(AttributePath::new(path), value.to_owned());
        self
    }
}
