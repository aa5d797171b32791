//! Layer 2: the speaker answers ARP and NDP for the addresses of `mode: l2` pools its node
//! owns (docs/design/0003-layer2.md).

pub(crate) mod links;
pub(crate) mod responder;
pub(crate) mod socket;

#[cfg(test)]
mod tests;
