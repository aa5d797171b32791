//! Tests of the XML-RPC wire format. The response samples follow the shape xmlrpc-c (the
//! library behind OpenNebula's `oned`) writes: typed `<i4>`/`<boolean>`/`<string>` values in
//! one `<array>` parameter, and `<fault>` structs with `faultCode`/`faultString`.

use super::*;

#[test]
fn a_call_is_encoded_with_typed_and_escaped_parameters() {
    let xml = encode_call(
        "one.vm.info",
        &[
            Value::String("oneadmin:p<&>ss".into()),
            Value::Int(42),
            Value::Bool(false),
        ],
    );
    assert_eq!(
        xml,
        "<?xml version=\"1.0\"?>\n<methodCall><methodName>one.vm.info</methodName><params>\
         <param><value><string>oneadmin:p&lt;&amp;&gt;ss</string></value></param>\
         <param><value><i4>42</i4></value></param>\
         <param><value><boolean>0</boolean></value></param>\
         </params></methodCall>\n"
    );
}

#[test]
fn the_pool_call_is_encoded_with_negative_ints() {
    let xml = encode_call(
        "one.vmpool.infoextended",
        &[
            Value::String("u:p".into()),
            Value::Int(-2),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
        ],
    );
    assert!(
        xml.contains(
            "<param><value><i4>-2</i4></value></param><param><value><i4>-1</i4></value></param>"
        ),
        "{xml}"
    );
}

#[test]
fn large_ints_and_nested_values_are_encoded() {
    let xml = encode_call(
        "m",
        &[
            Value::Int(1 << 40),
            Value::Array(vec![Value::Nil, Value::Double(1.5)]),
            Value::Struct(vec![("k\r".into(), Value::Bool(true))]),
        ],
    );
    assert!(xml.contains("<i8>1099511627776</i8>"), "{xml}");
    assert!(
        xml.contains(
            "<array><data><value><nil/></value><value><double>1.5</double></value></data></array>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<struct><member><name>k&#13;</name><value><boolean>1</boolean></value></member></struct>"),
        "{xml}"
    );
}

#[test]
fn an_encoded_call_decodes_back_to_its_values() {
    let params = vec![
        Value::String("a <b> & \"c\"\r\n".into()),
        Value::Int(-7),
        Value::Bool(true),
    ];
    let call = encode_call("m", &params);
    // A method call has <params> like a response; reuse the decoder on a response built
    // from the same parameter list.
    let response = call
        .replace("<methodCall><methodName>m</methodName>", "<methodResponse>")
        .replace("</methodCall>", "</methodResponse>");
    assert_eq!(decode_response(response.as_bytes()), Ok(params));
}

const SUCCESS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n\
<params>\r\n<param><value><array><data>\r\n\
<value><boolean>1</boolean></value>\r\n\
<value><string>&lt;VM&gt;&lt;ID&gt;42&lt;/ID&gt;&lt;NAME&gt;&lt;![CDATA[w&amp;1]]&gt;&lt;/NAME&gt;&lt;/VM&gt;</string></value>\r\n\
<value><i4>0</i4></value>\r\n\
</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n";

#[test]
fn a_successful_answer_decodes_to_its_array_with_the_document_unescaped() {
    let values = decode_response(SUCCESS.as_bytes()).expect("a valid response");
    assert_eq!(
        values,
        vec![Value::Array(vec![
            Value::Bool(true),
            Value::String("<VM><ID>42</ID><NAME><![CDATA[w&1]]></NAME></VM>".into()),
            Value::Int(0),
        ])]
    );
}

#[test]
fn an_error_answer_is_an_array_like_any_other() {
    let xml = "<methodResponse><params><param><value><array><data>\
        <value><boolean>0</boolean></value>\
        <value><string>[one.vm.info] User couldn't be authenticated, aborting call.</string></value>\
        <value><i4>256</i4></value><value><i4>-1</i4></value>\
        </data></array></value></param></params></methodResponse>";
    let values = decode_response(xml.as_bytes()).expect("a valid response");
    let Value::Array(items) = &values[0] else {
        panic!("an array: {values:?}");
    };
    assert_eq!(items[0], Value::Bool(false));
    assert_eq!(items[2], Value::Int(256));
}

#[test]
fn a_fault_is_decoded_with_code_and_message() {
    let xml = "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>\
        <member><name>faultCode</name><value><i4>-506</i4></value></member>\
        <member><name>faultString</name><value><string>Method 'one.vm.nope' not defined</string></value></member>\
        </struct></value></fault></methodResponse>";
    assert_eq!(
        decode_response(xml.as_bytes()),
        Err(XmlRpcError::Fault {
            code: -506,
            message: "Method 'one.vm.nope' not defined".into()
        })
    );
}

#[test]
fn an_untyped_value_is_a_string_and_an_empty_string_is_empty() {
    let xml = "<methodResponse><params>\
        <param><value>plain</value></param>\
        <param><value><string/></value></param>\
        <param><value><int> 5 </int></value></param>\
        </params></methodResponse>";
    assert_eq!(
        decode_response(xml.as_bytes()),
        Ok(vec![
            Value::String("plain".into()),
            Value::String(String::new()),
            Value::Int(5),
        ])
    );
}

#[test]
fn garbage_is_malformed_not_a_fault() {
    let cases: &[&[u8]] = &[
        b"",
        b"HTTP/1.1 200 OK",
        b"<html><body>502 Bad Gateway</body></html>",
        b"<methodResponse></methodResponse>",
        b"<methodResponse><params><param><value><i4>x</i4></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><boolean>2</boolean></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><weird/></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><array/></value></param></params></methodResponse>",
        b"<methodResponse><fault><value><string>x</string></value></fault></methodResponse>",
        b"<methodResponse><params><param><value><string>unterminated",
        &[0xff, 0xfe, b'<'],
    ];
    for case in cases {
        let result = decode_response(case);
        assert!(
            matches!(
                result,
                Err(XmlRpcError::NotXml(_) | XmlRpcError::Unexpected(_) | XmlRpcError::NotUtf8(_))
            ),
            "{:?}: {result:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn a_document_type_declaration_is_refused() {
    let xml = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]>\
        <methodResponse><params><param><value>&a;</value></param></params></methodResponse>";
    assert!(matches!(
        decode_response(xml.as_bytes()),
        Err(XmlRpcError::NotXml(_))
    ));
}
