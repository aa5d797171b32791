//! The XML-RPC wire format: encoding a method call and decoding a method response (its
//! parameters or its fault). Pure: no I/O.

use std::fmt::Write as _;

/// An XML-RPC value, as far as OpenNebula's answers need it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Bool(bool),
    String(String),
    Double(f64),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
    Nil,
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
            Value::Nil => "nil",
        }
    }
}

/// Why a method response could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum XmlRpcError {
    #[error("the response is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("the response is not XML")]
    NotXml(#[source] roxmltree::Error),
    #[error("the response is not an XML-RPC method response: {0}")]
    Unexpected(String),
    #[error("XML-RPC fault {code}: {message}")]
    Fault { code: i64, message: String },
}

/// The `<methodCall>` document for `method` with `params`.
pub(crate) fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    for param in params {
        out.push_str("<param>");
        encode_value(&mut out, param);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>\n");
    out
}

fn encode_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Int(n) => match i32::try_from(*n) {
            Ok(n) => {
                let _ = write!(out, "<i4>{n}</i4>");
            }
            Err(_) => {
                let _ = write!(out, "<i8>{n}</i8>");
            }
        },
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            items.iter().for_each(|item| encode_value(out, item));
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, value) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                encode_value(out, value);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

/// Escapes text content; a carriage return is kept as a reference (XML parsers normalize a
/// literal one away).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// The parameters of a `<methodResponse>`, or its fault as [`XmlRpcError::Fault`].
pub(crate) fn decode_response(body: &[u8]) -> Result<Vec<Value>, XmlRpcError> {
    let text = std::str::from_utf8(body).map_err(XmlRpcError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(XmlRpcError::NotXml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "methodResponse" {
        return Err(unexpected(format!(
            "the root element is <{}>, not <methodResponse>",
            root.tag_name().name()
        )));
    }
    let Some(content) = elements(root).next() else {
        return Err(unexpected("<methodResponse> is empty".into()));
    };
    match content.tag_name().name() {
        "params" => elements(content)
            .map(|param| {
                expect_name(param, "param")?;
                decode_value(only_child(param, "value")?)
            })
            .collect(),
        "fault" => Err(decode_fault(only_child(content, "value")?)),
        other => Err(unexpected(format!(
            "<methodResponse> holds <{other}>, not <params> or <fault>"
        ))),
    }
}

fn decode_fault(value: roxmltree::Node<'_, '_>) -> XmlRpcError {
    let members = match decode_value(value) {
        Ok(Value::Struct(members)) => members,
        Ok(other) => {
            return unexpected(format!("the fault is a {}, not a struct", other.kind()));
        }
        Err(e) => return e,
    };
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    match (member("faultCode"), member("faultString")) {
        (Some(Value::Int(code)), Some(Value::String(message))) => XmlRpcError::Fault {
            code: *code,
            message: message.clone(),
        },
        _ => unexpected("the fault lacks an int faultCode or a string faultString".into()),
    }
}

fn decode_value(node: roxmltree::Node<'_, '_>) -> Result<Value, XmlRpcError> {
    expect_name(node, "value")?;
    let Some(typed) = elements(node).next() else {
        // A value without a type element is a string.
        return Ok(Value::String(text_of(node)));
    };
    let text = text_of(typed);
    let number = |what: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|e| unexpected(format!("<{what}> holds {text:?}: {e}")))
    };
    Ok(match typed.tag_name().name() {
        "i4" | "int" | "i8" => Value::Int(number(typed.tag_name().name())?),
        "boolean" => match text.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            other => return Err(unexpected(format!("<boolean> holds {other:?}"))),
        },
        "string" | "dateTime.iso8601" | "base64" => Value::String(text),
        "double" => Value::Double(
            text.trim()
                .parse()
                .map_err(|e| unexpected(format!("<double> holds {text:?}: {e}")))?,
        ),
        "nil" => Value::Nil,
        "array" => {
            let data = only_child(typed, "data")?;
            Value::Array(elements(data).map(decode_value).collect::<Result<_, _>>()?)
        }
        "struct" => Value::Struct(
            elements(typed)
                .map(decode_member)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(unexpected(format!("unknown value type <{other}>"))),
    })
}

fn decode_member(member: roxmltree::Node<'_, '_>) -> Result<(String, Value), XmlRpcError> {
    expect_name(member, "member")?;
    let mut children = elements(member);
    match (children.next(), children.next()) {
        (Some(name), Some(value)) if name.tag_name().name() == "name" => {
            Ok((text_of(name), decode_value(value)?))
        }
        _ => Err(unexpected("a <member> is not <name> then <value>".into())),
    }
}

fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children().filter(roxmltree::Node::is_element)
}

fn only_child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Result<roxmltree::Node<'a, 'input>, XmlRpcError> {
    let mut children = elements(node);
    match (children.next(), children.next()) {
        (Some(child), None) if child.tag_name().name() == name => Ok(child),
        _ => Err(unexpected(format!(
            "<{}> does not hold exactly one <{name}>",
            node.tag_name().name()
        ))),
    }
}

fn expect_name(node: roxmltree::Node<'_, '_>, name: &str) -> Result<(), XmlRpcError> {
    if node.tag_name().name() == name {
        Ok(())
    } else {
        Err(unexpected(format!(
            "found <{}> where <{name}> belongs",
            node.tag_name().name()
        )))
    }
}

/// All text below `node` (text and CDATA), entities resolved.
fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.descendants()
        .filter(roxmltree::Node::is_text)
        .filter_map(|n| n.text())
        .collect()
}

fn unexpected(what: String) -> XmlRpcError {
    XmlRpcError::Unexpected(what)
}

#[cfg(test)]
#[path = "tests/xmlrpc.rs"]
mod tests;
