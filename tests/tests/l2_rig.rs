//! The rig's layer-2 half is real: `arping` in one namespace resolves an address configured on
//! another namespace's interface across a bridge, and `ndisc6` does the same for IPv6.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use rig::netns::Lab;
use rig::tools::Tool;

#[test]
fn arping_and_ndisc6_resolve_a_neighbour_across_a_bridge() {
    let mut lab = Lab::new().expect("lab");
    let segment = lab.segment("sw").expect("segment");
    let a = (lab.host_on(
        "a",
        &segment,
        &["192.0.2.1/24", "2001:db8::1/64"].map(|a| a.parse().unwrap()),
    ))
    .expect("host a");
    let b = (lab.host_on(
        "b",
        &segment,
        &["192.0.2.2/24", "2001:db8::2/64"].map(|a| a.parse().unwrap()),
    ))
    .expect("host b");
    let b_mac = b
        .run_capture(["cat", "/sys/class/net/eth0/address"])
        .unwrap()
        .trim()
        .to_lowercase();

    let arping = Tool::Arping
        .path()
        .expect("arping installed")
        .display()
        .to_string();
    let out = a
        .run_capture([
            arping.as_str(),
            "-c",
            "2",
            "-w",
            "5",
            "-I",
            "eth0",
            "192.0.2.2",
        ])
        .expect("arping gets replies");
    assert!(
        out.to_lowercase().contains(&b_mac),
        "reply comes from b's MAC {b_mac}: {out}"
    );

    // An address nobody has gets no reply: arping exits non-zero.
    assert!(
        a.run([
            arping.as_str(),
            "-c",
            "1",
            "-w",
            "2",
            "-I",
            "eth0",
            "192.0.2.99"
        ])
        .is_err()
    );

    let ndisc6 = Tool::Ndisc6
        .path()
        .expect("ndisc6 installed")
        .display()
        .to_string();
    let out = a
        .run_capture([
            ndisc6.as_str(),
            "-r",
            "3",
            "-w",
            "1000",
            "2001:db8::2",
            "eth0",
        ])
        .expect("ndisc6 resolves");
    assert!(
        out.to_lowercase().contains(&b_mac),
        "advertisement carries b's MAC {b_mac}: {out}"
    );
}
