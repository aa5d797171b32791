//! The node's interfaces as the layer-2 responder needs them — name, index, MAC, whether
//! they can carry an announcement, their addresses — read over rtnetlink, and kept current
//! from the kernel's link and address events (an interface going down demotes the node at
//! once, without waiting for any probe).

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::TryStreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use ipnet::IpNet;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::watch;

/// One interface of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) mac: [u8; 6],
    /// Administratively up and with carrier (IFF_UP and IFF_LOWER_UP).
    pub(crate) up: bool,
    /// Usable for announcements at all: Ethernet, not loopback, ARP not disabled, and not a
    /// port enslaved to a bond or bridge (frames are seen on the master, not the port).
    pub(crate) announceable: bool,
    /// Addresses with their prefix length (tentative and DAD-failed IPv6 ones left out).
    pub(crate) addresses: Vec<IpNet>,
    /// How many times the kernel reported it down since the watch started: a flap shorter
    /// than a re-read (down and up again before the list is taken, or before the speaker
    /// looks) still shows, as a count that grew.
    pub(crate) downs: u64,
}

impl Link {
    /// Whether the speaker answers on it: announceable and up.
    pub(crate) fn usable(&self) -> bool {
        self.announceable && self.up
    }
}

/// Errors of the netlink side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinksError {
    #[error("opening a netlink route socket")]
    Connect(#[source] std::io::Error),
    #[error("listing the node's interfaces")]
    ListLinks(#[source] rtnetlink::Error),
    #[error("listing the node's addresses")]
    ListAddresses(#[source] rtnetlink::Error),
    #[error("the kernel's link and address events stopped")]
    EventsEnded,
}

/// Lists every interface with its addresses.
pub(crate) async fn list(handle: &Handle) -> Result<Vec<Link>, LinksError> {
    let messages: Vec<LinkMessage> = (handle.link().get().execute())
        .try_collect()
        .await
        .map_err(LinksError::ListLinks)?;
    let addresses: Vec<AddressMessage> = (handle.address().get().execute())
        .try_collect()
        .await
        .map_err(LinksError::ListAddresses)?;
    let mut links: Vec<Link> = messages.iter().filter_map(link).collect();
    for message in &addresses {
        if let Some(net) = address(message)
            && let Some(link) = links.iter_mut().find(|l| l.index == message.header.index)
        {
            link.addresses.push(net);
        }
    }
    links.sort_by_key(|l| l.index);
    Ok(links)
}

fn link(message: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mac = None;
    let mut enslaved = false;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Controller(_) => enslaved = true,
            _ => {}
        }
    }
    let flags = message.header.flags;
    let ethernet = message.header.link_layer_type == LinkLayerType::Ether;
    Some(Link {
        index: message.header.index,
        name: name?,
        mac: mac.unwrap_or_default(),
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
        announceable: ethernet
            && mac.is_some()
            && !flags.contains(LinkFlags::Loopback)
            && !flags.contains(LinkFlags::Noarp)
            && !enslaved,
        addresses: Vec::new(),
        downs: 0,
    })
}

/// The index of the link a kernel event reports down (not up, or without carrier), if it is
/// such an event.
fn reported_down(message: &NetlinkMessage<RouteNetlinkMessage>) -> Option<u32> {
    match &message.payload {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link),
        ) => {
            let flags = link.header.flags;
            let up = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
            (!up).then_some(link.header.index)
        }
        _ => None,
    }
}

fn address(message: &AddressMessage) -> Option<IpNet> {
    if message.header.flags.contains(AddressHeaderFlags::Tentative)
        || message.header.flags.contains(AddressHeaderFlags::Dadfailed)
    {
        return None;
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point
    // links); IPv6 sends only IFA_ADDRESS.
    let mut local = None;
    let mut addr = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => addr = Some(*a),
            _ => {}
        }
    }
    IpNet::new(local.or(addr)?, message.header.prefix_len).ok()
}

/// Watches the interfaces: the current list now and after every link or address event. The
/// whole list is read again on each event — events are rare, and a full read cannot drift.
/// Returns the receiver and the task that feeds it (it ends with an error when netlink does).
pub(crate) async fn watch() -> Result<
    (
        watch::Receiver<Vec<Link>>,
        impl Future<Output = Result<(), LinksError>>,
    ),
    LinksError,
> {
    let (connection, handle, events) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])
    .map_err(LinksError::Connect)?;
    tokio::spawn(connection);
    let (tx, rx) = watch::channel(list(&handle).await?);
    Ok((rx, follow(handle, events, tx)))
}

async fn follow<A>(
    handle: Handle,
    mut events: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, A)>,
    tx: watch::Sender<Vec<Link>>,
) -> Result<(), LinksError> {
    let mut downs: BTreeMap<u32, u64> = BTreeMap::new();
    let count = |downs: &mut BTreeMap<u32, u64>, message: &NetlinkMessage<RouteNetlinkMessage>| {
        if let Some(index) = reported_down(message) {
            *downs.entry(index).or_default() += 1;
        }
    };
    while let Some((first, _)) = events.next().await {
        count(&mut downs, &first);
        // Coalesce a burst (an interface going down sends several messages).
        while let Ok((message, _)) = events.try_recv() {
            count(&mut downs, &message);
        }
        let mut links = list(&handle).await?;
        for link in &mut links {
            link.downs = downs.get(&link.index).copied().unwrap_or_default();
        }
        tx.send_if_modified(|current| {
            let changed = *current != links;
            if changed {
                *current = links;
            }
            changed
        });
    }
    Err(LinksError::EventsEnded)
}
