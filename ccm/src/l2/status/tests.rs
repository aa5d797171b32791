use super::*;

#[test]
fn the_observers_name_is_no_nodes_name() {
    let name = member_name("ccm-a");
    assert_eq!(name, "controller:ccm-a");
    // A Node's name is a DNS subdomain: lower-case letters, digits, '-' and '.'.
    let node_like = |n: &str| {
        n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    assert!(!node_like(&name));
    assert!(node_like("n1"));
}
