//! Rendezvous (highest-random-weight) hashing: each key ranks every node by a weight drawn
//! from both, so every node computes the same ranking from the same set, removing a node
//! changes only the keys it ranked high, and adding one takes about its share. Layer 2 elects
//! an address's owner with it; BGP central placement picks a prefix's next hops with it, and
//! remembers its rankings between plans ([`Rankings`]) so that a node coming or going costs
//! hashes for that node, not for every node and every prefix again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The weight of `node` for `key`: the first 8 bytes, big-endian, of SHA-256(`node` `#`
/// `key`).
pub fn weight(node: &str, key: &str) -> u64 {
    // Hashed in pieces: no string is built (central placement weighs nodes × prefixes).
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(node.as_bytes());
    context.update(b"#");
    context.update(key.as_bytes());
    let digest = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Whether `a` ranks above `b`: the higher weight, ties by name.
fn above(a: (u64, &str), b: (u64, &str)) -> std::cmp::Ordering {
    (b.0.cmp(&a.0)).then_with(|| a.1.cmp(b.1))
}

/// Keeps the `k` of `items` that rank highest for `key` (by the weight of their node name,
/// ties by name), in that order; all of them, ranked, when there are no more than `k`.
pub fn keep_highest<T>(items: &mut Vec<T>, k: usize, key: &str, node: impl Fn(&T) -> &str) {
    // Each weight once, then a selection of the k highest (linear) and a sort of those alone.
    let mut ranked: Vec<(u64, usize)> = (items.iter().enumerate())
        .map(|(i, item)| (weight(node(item), key), i))
        .collect();
    let order = |a: &(u64, usize), b: &(u64, usize)| {
        above((a.0, node(&items[a.1])), (b.0, node(&items[b.1])))
    };
    if k == 0 {
        ranked.clear();
    } else if ranked.len() > k {
        ranked.select_nth_unstable_by(k - 1, order);
        ranked.truncate(k);
    }
    ranked.sort_unstable_by(order);
    let mut taken: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        (ranked.into_iter())
            .map(|(_, i)| taken[i].take().expect("the ranking holds each index once")),
    );
}

/// A key and the number of names kept for it.
type RankingId = (String, usize);
/// Kept names, highest first, with their weights.
type Ranked = Vec<(u64, Arc<str>)>;

/// The `k` highest-ranked names for keys, over one set of candidates, remembered between
/// calls. When the candidates change, a remembered ranking is kept if none of its names left
/// (removing a name it did not keep cannot change the top `k`) and each newcomer is weighed
/// against it (one hash); only rankings that lost a name are computed again. So the answer is
/// always what [`keep_highest`] over the current candidates gives.
#[derive(Debug, Clone, Default)]
pub struct Rankings {
    candidates: BTreeSet<Arc<str>>,
    /// By key and `k`: the kept names, highest first, with their weights.
    kept: HashMap<RankingId, Ranked>,
    /// Keys asked for since the last [`Rankings::forget_unused`].
    used: BTreeSet<RankingId>,
}

impl Rankings {
    /// Makes `candidates` the set ranked from now on, bringing every remembered ranking up to
    /// date with the names that left and joined.
    pub fn set_candidates<'a>(&mut self, candidates: impl IntoIterator<Item = &'a str>) {
        let next: BTreeSet<&str> = candidates.into_iter().collect();
        let current: BTreeSet<&str> = self.candidates.iter().map(|c| &**c).collect();
        if next == current {
            return;
        }
        let left: BTreeSet<String> = (current.difference(&next))
            .map(|n| (*n).to_owned())
            .collect();
        let joined: Vec<Arc<str>> = (next.difference(&current)).map(|n| Arc::from(*n)).collect();
        let all: BTreeSet<Arc<str>> = next.iter().map(|n| Arc::from(*n)).collect();
        self.kept
            .retain(|_, kept| !kept.iter().any(|(_, n)| left.contains(&**n)));
        for ((key, k), kept) in &mut self.kept {
            for name in &joined {
                let candidate = (weight(name, key), name.clone());
                let at = kept
                    .partition_point(|(w, n)| above((*w, n), (candidate.0, &candidate.1)).is_lt());
                if at < *k {
                    kept.insert(at, candidate);
                    kept.truncate(*k);
                }
            }
        }
        self.candidates = all;
    }

    /// The `k` highest-ranked candidates for `key`, highest first.
    pub fn top(&mut self, key: &str, k: usize) -> &[(u64, Arc<str>)] {
        let id = (key.to_owned(), k);
        self.used.insert(id.clone());
        let candidates = &self.candidates;
        self.kept.entry(id).or_insert_with(|| {
            let mut ranked: Vec<Arc<str>> = candidates.iter().cloned().collect();
            keep_highest(&mut ranked, k, key, |n| n);
            (ranked.into_iter()).map(|n| (weight(&n, key), n)).collect()
        })
    }

    /// Drops the rankings of keys not asked for since the previous call (prefixes no longer
    /// announced).
    pub fn forget_unused(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.kept.retain(|id, _| used.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// The reference: every candidate weighed, all sorted (weight down, name up), cut at k.
    fn full_ranking(nodes: &[String], k: usize, key: &str) -> Vec<String> {
        let mut all = nodes.to_vec();
        all.sort_by_key(|n| (std::cmp::Reverse(weight(n, key)), n.clone()));
        all.truncate(k);
        all
    }

    #[test]
    fn keeping_the_highest_selects_what_a_full_ranking_would() {
        for n in [0, 1, 5, 16, 17, 100] {
            for k in [0, 1, 3, 16, 200] {
                for key in ["192.0.2.1", "10.64.0.7", "2001:db8::5", "192.0.2.0/24"] {
                    let nodes: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
                    let mut kept = nodes.clone();
                    keep_highest(&mut kept, k, key, |n| n.as_str());
                    assert_eq!(
                        kept,
                        full_ranking(&nodes, k, key),
                        "{n} nodes, k {k}, {key}"
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Remembered rankings, brought up to date through any sequence of candidates leaving
        /// and joining, always equal a ranking computed afresh.
        #[test]
        fn remembered_rankings_equal_fresh_ones_whatever_came_and_went(
            steps in proptest::collection::vec(proptest::collection::btree_set(0_u8..40, 0..30), 1..8),
            k in 1_usize..6,
        ) {
            let keys: Vec<String> = (0..25).map(|i| format!("10.64.0.{i}")).collect();
            let mut rankings = Rankings::default();
            for step in steps {
                let nodes: Vec<String> = step.iter().map(|i| format!("n{i}")).collect();
                rankings.set_candidates(nodes.iter().map(String::as_str));
                for key in &keys {
                    let got: Vec<String> =
                        rankings.top(key, k).iter().map(|(_, n)| n.to_string()).collect();
                    prop_assert_eq!(got, full_ranking(&nodes, k, key), "{}", key);
                }
                rankings.forget_unused();
            }
        }
    }

    #[test]
    fn rankings_of_keys_no_longer_asked_for_are_forgotten() {
        let mut rankings = Rankings::default();
        rankings.set_candidates(["n1", "n2", "n3"]);
        rankings.top("a", 2);
        rankings.top("b", 2);
        rankings.forget_unused();
        rankings.top("a", 2);
        rankings.forget_unused();
        assert_eq!(rankings.kept.len(), 1);
        assert!(rankings.kept.contains_key(&("a".to_owned(), 2)));
    }
}
