//! Kubernetes label selectors as plain data: `matchLabels` and `matchExpressions` (`In`,
//! `NotIn`, `Exists`, `DoesNotExist`), validated once and then evaluated against label maps.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// A label selector as written in a resource, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectorSpec {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<RequirementSpec>,
}

/// One `matchExpressions` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequirementSpec {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Why a selector is invalid. `at` names the entry (`matchLabels[app]`,
/// `matchExpressions[1]`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{at}: {problem}")]
pub struct SelectorError {
    pub at: String,
    pub problem: SelectorProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorProblem {
    #[error("unknown operator {0:?} (expected In, NotIn, Exists or DoesNotExist)")]
    UnknownOperator(String),
    #[error("operator {0} needs at least one value")]
    MissingValues(&'static str),
    #[error("operator {0} takes no values")]
    UnexpectedValues(&'static str),
    #[error("invalid label key {key:?}: {why}")]
    InvalidKey { key: String, why: &'static str },
    #[error("invalid label value {value:?}: {why}")]
    InvalidValue { value: String, why: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A validated label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Validates `spec`, reporting every invalid entry.
    pub fn new(spec: &SelectorSpec) -> Result<Selector, Vec<SelectorError>> {
        let mut errors = Vec::new();
        let mut requirements = Vec::new();
        for (key, value) in &spec.match_labels {
            let at = || format!("matchLabels[{key}]");
            let checked = check_key(key).and_then(|()| check_value(value));
            match checked {
                Ok(()) => requirements.push(Requirement {
                    key: key.clone(),
                    operator: Operator::In(BTreeSet::from([value.clone()])),
                }),
                Err(problem) => errors.push(SelectorError { at: at(), problem }),
            }
        }
        for (i, expression) in spec.match_expressions.iter().enumerate() {
            match requirement(expression) {
                Ok(r) => requirements.push(r),
                Err(problem) => errors.push(SelectorError {
                    at: format!("matchExpressions[{i}]"),
                    problem,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Selector { requirements })
        } else {
            Err(errors)
        }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn requirement(spec: &RequirementSpec) -> Result<Requirement, SelectorProblem> {
    check_key(&spec.key)?;
    let values = || -> Result<BTreeSet<String>, SelectorProblem> {
        for v in &spec.values {
            check_value(v)?;
        }
        Ok(spec.values.iter().cloned().collect())
    };
    let operator = match spec.operator.as_str() {
        "In" | "NotIn" if spec.values.is_empty() => {
            let name = if spec.operator == "In" { "In" } else { "NotIn" };
            return Err(SelectorProblem::MissingValues(name));
        }
        "In" => Operator::In(values()?),
        "NotIn" => Operator::NotIn(values()?),
        "Exists" | "DoesNotExist" if !spec.values.is_empty() => {
            let name = if spec.operator == "Exists" {
                "Exists"
            } else {
                "DoesNotExist"
            };
            return Err(SelectorProblem::UnexpectedValues(name));
        }
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(SelectorProblem::UnknownOperator(other.to_owned())),
    };
    Ok(Requirement {
        key: spec.key.clone(),
        operator,
    })
}

/// The name part of a label key, and a label value: the label-value rule.
fn check_name(name: &str) -> Result<(), &'static str> {
    crate::contract::label_value_problem(name).map_or(Ok(()), Err)
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
fn check_key(key: &str) -> Result<(), SelectorProblem> {
    let invalid = |why| SelectorProblem::InvalidKey {
        key: key.to_owned(),
        why,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.is_empty() {
        return Err(invalid("the name part is empty"));
    }
    check_name(name).map_err(invalid)?;
    if let Some(prefix) = prefix {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Err(invalid("the prefix must be a lowercase DNS subdomain"));
        }
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), SelectorProblem> {
    check_name(value).map_err(|why| SelectorProblem::InvalidValue {
        value: value.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> RequirementSpec {
        RequirementSpec {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn selector(match_labels: &[(&str, &str)], expressions: Vec<RequirementSpec>) -> Selector {
        Selector::new(&SelectorSpec {
            match_labels: labels(match_labels),
            match_expressions: expressions,
        })
        .unwrap()
    }

    #[test]
    fn the_empty_selector_matches_everything() {
        let s = selector(&[], vec![]);
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector(&[("team", "web"), ("tier", "edge")], vec![]);
        assert!(s.matches(&labels(&[("team", "web"), ("tier", "edge"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("team", "web")])));
        assert!(!s.matches(&labels(&[("team", "db"), ("tier", "edge")])));
    }

    #[test]
    fn each_operator_evaluates_as_kubernetes_does() {
        let is = |op, values: &[&str], l: &[(&str, &str)]| {
            selector(&[], vec![expression("env", op, values)]).matches(&labels(l))
        };
        assert!(is("In", &["prod", "stage"], &[("env", "prod")]));
        assert!(!is("In", &["prod"], &[("env", "dev")]));
        assert!(!is("In", &["prod"], &[]));
        assert!(is("NotIn", &["prod"], &[("env", "dev")]));
        assert!(is("NotIn", &["prod"], &[]), "NotIn matches a missing label");
        assert!(!is("NotIn", &["prod"], &[("env", "prod")]));
        assert!(is("Exists", &[], &[("env", "")]));
        assert!(!is("Exists", &[], &[]));
        assert!(is("DoesNotExist", &[], &[]));
        assert!(!is("DoesNotExist", &[], &[("env", "x")]));
    }

    #[test]
    fn invalid_operators_and_values_are_reported_with_their_position() {
        let errors = Selector::new(&SelectorSpec {
            match_labels: labels(&[("bad key!", "v")]),
            match_expressions: vec![
                expression("ok", "In", &["a"]),
                expression("ok", "Matches", &["a"]),
                expression("ok", "In", &[]),
                expression("ok", "Exists", &["a"]),
                expression("ok", "NotIn", &["-bad"]),
                expression("Example.com/x", "Exists", &[]),
            ],
        })
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 6, "{text:?}");
        assert!(text[0].starts_with("matchLabels[bad key!]: invalid label key"));
        assert!(text[1].starts_with("matchExpressions[1]: unknown operator \"Matches\""));
        assert_eq!(
            text[2],
            "matchExpressions[2]: operator In needs at least one value"
        );
        assert_eq!(
            text[3],
            "matchExpressions[3]: operator Exists takes no values"
        );
        assert!(text[4].starts_with("matchExpressions[4]: invalid label value \"-bad\""));
        assert!(text[5].contains("prefix must be a lowercase DNS subdomain"));
    }

    #[test]
    fn prefixed_keys_and_empty_values_are_valid() {
        let s = selector(
            &[("example.com/team", "")],
            vec![expression(
                "kubernetes.io/metadata.name",
                "In",
                &["a.b_c-d"],
            )],
        );
        assert!(s.matches(&labels(&[
            ("example.com/team", ""),
            ("kubernetes.io/metadata.name", "a.b_c-d"),
        ])));
    }
}
