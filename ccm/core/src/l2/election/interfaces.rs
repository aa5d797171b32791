//! Which of a member's interfaces announce an address: by subnet, or by the pool's name
//! patterns (globs with `*` and `?`).

use std::net::IpAddr;

use super::Member;

/// An interface name or a glob: `*` stands for any run of characters (none included), `?` for
/// exactly one; every other character for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePattern(String);

impl InterfacePattern {
    /// The pattern `text`; the pool's parsing checks its characters and length.
    pub fn new(text: &str) -> InterfacePattern {
        InterfacePattern(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let name: Vec<char> = name.chars().collect();
        // The classic linear matcher: on a mismatch, let the last `*` swallow one more
        // character and retry from there (no exponential backtracking).
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(&c) if c == '?' || c == name[n] => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((star_p, star_n)) => {
                        star = Some((star_p, star_n + 1));
                        p = star_p + 1;
                        n = star_n + 1;
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

/// The names of `member`'s interfaces that would announce `address`, sorted: with no
/// `patterns`, those up with an address whose subnet holds `address` (same family); with
/// patterns, those up whose name matches one.
pub(super) fn announcing(
    member: &Member,
    address: IpAddr,
    patterns: &[InterfacePattern],
) -> Vec<String> {
    let mut names: Vec<String> = (member.interfaces.iter())
        .filter(|i| i.up)
        .filter(|i| {
            if patterns.is_empty() {
                i.addresses.iter().any(|net| net.contains(&address))
            } else {
                patterns.iter().any(|p| p.matches(&i.name))
            }
        })
        .map(|i| i.name.clone())
        .collect();
    // Sorted, so that the answer does not depend on the order a speaker listed its links in.
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        InterfacePattern::new(pattern).matches(name)
    }

    #[test]
    fn a_plain_name_matches_only_itself() {
        assert!(matches("eth1", "eth1"));
        assert!(!matches("eth1", "eth10"));
        assert!(!matches("eth1", "eth"));
        assert!(!matches("eth1", ""));
    }

    #[test]
    fn a_star_matches_any_run_and_a_question_mark_one_character() {
        assert!(matches("vlan*", "vlan"));
        assert!(matches("vlan*", "vlan100"));
        assert!(!matches("vlan*", "xvlan1"));
        assert!(matches("*", ""));
        assert!(matches("*", "bond0.10"));
        assert!(matches("eth?", "eth0"));
        assert!(!matches("eth?", "eth"));
        assert!(!matches("eth?", "eth10"));
        assert!(matches("b*d?.*0", "bond0.10"));
        assert!(matches("*.10", "bond0.10"));
        assert!(!matches("*.10", "bond0.100"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn a_pathological_pattern_stays_cheap() {
        let name = "a".repeat(64);
        assert!(!matches(&format!("{}b", "a*".repeat(31)), &name));
    }
}
