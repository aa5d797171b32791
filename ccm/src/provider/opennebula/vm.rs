//! OpenNebula's VM document (`<VM>`, `<VM_POOL>`) read into plain structs: identity, state,
//! the system UUID, NICs and NIC aliases, and the attribute paths the label mapping asks for.

use std::collections::BTreeMap;

use super::config::AttributePath;

/// The `STATE` of a VM (the LCM sub-state matters only for `ACTIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VmState {
    Init,
    Pending,
    Hold,
    Active,
    Stopped,
    Suspended,
    Done,
    /// 7, kept by OpenNebula for compatibility.
    Failed,
    Poweroff,
    Undeployed,
    Cloning,
    CloningFailure,
    /// A number this code does not know (a newer OpenNebula).
    Other(i64),
}

impl VmState {
    pub(crate) fn from_number(n: i64) -> VmState {
        match n {
            0 => VmState::Init,
            1 => VmState::Pending,
            2 => VmState::Hold,
            3 => VmState::Active,
            4 => VmState::Stopped,
            5 => VmState::Suspended,
            6 => VmState::Done,
            7 => VmState::Failed,
            8 => VmState::Poweroff,
            9 => VmState::Undeployed,
            10 => VmState::Cloning,
            11 => VmState::CloningFailure,
            n => VmState::Other(n),
        }
    }
}

/// One `NIC` or `NIC_ALIAS` of the VM's template, as OpenNebula wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Nic {
    /// Whether this is a `NIC_ALIAS` (an extra address on a parent NIC).
    pub alias: bool,
    pub nic_id: Option<String>,
    /// The virtual network's name.
    pub network: Option<String>,
    pub network_id: Option<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub ip6_global: Option<String>,
    pub ip6_ula: Option<String>,
    pub ip6_link: Option<String>,
}

/// What the provider needs of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vm {
    pub id: u32,
    pub name: String,
    pub state: VmState,
    pub lcm_state: Option<i64>,
    /// `TEMPLATE/OS/UUID`: the libvirt domain UUID, which the guest sees as its SMBIOS
    /// product UUID (the kubelet's `systemUUID`).
    pub uuid: Option<String>,
    /// NICs then aliases, in document order.
    pub nics: Vec<Nic>,
    /// The non-empty values of the attribute paths that were asked for.
    pub attributes: BTreeMap<AttributePath, String>,
}

/// Why a VM document could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VmXmlError {
    #[error("the document is not XML")]
    NotXml(#[source] roxmltree::Error),
    #[error("the root element is <{found}>, expected <{expected}>")]
    Root {
        expected: &'static str,
        found: String,
    },
    #[error("VM {vm} has no <{element}>")]
    Missing { vm: String, element: &'static str },
    #[error("VM {vm}: <{element}> holds {value:?}, not a number")]
    NotANumber {
        vm: String,
        element: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// Reads a `<VM>` document (the answer of `one.vm.info`).
pub(crate) fn parse_vm(xml: &str, paths: &[AttributePath]) -> Result<Vm, VmXmlError> {
    let doc = roxmltree::Document::parse(xml).map_err(VmXmlError::NotXml)?;
    let root = doc.root_element();
    expect_root(root, "VM")?;
    read_vm(root, paths)
}

/// Reads a `<VM_POOL>` document (the answer of `one.vmpool.infoextended`).
pub(crate) fn parse_pool(xml: &str, paths: &[AttributePath]) -> Result<Vec<Vm>, VmXmlError> {
    let doc = roxmltree::Document::parse(xml).map_err(VmXmlError::NotXml)?;
    let root = doc.root_element();
    expect_root(root, "VM_POOL")?;
    children(root, "VM").map(|vm| read_vm(vm, paths)).collect()
}

fn expect_root(root: roxmltree::Node<'_, '_>, expected: &'static str) -> Result<(), VmXmlError> {
    if root.tag_name().name() == expected {
        Ok(())
    } else {
        Err(VmXmlError::Root {
            expected,
            found: root.tag_name().name().to_owned(),
        })
    }
}

fn read_vm(vm: roxmltree::Node<'_, '_>, paths: &[AttributePath]) -> Result<Vm, VmXmlError> {
    let id_text = child_text(vm, "ID").ok_or_else(|| VmXmlError::Missing {
        vm: "?".into(),
        element: "ID",
    })?;
    let id: u32 = id_text.parse().map_err(|source| VmXmlError::NotANumber {
        vm: "?".into(),
        element: "ID",
        value: id_text.clone(),
        source,
    })?;
    let label = id.to_string();
    let required = |element: &'static str| {
        child_text(vm, element).ok_or_else(|| VmXmlError::Missing {
            vm: label.clone(),
            element,
        })
    };
    let number = |element: &'static str, text: String| {
        text.parse::<i64>()
            .map_err(|source| VmXmlError::NotANumber {
                vm: label.clone(),
                element,
                value: text.clone(),
                source,
            })
    };
    let name = required("NAME")?;
    let state = VmState::from_number(number("STATE", required("STATE")?)?);
    let lcm_state = child_text(vm, "LCM_STATE")
        .map(|text| number("LCM_STATE", text))
        .transpose()?;
    let template = children(vm, "TEMPLATE").last();
    let uuid = template
        .and_then(|t| children(t, "OS").last())
        .and_then(|os| child_text(os, "UUID"));
    let nics = template.map(read_nics).unwrap_or_default();
    let attributes = paths
        .iter()
        .filter_map(|path| Some((path.clone(), resolve(vm, path)?)))
        .collect();
    Ok(Vm {
        id,
        name,
        state,
        lcm_state,
        uuid,
        nics,
        attributes,
    })
}

fn read_nics(template: roxmltree::Node<'_, '_>) -> Vec<Nic> {
    let read = |node: roxmltree::Node<'_, '_>, alias: bool| Nic {
        alias,
        nic_id: child_text(node, "NIC_ID"),
        network: child_text(node, "NETWORK"),
        network_id: child_text(node, "NETWORK_ID"),
        ip: child_text(node, "IP"),
        ip6: child_text(node, "IP6"),
        ip6_global: child_text(node, "IP6_GLOBAL"),
        ip6_ula: child_text(node, "IP6_ULA"),
        ip6_link: child_text(node, "IP6_LINK"),
    };
    let nics = children(template, "NIC").map(|n| read(n, false));
    let aliases = children(template, "NIC_ALIAS").map(|n| read(n, true));
    nics.chain(aliases).collect()
}

/// The value at `path` below `vm`: at each step the last element of that name.
fn resolve(vm: roxmltree::Node<'_, '_>, path: &AttributePath) -> Option<String> {
    let mut node = vm;
    for segment in path.segments() {
        node = children(node, segment).last()?;
    }
    non_empty(text_of(node))
}

fn children<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of the last child element `name`, when not empty.
fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    children(node, name)
        .last()
        .and_then(|c| non_empty(text_of(c)))
}

/// The text directly inside `node` (text and CDATA sections), entities resolved.
fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(roxmltree::Node::is_text)
        .filter_map(|n| n.text())
        .collect()
}

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
#[path = "tests/vm.rs"]
mod tests;
