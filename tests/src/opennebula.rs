//! A fake OpenNebula XML-RPC endpoint on a random loopback port: `one.vm.info` and
//! `one.vmpool.infoextended` answered in OpenNebula's documented shape from a list of
//! [`FakeVm`]s the test changes while it runs; session checking, calls counted per method,
//! switchable faults (delay, malformed XML, HTTP 500, XML-RPC fault), optionally over TLS
//! with a fresh test CA.
//!
//! The answers follow OpenNebula's XML-RPC reference: an array `[true, body, 0]` on success,
//! `[false, message, code, object id]` on failure with the documented codes
//! (AUTHENTICATION 0x100, NO_EXISTS 0x400), the VM document as an escaped string with
//! template values in CDATA sections, as `oned` writes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::https::{Answer, Handler, HttpsError, Server};

pub const VM_INFO: &str = "one.vm.info";
pub const VM_POOL_INFO_EXTENDED: &str = "one.vmpool.infoextended";

/// OpenNebula's VM `STATE` numbers.
pub mod state {
    pub const PENDING: u32 = 1;
    pub const HOLD: u32 = 2;
    pub const ACTIVE: u32 = 3;
    pub const STOPPED: u32 = 4;
    pub const SUSPENDED: u32 = 5;
    pub const DONE: u32 = 6;
    pub const POWEROFF: u32 = 8;
    pub const UNDEPLOYED: u32 = 9;
}

/// OpenNebula's `LCM_STATE` numbers used here.
pub mod lcm_state {
    pub const LCM_INIT: u32 = 0;
    pub const RUNNING: u32 = 3;
}

const AUTHENTICATION: i32 = 0x0100;
const NO_EXISTS: i32 = 0x0400;
pub type FakeError = HttpsError;

/// One NIC (or NIC alias) of a fake VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNic {
    pub nic_id: u32,
    pub network: String,
    pub network_id: u32,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub ip6_global: Option<String>,
    pub ip6_ula: Option<String>,
    pub ip6_link: Option<String>,
    /// `Some(parent NIC_ID)` makes this a `NIC_ALIAS`.
    pub alias_of: Option<u32>,
}

impl FakeNic {
    /// A NIC with an IPv4 address on network `network` (ID `network_id`).
    pub fn ipv4(nic_id: u32, network: &str, network_id: u32, ip: &str) -> Self {
        FakeNic {
            nic_id,
            network: network.to_owned(),
            network_id,
            ip: Some(ip.to_owned()),
            ip6: None,
            ip6_global: None,
            ip6_ula: None,
            ip6_link: None,
            alias_of: None,
        }
    }

    /// Adds SLAAC-style IPv6 addresses as OpenNebula computes them for a network with a
    /// global prefix: `IP6_GLOBAL` and `IP6_LINK`.
    pub fn with_ipv6(mut self, global: &str, link: &str) -> Self {
        self.ip6_global = Some(global.to_owned());
        self.ip6_link = Some(link.to_owned());
        self
    }

    pub fn as_alias_of(mut self, parent: u32) -> Self {
        self.alias_of = Some(parent);
        self
    }
}

/// A VM as the fake server renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVm {
    pub id: u32,
    pub name: String,
    pub state: u32,
    pub lcm_state: u32,
    pub nics: Vec<FakeNic>,
    /// `TEMPLATE/OS/UUID`.
    pub uuid: Option<String>,
    /// `USER_TEMPLATE` attributes, in order.
    pub user_template: Vec<(String, String)>,
    /// The current host and its cluster ID (the last `HISTORY` record); `None` for a VM
    /// that was never deployed.
    pub host: Option<(String, u32)>,
}

impl FakeVm {
    /// A VM in ACTIVE/RUNNING on host `kvm-1` of cluster 0, without NICs or UUID.
    pub fn running(id: u32, name: &str) -> Self {
        FakeVm {
            id,
            name: name.to_owned(),
            state: state::ACTIVE,
            lcm_state: lcm_state::RUNNING,
            nics: Vec::new(),
            uuid: None,
            user_template: Vec::new(),
            host: Some(("kvm-1".to_owned(), 0)),
        }
    }

    /// The VM in `state` (LCM_INIT unless ACTIVE, as OpenNebula reports it).
    pub fn in_state(mut self, state: u32) -> Self {
        self.state = state;
        self.lcm_state = if state == state::ACTIVE {
            lcm_state::RUNNING
        } else {
            lcm_state::LCM_INIT
        };
        self
    }

    pub fn with_nic(mut self, nic: FakeNic) -> Self {
        self.nics.push(nic);
        self
    }

    pub fn with_uuid(mut self, uuid: &str) -> Self {
        self.uuid = Some(uuid.to_owned());
        self
    }

    pub fn with_user_attribute(mut self, name: &str, value: &str) -> Self {
        self.user_template.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn on_host(mut self, host: &str, cluster: u32) -> Self {
        self.host = Some((host.to_owned(), cluster));
        self
    }
}

/// A misbehaviour the server shows on every call until it is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers correctly, but only after this long.
    Delay(Duration),
    /// Answers success with a VM document cut off in the middle.
    MalformedXml,
    /// Answers HTTP 500 with an HTML page.
    Http500,
    /// Answers an XML-RPC `<fault>`.
    XmlRpcFault,
    /// Answers success with a body of this many bytes (an oversized VM pool).
    Oversized(usize),
}

/// One call the server received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub at: Instant,
}

#[derive(Debug)]
struct Shared {
    session: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    vms: BTreeMap<u32, FakeVm>,
    fault: Option<Fault>,
    method_faults: BTreeMap<String, Fault>,
    calls: Vec<Call>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake server; stops when dropped.
#[derive(Debug)]
pub struct FakeOpenNebula {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeOpenNebula {
    /// Serves plain HTTP.
    pub async fn start(session: &str) -> Result<Self, FakeError> {
        Self::serve(session, false).await
    }

    /// Serves HTTPS with a certificate for `127.0.0.1` and `localhost` from a fresh CA
    /// ([`FakeOpenNebula::ca_pem`]).
    pub async fn start_tls(session: &str) -> Result<Self, FakeError> {
        Self::serve(session, true).await
    }

    async fn serve(session: &str, tls: bool) -> Result<Self, FakeError> {
        let shared = Arc::new(Shared {
            session: session.to_owned(),
            inner: Mutex::default(),
        });
        let server = Server::start(shared.clone(), tls, "fake OpenNebula").await?;
        Ok(FakeOpenNebula { server, shared })
    }

    /// `http://127.0.0.1:<port>/RPC2` (https for a TLS server).
    pub fn endpoint(&self) -> String {
        let scheme = if self.server.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/RPC2", self.server.address)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.server.ca_pem.as_deref()
    }

    /// Adds the VM, or replaces the one with its ID.
    pub fn put_vm(&self, vm: FakeVm) {
        self.shared.lock().vms.insert(vm.id, vm);
    }

    /// Changes VM `id` in place; returns whether it exists.
    pub fn update_vm(&self, id: u32, change: impl FnOnce(&mut FakeVm)) -> bool {
        self.shared.lock().vms.get_mut(&id).map(change).is_some()
    }

    /// Removes VM `id` entirely (as after `onedb purge-done`): it no longer exists.
    pub fn remove_vm(&self, id: u32) {
        self.shared.lock().vms.remove(&id);
    }

    /// Makes every call misbehave (`None`: behave again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.lock().fault = fault;
    }

    /// Makes the calls of one method misbehave (`None`: behave again); a fault for every
    /// call takes precedence.
    pub fn set_method_fault(&self, method: &str, fault: Option<Fault>) {
        let mut inner = self.shared.lock();
        match fault {
            Some(fault) => inner.method_faults.insert(method.to_owned(), fault),
            None => inner.method_faults.remove(method),
        };
    }

    /// How many calls of `method` arrived so far.
    pub fn calls(&self, method: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// Every call so far, in arrival order.
    pub fn call_log(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }
}

impl Handler for Shared {
    async fn answer(&self, body: Vec<u8>) -> Answer {
        let (status, body) = respond(self, &body).await;
        Answer {
            status,
            content_type: "text/xml",
            body,
        }
    }
}

/// The HTTP status and body for one request body.
async fn respond(shared: &Shared, body: &[u8]) -> (u16, String) {
    let call = parse_call(body);
    let fault = {
        let mut inner = shared.lock();
        let method = call
            .as_ref()
            .map_or_else(|_| "<unreadable>".to_owned(), |c| c.method.clone());
        let fault = inner
            .fault
            .or_else(|| inner.method_faults.get(&method).copied());
        inner.calls.push(Call {
            method,
            at: Instant::now(),
        });
        fault
    };
    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Http500) => {
            return (
                500,
                "<html><body>Internal Server Error</body></html>".into(),
            );
        }
        Some(Fault::MalformedXml) => {
            return (200, success("<VM_POOL><VM><ID>1</ID><NAME>broken"));
        }
        Some(Fault::XmlRpcFault) => return (200, fault_response(-500, "Internal error")),
        Some(Fault::Oversized(bytes)) => {
            let padding = "<!-- padding -->".repeat(bytes / 16 + 1);
            return (200, success(&format!("<VM_POOL>{padding}</VM_POOL>")));
        }
        None => {}
    }
    let answer = match call {
        Ok(call) => answer(shared, &call),
        Err(message) => fault_response(-503, &message),
    };
    (200, answer)
}

#[derive(Debug)]
struct ParsedCall {
    method: String,
    params: Vec<Param>,
}

#[derive(Debug, PartialEq)]
enum Param {
    String(String),
    Int(i64),
    Bool(bool),
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn parse_call(body: &[u8]) -> Result<ParsedCall, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    let method = child(root, "methodName")
        .and_then(|n| n.text())
        .ok_or("no methodName")?
        .trim()
        .to_owned();
    let mut params = Vec::new();
    for param in child(root, "params")
        .into_iter()
        .flat_map(|p| p.children().filter(|c| c.is_element()))
    {
        let value = child(param, "value").ok_or("a param without value")?;
        let typed = value.children().find(|c| c.is_element());
        let text = |n: roxmltree::Node<'_, '_>| n.text().unwrap_or_default().to_owned();
        params.push(match typed.map(|t| (t.tag_name().name(), t)) {
            None => Param::String(text(value)),
            Some(("string", t)) => Param::String(text(t)),
            Some(("i4" | "int" | "i8", t)) => Param::Int(
                text(t)
                    .trim()
                    .parse()
                    .map_err(|e| format!("bad int: {e}"))?,
            ),
            Some(("boolean", t)) => Param::Bool(text(t).trim() == "1"),
            Some((other, _)) => return Err(format!("unsupported parameter type {other}")),
        });
    }
    Ok(ParsedCall { method, params })
}

fn answer(shared: &Shared, call: &ParsedCall) -> String {
    if call.method != VM_INFO && call.method != VM_POOL_INFO_EXTENDED {
        return fault_response(-506, &format!("Method '{}' not defined", call.method));
    }
    if call.params.first() != Some(&Param::String(shared.session.clone())) {
        return failure(
            &format!(
                "[{}] User couldn't be authenticated, aborting call.",
                call.method
            ),
            AUTHENTICATION,
            -1,
        );
    }
    let inner = shared.lock();
    if call.method == VM_INFO {
        let Some(Param::Int(id)) = call.params.get(1) else {
            return fault_response(-501, "Type mismatch: the VM ID must be an int");
        };
        return match u32::try_from(*id).ok().and_then(|id| inner.vms.get(&id)) {
            Some(vm) => success(&vm_xml(vm)),
            None => failure(
                &format!("[{VM_INFO}] Error getting virtual machine [{id}]."),
                NO_EXISTS,
                i32::try_from(*id).unwrap_or(-1),
            ),
        };
    }
    let ints: Vec<i64> = call.params[1..]
        .iter()
        .filter_map(|p| match p {
            Param::Int(n) => Some(*n),
            _ => None,
        })
        .collect();
    let [_filter, start, end, state] = ints[..] else {
        return fault_response(-501, "Type mismatch: expected four int parameters");
    };
    let mut pool = String::from("<VM_POOL>");
    for vm in inner.vms.values().filter(|vm| {
        let in_range =
            (start < 0 || i64::from(vm.id) >= start) && (end < 0 || i64::from(vm.id) <= end);
        let in_state = match state {
            -2 => true,
            -1 => vm.state != state::DONE,
            n => i64::from(vm.state) == n,
        };
        in_range && in_state
    }) {
        pool.push_str(&vm_xml(vm));
    }
    pool.push_str("</VM_POOL>");
    success(&pool)
}

fn success(body: &str) -> String {
    response(&format!(
        "<value><boolean>1</boolean></value>\r\n<value><string>{}</string></value>\r\n<value><i4>0</i4></value>\r\n",
        escape(body)
    ))
}

fn failure(message: &str, code: i32, object: i32) -> String {
    response(&format!(
        "<value><boolean>0</boolean></value>\r\n<value><string>{}</string></value>\r\n\
         <value><i4>{code}</i4></value>\r\n<value><i4>{object}</i4></value>\r\n",
        escape(message)
    ))
}

fn response(values: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n\
         <param><value><array><data>\r\n{values}</data></array></value></param>\r\n\
         </params>\r\n</methodResponse>\r\n"
    )
}

fn fault_response(code: i32, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<fault>\r\n<value><struct>\r\n\
         <member><name>faultCode</name>\r\n<value><i4>{code}</i4></value></member>\r\n\
         <member><name>faultString</name>\r\n<value><string>{}</string></value></member>\r\n\
         </struct></value>\r\n</fault>\r\n</methodResponse>\r\n",
        escape(message)
    )
}

/// The `<VM>` document of `vm`, as `onevm show -x` prints it (abridged to what a VM of this
/// kind carries).
fn vm_xml(vm: &FakeVm) -> String {
    let mut xml = String::new();
    let _ = write!(
        xml,
        "<VM><ID>{id}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>\
         <NAME>{name}</NAME><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>\
         <GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U>\
         <OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><LAST_POLL>0</LAST_POLL>\
         <STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE><PREV_STATE>{state}</PREV_STATE>\
         <PREV_LCM_STATE>{lcm}</PREV_LCM_STATE><RESCHED>0</RESCHED><STIME>1700000000</STIME>\
         <ETIME>0</ETIME><DEPLOY_ID>one-{id}</DEPLOY_ID><MONITORING/><SCHED_ACTIONS/><TEMPLATE>\
         <CPU><![CDATA[1]]></CPU><MEMORY><![CDATA[2048]]></MEMORY>",
        id = vm.id,
        name = escape(&vm.name),
        state = vm.state,
        lcm = vm.lcm_state,
    );
    for nic in &vm.nics {
        nic_xml(&mut xml, nic);
    }
    xml.push_str("<OS><ARCH><![CDATA[x86_64]]></ARCH>");
    if let Some(uuid) = &vm.uuid {
        let _ = write!(xml, "<UUID>{}</UUID>", cdata(uuid));
    }
    let _ = write!(
        xml,
        "</OS><TM_MAD_SYSTEM><![CDATA[ssh]]></TM_MAD_SYSTEM><VMID><![CDATA[{}]]></VMID></TEMPLATE><USER_TEMPLATE>",
        vm.id
    );
    for (name, value) in &vm.user_template {
        let _ = write!(xml, "<{name}>{}</{name}>", cdata(value));
    }
    xml.push_str("</USER_TEMPLATE><HISTORY_RECORDS>");
    if let Some((host, cluster)) = &vm.host {
        let _ = write!(
            xml,
            "<HISTORY><OID>{id}</OID><SEQ>0</SEQ><HOSTNAME>{host}</HOSTNAME><HID>0</HID>\
             <CID>{cluster}</CID><STIME>1700000000</STIME><ETIME>0</ETIME><VM_MAD><![CDATA[kvm]]></VM_MAD>\
             <TM_MAD><![CDATA[ssh]]></TM_MAD><DS_ID>0</DS_ID><PSTIME>0</PSTIME><PETIME>0</PETIME>\
             <RSTIME>0</RSTIME><RETIME>0</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME><ACTION>0</ACTION>\
             <UID>-1</UID><GID>-1</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>",
            id = vm.id,
            host = escape(host),
        );
    }
    xml.push_str("</HISTORY_RECORDS></VM>");
    xml
}

fn nic_xml(xml: &mut String, nic: &FakeNic) {
    let tag = if nic.alias_of.is_some() {
        "NIC_ALIAS"
    } else {
        "NIC"
    };
    let _ = write!(xml, "<{tag}>");
    if let Some(parent) = nic.alias_of {
        let _ = write!(xml, "<ALIAS_ID>{}</ALIAS_ID>", cdata("0"));
        let _ = write!(xml, "<PARENT>{}</PARENT>", cdata(&format!("NIC{parent}")));
        let _ = write!(xml, "<PARENT_ID>{}</PARENT_ID>", cdata(&parent.to_string()));
    }
    let fields = [
        ("IP", &nic.ip),
        ("IP6", &nic.ip6),
        ("IP6_GLOBAL", &nic.ip6_global),
        ("IP6_LINK", &nic.ip6_link),
        ("IP6_ULA", &nic.ip6_ula),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            let _ = write!(xml, "<{name}>{}</{name}>", cdata(value));
        }
    }
    let _ = write!(
        xml,
        "<MAC>{}</MAC><NETWORK>{}</NETWORK><NETWORK_ID>{}</NETWORK_ID><NIC_ID>{}</NIC_ID></{tag}>",
        cdata(&format!(
            "02:00:00:00:{:02x}:{:02x}",
            nic.network_id % 256,
            nic.nic_id % 256
        )),
        cdata(&nic.network),
        cdata(&nic.network_id.to_string()),
        cdata(&nic.nic_id.to_string()),
    );
}

/// A CDATA section, as OpenNebula writes template values; `]]>` cannot be inside one, so
/// such text is escaped instead.
fn cdata(text: &str) -> String {
    if text.contains("]]>") {
        escape(text)
    } else {
        format!("<![CDATA[{text}]]>")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
