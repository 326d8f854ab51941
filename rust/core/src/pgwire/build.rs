//! Encoders for the messages the proxy writes itself (protocol section "Message Formats").
//! Strings containing NUL cannot be represented on the wire; they are cut at the first NUL
//! (the proxy only ever writes its own text and names it has already decoded).

/// `tag, Int32 length, body`.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    out.extend_from_slice(b.get(..n).unwrap_or(b));
    out.push(0);
}

/// ErrorResponse ('E') or, with `tag = b'N'`, NoticeResponse, from (field code, value) pairs.
pub fn error_fields(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    for (code, value) in fields {
        if *code == 0 {
            continue;
        }
        body.push(*code);
        put_cstr(&mut body, value);
    }
    body.push(0);
    message(tag, &body)
}

pub fn error_response(fields: &[(u8, &str)]) -> Vec<u8> {
    error_fields(b'E', fields)
}

pub fn ready_for_query(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_cstr(&mut body, name);
    put_cstr(&mut body, value);
    message(b'S', &body)
}

pub fn backend_key_data(pid: i32, key: &[u8]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(key);
    message(b'K', &body)
}

/// Authentication* request: code plus data (salt for MD5, mechanisms or SASL data).
pub fn auth_request(code: i32, data: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(data);
    message(b'R', &body)
}

/// StartupMessage for protocol 3.0 with the given parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = super::PROTOCOL_3_0.to_be_bytes().to_vec();
    for (k, v) in params {
        put_cstr(&mut body, k);
        put_cstr(&mut body, v);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn cancel_request(pid: i32, key: &[u8]) -> Vec<u8> {
    let mut out = ((12 + key.len()) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&super::CANCEL_REQUEST_CODE.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(key);
    out
}

pub fn ssl_request() -> Vec<u8> {
    let mut out = 8i32.to_be_bytes().to_vec();
    out.extend_from_slice(&super::SSL_REQUEST_CODE.to_be_bytes());
    out
}

/// 'Q' Query.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(sql.len() + 1);
    put_cstr(&mut body, sql);
    message(b'Q', &body)
}

/// 'P' Parse without declared parameter types.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(sql.len() + name.len() + 4);
    put_cstr(&mut body, name);
    put_cstr(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &body)
}

/// ErrorResponse as the proxy writes it (python protocols/pg_messages.py `error`): S and V
/// severity, C SQLSTATE, M message, then D detail and H hint when given and non-empty
/// (protocol section "Error and Notice Message Fields").
pub fn error(severity: &str, code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> Vec<u8> {
    let mut fields: [(u8, &str); 6] =
        [(b'S', severity), (b'V', severity), (b'C', code), (b'M', message), (0, ""), (0, "")];
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        fields[4] = (b'D', d);
    }
    if let Some(h) = hint.filter(|h| !h.is_empty()) {
        fields[5] = (b'H', h);
    }
    // error_fields skips code 0 entries.
    error_fields(b'E', &fields)
}

/// FATAL ErrorResponse (pg_messages.fatal): the server closes the connection after it.
pub fn fatal(code: &str, message: &str) -> Vec<u8> {
    error("FATAL", code, message, None, None)
}

/// 'f' CopyFail with an error message (protocol section "COPY Operations").
pub fn copy_fail(message: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 1);
    put_cstr(&mut body, message);
    self::message(b'f', &body)
}

/// 'X' Terminate.
pub fn terminate() -> Vec<u8> {
    vec![b'X', 0, 0, 0, 4]
}

/// NegotiateProtocolVersion ('v'): newest minor version supported plus unrecognized options.
pub fn negotiate_protocol_version(minor: i32, options: &[&str]) -> Vec<u8> {
    let mut body = minor.to_be_bytes().to_vec();
    body.extend_from_slice(&(options.len() as i32).to_be_bytes());
    for o in options {
        put_cstr(&mut body, o);
    }
    message(b'v', &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(ready_for_query(b'I'), vec![b'Z', 0, 0, 0, 5, b'I']);
        assert_eq!(ssl_request(), vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        assert_eq!(query("a\0b"), vec![b'Q', 0, 0, 0, 6, b'a', 0]);
        let e = error_response(&[(b'C', "25006")]);
        assert_eq!(e, vec![b'E', 0, 0, 0, 12, b'C', b'2', b'5', b'0', b'0', b'6', 0, 0]);
        let st = startup_message(&[("user", "u")]);
        assert_eq!(st.len(), 4 + 4 + 5 + 2 + 1);
        assert_eq!(cancel_request(1, &[0, 0, 0, 2]).len(), 16);
        assert_eq!(terminate(), vec![b'X', 0, 0, 0, 4]);
        assert_eq!(copy_fail("no"), vec![b'f', 0, 0, 0, 7, b'n', b'o', 0]);
    }

    #[test]
    fn proxy_errors_match_pg_messages() {
        // pg_messages.error: S, V, C, M, then D and H only when non-empty.
        let e = error("ERROR", "25006", "m", Some("d"), Some(""));
        assert_eq!(e, error_response(&[(b'S', "ERROR"), (b'V', "ERROR"), (b'C', "25006"), (b'M', "m"), (b'D', "d")]));
        let f = fatal("08P01", "bad");
        assert_eq!(f, error_response(&[(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "08P01"), (b'M', "bad")]));
    }
}
