//! Layer 2: the speaker answers ARP and NDP for the addresses of `mode: l2` pools its node
//! owns (docs/design/0003-layer2.md): who the speakers are (membership), what the node can
//! announce on (links), the sockets and the responder of each interface.

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the speaker starts the responders with the membership (issue 14); until then only tests use them"
    )
)]
pub(crate) mod links;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        unused_imports,
        reason = "the speaker starts the membership with the responder (issue 14); until then only tests use it"
    )
)]
pub(crate) mod membership;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the speaker starts the responders with the membership (issue 14); until then only tests use them"
    )
)]
pub(crate) mod responder;
pub(crate) mod socket;

#[cfg(test)]
mod tests;
