//! Reading MetalLB objects field by field: each field read is marked, so that the fields
//! nothing read are reported as not understood and no field goes unaccounted for.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Finding, Fit};

/// The findings of one conversion, in the order they were made (sorted when rendered).
#[derive(Debug, Default)]
pub(super) struct Findings(pub(super) Vec<Finding>);

impl Findings {
    pub(super) fn push(&mut self, object: &str, field: &str, fit: Fit, note: impl Into<String>) {
        self.0.push(Finding {
            object: object.to_owned(),
            field: field.to_owned(),
            fit,
            note: note.into(),
        });
    }

    pub(super) fn exact(&mut self, object: &str, field: &str, note: impl Into<String>) {
        self.push(object, field, Fit::Exact, note);
    }

    pub(super) fn approximate(&mut self, object: &str, field: &str, note: impl Into<String>) {
        self.push(object, field, Fit::Approximate, note);
    }

    pub(super) fn none(&mut self, object: &str, field: &str, note: impl Into<String>) {
        self.push(object, field, Fit::NoEquivalent, note);
    }
}

/// A field that was present but unusable; its finding is already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invalid;

/// One JSON object of an input being read: the keys taken so far.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    object: &'a str,
    path: String,
    map: Option<&'a Map<String, Value>>,
    used: BTreeSet<&'a str>,
}

impl<'a> Reader<'a> {
    /// Reads `value` (at `path`, e.g. `spec`) of the input named `object`. A value that is
    /// not a JSON object is reported and read as empty.
    pub(super) fn new(
        object: &'a str,
        path: &str,
        value: &'a Value,
        findings: &mut Findings,
    ) -> Reader<'a> {
        let map = match value {
            Value::Object(map) => Some(map),
            Value::Null => None,
            _ => {
                findings.none(object, path, "expected an object: not converted");
                None
            }
        };
        Reader {
            object,
            path: path.to_owned(),
            map,
            used: BTreeSet::new(),
        }
    }

    /// The full name of `key` in the report (`spec.addresses`).
    pub(super) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn object(&self) -> &'a str {
        self.object
    }

    /// The value of `key`, marked as read; `null` reads as absent.
    pub(super) fn take(&mut self, key: &str) -> Option<&'a Value> {
        let (name, value) = self.map?.get_key_value(key)?;
        self.used.insert(name.as_str());
        (!value.is_null()).then_some(value)
    }

    fn wrong(&self, key: &str, expected: &str, findings: &mut Findings) -> Invalid {
        findings.none(
            self.object,
            &self.at(key),
            format!("expected {expected}: not converted"),
        );
        Invalid
    }

    pub(super) fn string(
        &mut self,
        key: &str,
        findings: &mut Findings,
    ) -> Result<Option<String>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string", findings)),
        }
    }

    pub(super) fn boolean(
        &mut self,
        key: &str,
        findings: &mut Findings,
    ) -> Result<Option<bool>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false", findings)),
        }
    }

    /// A whole number in `0..=max`.
    pub(super) fn number(
        &mut self,
        key: &str,
        max: u64,
        findings: &mut Findings,
    ) -> Result<Option<u64>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => match value.as_u64().filter(|n| *n <= max) {
                Some(n) => Ok(Some(n)),
                None => Err(self.wrong(key, &format!("a whole number from 0 to {max}"), findings)),
            },
        }
    }

    /// A list of strings; absent reads as empty.
    pub(super) fn strings(
        &mut self,
        key: &str,
        findings: &mut Findings,
    ) -> Result<Vec<String>, Invalid> {
        let Some(value) = self.take(key) else {
            return Ok(Vec::new());
        };
        let strings = value.as_array().and_then(|items| {
            (items.iter())
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        strings.ok_or_else(|| self.wrong(key, "a list of strings", findings))
    }

    /// A list of values; absent reads as empty.
    pub(super) fn list(
        &mut self,
        key: &str,
        findings: &mut Findings,
    ) -> Result<&'a [Value], Invalid> {
        match self.take(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.wrong(key, "a list", findings)),
        }
    }

    /// The nested object `key` as a reader of its own (empty when absent).
    pub(super) fn nested(&mut self, key: &str, findings: &mut Findings) -> Reader<'a> {
        let path = self.at(key);
        match self.take(key) {
            Some(value) => Reader::new(self.object, &path, value, findings),
            None => Reader {
                object: self.object,
                path,
                map: None,
                used: BTreeSet::new(),
            },
        }
    }

    /// Whether `key` is present (not marking it read).
    pub(super) fn has(&self, key: &str) -> bool {
        self.map
            .and_then(|m| m.get(key))
            .is_some_and(|v| !v.is_null())
    }

    /// Reports every key nothing read.
    pub(super) fn finish(self, findings: &mut Findings) {
        let Some(map) = self.map else { return };
        for key in map.keys().filter(|k| !self.used.contains(k.as_str())) {
            findings.none(
                self.object,
                &self.at(key),
                "not understood: no equivalent known to the converter",
            );
        }
    }
}
