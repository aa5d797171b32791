//! Tests of reading VM documents. The samples are written after the VM schema
//! (`share/doc/xsd/vm.xsd` of OpenNebula) and what `onevm show -x` prints: template values
//! in CDATA sections, several NICs, a NIC alias, history records.

use super::*;

const WORKER: &str = r#"<VM>
  <ID>42</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>
  <NAME>worker-1</NAME>
  <LAST_POLL>0</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>
  <PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>3</PREV_LCM_STATE>
  <DEPLOY_ID>one-42</DEPLOY_ID>
  <TEMPLATE>
    <NIC>
      <AR_ID><![CDATA[0]]></AR_ID>
      <IP><![CDATA[192.0.2.10]]></IP>
      <IP6_GLOBAL><![CDATA[2001:db8::10]]></IP6_GLOBAL>
      <IP6_LINK><![CDATA[fe80::400:c0ff:fe00:20a]]></IP6_LINK>
      <IP6_ULA><![CDATA[fd00::10]]></IP6_ULA>
      <MAC><![CDATA[02:00:c0:00:02:0a]]></MAC>
      <NETWORK><![CDATA[private]]></NETWORK>
      <NETWORK_ID><![CDATA[0]]></NETWORK_ID>
      <NIC_ID><![CDATA[0]]></NIC_ID>
    </NIC>
    <NIC>
      <IP><![CDATA[198.51.100.7]]></IP>
      <NETWORK><![CDATA[public]]></NETWORK>
      <NETWORK_ID><![CDATA[3]]></NETWORK_ID>
      <NIC_ID><![CDATA[1]]></NIC_ID>
    </NIC>
    <NIC_ALIAS>
      <ALIAS_ID><![CDATA[0]]></ALIAS_ID>
      <IP><![CDATA[192.0.2.11]]></IP>
      <NETWORK><![CDATA[private]]></NETWORK>
      <NIC_ID><![CDATA[2]]></NIC_ID>
      <PARENT><![CDATA[NIC0]]></PARENT>
      <PARENT_ID><![CDATA[0]]></PARENT_ID>
    </NIC_ALIAS>
    <OS><ARCH><![CDATA[x86_64]]></ARCH><UUID><![CDATA[6F1C2D1E-0A5B-4F4E-9B59-3D2C1B0A9F8E]]></UUID></OS>
  </TEMPLATE>
  <USER_TEMPLATE>
    <INSTANCE_TYPE><![CDATA[m1.large]]></INSTANCE_TYPE>
    <ZONE><![CDATA[  ]]></ZONE>
  </USER_TEMPLATE>
  <HISTORY_RECORDS>
    <HISTORY><OID>42</OID><SEQ>0</SEQ><HOSTNAME>kvm-a</HOSTNAME><HID>1</HID><CID>0</CID></HISTORY>
    <HISTORY><OID>42</OID><SEQ>1</SEQ><HOSTNAME>kvm-b</HOSTNAME><HID>2</HID><CID>100</CID></HISTORY>
  </HISTORY_RECORDS>
</VM>"#;

fn paths(list: &[&str]) -> Vec<AttributePath> {
    list.iter().map(|p| AttributePath::new(*p)).collect()
}

#[test]
fn a_vm_document_yields_identity_state_uuid_and_nics() {
    let vm = parse_vm(WORKER, &[]).expect("a valid VM");
    assert_eq!(vm.id, 42);
    assert_eq!(vm.name, "worker-1");
    assert_eq!(vm.state, VmState::Active);
    assert_eq!(vm.lcm_state, Some(3));
    assert_eq!(
        vm.uuid.as_deref(),
        Some("6F1C2D1E-0A5B-4F4E-9B59-3D2C1B0A9F8E")
    );
    assert_eq!(vm.nics.len(), 3);
    assert_eq!(
        vm.nics[0],
        Nic {
            alias: false,
            nic_id: Some("0".into()),
            network: Some("private".into()),
            network_id: Some("0".into()),
            ip: Some("192.0.2.10".into()),
            ip6: None,
            ip6_global: Some("2001:db8::10".into()),
            ip6_ula: Some("fd00::10".into()),
            ip6_link: Some("fe80::400:c0ff:fe00:20a".into()),
        }
    );
    assert_eq!(vm.nics[1].network.as_deref(), Some("public"));
    assert!(vm.nics[2].alias);
    assert_eq!(vm.nics[2].ip.as_deref(), Some("192.0.2.11"));
}

#[test]
fn attribute_paths_read_the_last_repeated_element_and_skip_empty_values() {
    let asked = paths(&[
        "HISTORY_RECORDS/HISTORY/HOSTNAME",
        "HISTORY_RECORDS/HISTORY/CID",
        "USER_TEMPLATE/INSTANCE_TYPE",
        "USER_TEMPLATE/ZONE",
        "USER_TEMPLATE/MISSING",
        "TEMPLATE/OS/ARCH",
    ]);
    let vm = parse_vm(WORKER, &asked).expect("a valid VM");
    let get = |p: &str| {
        vm.attributes
            .get(&AttributePath::new(p))
            .map(String::as_str)
    };
    assert_eq!(get("HISTORY_RECORDS/HISTORY/HOSTNAME"), Some("kvm-b"));
    assert_eq!(get("HISTORY_RECORDS/HISTORY/CID"), Some("100"));
    assert_eq!(get("USER_TEMPLATE/INSTANCE_TYPE"), Some("m1.large"));
    assert_eq!(get("USER_TEMPLATE/ZONE"), None, "blank is absent");
    assert_eq!(get("USER_TEMPLATE/MISSING"), None);
    assert_eq!(get("TEMPLATE/OS/ARCH"), Some("x86_64"));
}

#[test]
fn a_pending_vm_without_nics_uuid_or_history_is_still_a_vm() {
    let xml = "<VM><ID>7</ID><NAME>fresh</NAME><STATE>1</STATE><LCM_STATE>0</LCM_STATE>\
               <TEMPLATE/><USER_TEMPLATE/><HISTORY_RECORDS/></VM>";
    let vm = parse_vm(xml, &paths(&["HISTORY_RECORDS/HISTORY/CID"])).expect("a valid VM");
    assert_eq!(vm.state, VmState::Pending);
    assert_eq!(vm.uuid, None);
    assert!(vm.nics.is_empty());
    assert!(vm.attributes.is_empty());
}

#[test]
fn a_pool_yields_every_vm_in_order() {
    let xml = format!(
        "<VM_POOL>{WORKER}<VM><ID>43</ID><NAME>worker-2</NAME><STATE>8</STATE><LCM_STATE>0</LCM_STATE></VM></VM_POOL>"
    );
    let vms = parse_pool(&xml, &[]).expect("a valid pool");
    let ids: Vec<_> = vms.iter().map(|vm| (vm.id, vm.state)).collect();
    assert_eq!(ids, [(42, VmState::Active), (43, VmState::Poweroff)]);
    assert_eq!(parse_pool("<VM_POOL/>", &[]), Ok(Vec::new()));
}

#[test]
fn every_documented_state_number_is_known() {
    let states: Vec<_> = (0..=11).map(VmState::from_number).collect();
    assert_eq!(
        states,
        [
            VmState::Init,
            VmState::Pending,
            VmState::Hold,
            VmState::Active,
            VmState::Stopped,
            VmState::Suspended,
            VmState::Done,
            VmState::Failed,
            VmState::Poweroff,
            VmState::Undeployed,
            VmState::Cloning,
            VmState::CloningFailure,
        ]
    );
    assert_eq!(VmState::from_number(99), VmState::Other(99));
}

#[test]
fn a_vm_without_required_elements_is_rejected_naming_them() {
    let missing_id = parse_vm("<VM><NAME>x</NAME><STATE>3</STATE></VM>", &[]);
    assert!(
        matches!(missing_id, Err(VmXmlError::Missing { element: "ID", .. })),
        "{missing_id:?}"
    );
    let missing_state = parse_vm("<VM><ID>5</ID><NAME>x</NAME></VM>", &[]);
    assert!(
        matches!(&missing_state, Err(VmXmlError::Missing { vm, element: "STATE" }) if vm == "5"),
        "{missing_state:?}"
    );
    let bad_id = parse_vm("<VM><ID>five</ID><NAME>x</NAME><STATE>3</STATE></VM>", &[]);
    assert!(
        matches!(bad_id, Err(VmXmlError::NotANumber { element: "ID", .. })),
        "{bad_id:?}"
    );
}

#[test]
fn one_broken_vm_makes_the_pool_unreadable() {
    let xml = format!("<VM_POOL>{WORKER}<VM><ID>43</ID></VM></VM_POOL>");
    assert!(matches!(
        parse_pool(&xml, &[]),
        Err(VmXmlError::Missing {
            element: "NAME",
            ..
        })
    ));
}

#[test]
fn a_document_with_the_wrong_root_or_no_xml_is_rejected() {
    assert!(matches!(
        parse_vm("<VM_POOL/>", &[]),
        Err(VmXmlError::Root { expected: "VM", .. })
    ));
    assert!(matches!(
        parse_pool(WORKER, &[]),
        Err(VmXmlError::Root {
            expected: "VM_POOL",
            ..
        })
    ));
    assert!(matches!(
        parse_pool("<VM_POOL><VM>", &[]),
        Err(VmXmlError::NotXml(_))
    ));
}
