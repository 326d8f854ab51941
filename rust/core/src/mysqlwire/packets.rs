//! Builders and parsers for the packets the relay itself writes or must understand
//! (MySQL "Generic Response Packets": OK_Packet, ERR_Packet, EOF_Packet; "Connection
//! Phase Packets": Protocol::HandshakeV10, Protocol::HandshakeResponse41,
//! Protocol::SSLRequest, Protocol::AuthSwitchRequest, Protocol::AuthMoreData).
//! Builders return framed bytes (header included); parsers take one payload.

use super::codec::{put_lenenc, put_lenenc_bytes, Reader};
use super::consts::*;
use super::framing::{frame, frame_into};
use crate::{Error, Result};

fn frame_err(message: impl Into<String>) -> Error {
    Error::Frame { message: message.into() }
}

// ------------------------------------------------------------------ generic responses

/// ERR_Packet (protocol 41 form: '#' + 5-byte SQLSTATE). `sqlstate` is padded/truncated to 5.
pub fn err_packet(seq: u8, code: u16, sqlstate: &str, message: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(9 + message.len());
    p.push(ERR_HEADER);
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    let mut st = [b'H', b'Y', b'0', b'0', b'0'];
    for (i, b) in sqlstate.bytes().take(5).enumerate() {
        st[i] = b;
    }
    p.extend_from_slice(&st);
    p.extend_from_slice(message);
    frame(&p, seq)
}

/// OK_Packet; `eof_header` writes 0xfe (the OK that replaces EOF under CLIENT_DEPRECATE_EOF).
pub fn ok_packet(seq: u8, affected_rows: u64, last_insert_id: u64, status: u16, warnings: u16, info: &[u8], eof_header: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + info.len());
    p.push(if eof_header { EOF_HEADER } else { OK_HEADER });
    put_lenenc(&mut p, affected_rows);
    put_lenenc(&mut p, last_insert_id);
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&warnings.to_le_bytes());
    if !info.is_empty() {
        p.extend_from_slice(info);
    }
    frame(&p, seq)
}

/// EOF_Packet (protocol 41).
pub fn eof_packet(seq: u8, warnings: u16, status: u16) -> Vec<u8> {
    let mut p = vec![EOF_HEADER];
    p.extend_from_slice(&warnings.to_le_bytes());
    p.extend_from_slice(&status.to_le_bytes());
    frame(&p, seq)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
}

/// Parse an OK packet (header 0x00 or 0xfe). Only the fixed fields the relay needs.
pub fn parse_ok(payload: &[u8]) -> Result<OkInfo> {
    let mut r = Reader::new(payload);
    let h = r.u8("OK header")?;
    if h != OK_HEADER && h != EOF_HEADER {
        return Err(frame_err(format!("expected OK packet, got header 0x{h:02x}")));
    }
    let affected_rows = r.lenenc("OK affected rows")?;
    let last_insert_id = r.lenenc("OK last insert id")?;
    // protocol 41: status and warnings (always negotiated by this relay)
    let status = r.u16("OK status flags")?;
    let warnings = if r.remaining() >= 2 { r.u16("OK warnings")? } else { 0 };
    Ok(OkInfo { affected_rows, last_insert_id, status, warnings })
}

/// Parse an EOF packet: (warnings, status).
pub fn parse_eof(payload: &[u8]) -> Result<(u16, u16)> {
    let mut r = Reader::new(payload);
    if r.u8("EOF header")? != EOF_HEADER {
        return Err(frame_err("expected EOF packet"));
    }
    if r.is_empty() {
        // pre-4.1 EOF: a single byte
        return Ok((0, 0));
    }
    let warnings = r.u16("EOF warnings")?;
    let status = r.u16("EOF status")?;
    Ok((warnings, status))
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrInfo {
    pub code: u16,
    pub sqlstate: String,
    pub message: Vec<u8>,
}

pub fn parse_err(payload: &[u8]) -> Result<ErrInfo> {
    let mut r = Reader::new(payload);
    if r.u8("ERR header")? != ERR_HEADER {
        return Err(frame_err("expected ERR packet"));
    }
    let code = r.u16("ERR code")?;
    let mut sqlstate = String::from("HY000");
    if r.remaining() >= 6 && payload.get(3) == Some(&b'#') {
        r.u8("ERR marker")?;
        let st = r.bytes(5, "ERR sqlstate")?;
        sqlstate = String::from_utf8_lossy(st).into_owned();
    }
    Ok(ErrInfo { code, sqlstate, message: r.rest().to_vec() })
}

// ------------------------------------------------------------------ connection phase

/// Protocol::HandshakeV10 as sent by a server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHandshake {
    pub protocol_version: u8,
    pub server_version: Vec<u8>,
    pub connection_id: u32,
    /// auth-plugin-data (the scramble), usually 20 bytes, trailing NUL removed
    pub scramble: Vec<u8>,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: Vec<u8>,
    /// MariaDB extended capabilities (bytes 6..10 of the reserved area), 0 elsewhere
    pub mariadb_caps: u32,
}

pub fn parse_handshake(payload: &[u8]) -> Result<ServerHandshake> {
    let mut r = Reader::new(payload);
    let protocol_version = r.u8("handshake protocol version")?;
    if protocol_version == ERR_HEADER {
        return Err(frame_err("server sent an error instead of a handshake"));
    }
    if protocol_version != 10 {
        return Err(frame_err(format!("unsupported handshake protocol version {protocol_version}")));
    }
    let server_version = r.nul_str("server version")?.to_vec();
    let connection_id = r.u32("connection id")?;
    let mut scramble = r.bytes(8, "auth-plugin-data-part-1")?.to_vec();
    r.u8("filler")?;
    let cap_lo = u32::from(r.u16("capability flags")?);
    let mut hs = ServerHandshake { protocol_version, server_version, connection_id, capabilities: cap_lo, ..Default::default() };
    if r.is_empty() {
        hs.scramble = scramble;
        return Ok(hs);
    }
    hs.charset = r.u8("character set")?;
    hs.status = r.u16("status flags")?;
    let cap_hi = u32::from(r.u16("capability flags (upper)")?);
    hs.capabilities = cap_lo | cap_hi << 16;
    let auth_len = usize::from(r.u8("auth-plugin-data length")?);
    let reserved = r.bytes(10, "reserved")?;
    if hs.capabilities & CLIENT_LONG_PASSWORD == 0 {
        // MariaDB: no CLIENT_MYSQL flag means the last 4 reserved bytes are extended caps
        hs.mariadb_caps = u32::from_le_bytes([reserved[6], reserved[7], reserved[8], reserved[9]]);
    }
    if hs.capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let n = auth_len.saturating_sub(8).max(13);
        let part2 = r.bytes(n.min(r.remaining()), "auth-plugin-data-part-2")?;
        let part2 = match part2.split_last() {
            Some((0, head)) => head,
            _ => part2,
        };
        scramble.extend_from_slice(part2);
    }
    hs.scramble = scramble;
    if hs.capabilities & CLIENT_PLUGIN_AUTH != 0 {
        hs.auth_plugin = r.nul_str("auth plugin name")?.to_vec();
    }
    Ok(hs)
}

/// Build Protocol::HandshakeV10 (framed, sequence id 0). `scramble` must be 20 bytes.
#[allow(clippy::too_many_arguments)]
pub fn handshake_packet(server_version: &[u8], connection_id: u32, scramble: &[u8], capabilities: u32, charset: u8, status: u16, auth_plugin: &[u8]) -> Result<Vec<u8>> {
    if scramble.len() != 20 {
        return Err(Error::Invalid { message: "scramble must be 20 bytes".into() });
    }
    if server_version.contains(&0) || auth_plugin.contains(&0) {
        return Err(Error::Invalid { message: "NUL byte in server version or plugin name".into() });
    }
    let mut p = Vec::with_capacity(96);
    p.push(10);
    p.extend_from_slice(server_version);
    p.push(0);
    p.extend_from_slice(&connection_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(capabilities as u16).to_le_bytes());
    p.push(charset);
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    p.push(21); // length of auth-plugin-data (20 + NUL)
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(auth_plugin);
    p.push(0);
    Ok(frame(&p, 0))
}

/// Protocol::HandshakeResponse41 (or the 32-byte SSLRequest prefix of it) from a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHandshake {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    /// true for a bare SSLRequest (32 bytes, CLIENT_SSL set): TLS starts next
    pub ssl_request: bool,
    pub username: Vec<u8>,
    pub auth_response: Vec<u8>,
    pub database: Option<Vec<u8>>,
    pub auth_plugin: Option<Vec<u8>>,
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
}

pub fn parse_handshake_response(payload: &[u8]) -> Result<ClientHandshake> {
    let mut r = Reader::new(payload);
    let capabilities = r.u32("client capability flags")?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return Err(frame_err("client does not speak protocol 4.1 (HandshakeResponse320 is not supported)"));
    }
    let max_packet = r.u32("max packet size")?;
    let charset = r.u8("character set")?;
    r.bytes(23, "filler")?;
    let mut hs = ClientHandshake { capabilities, max_packet, charset, ..Default::default() };
    if r.is_empty() {
        if capabilities & CLIENT_SSL != 0 {
            hs.ssl_request = true;
            return Ok(hs);
        }
        return Err(frame_err("handshake response without a user name"));
    }
    hs.username = r.nul_str("user name")?.to_vec();
    hs.auth_response = if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes("auth response")?.to_vec()
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let n = usize::from(r.u8("auth response length")?);
        r.bytes(n, "auth response")?.to_vec()
    } else {
        r.nul_str("auth response")?.to_vec()
    };
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 && !r.is_empty() {
        hs.database = Some(r.nul_str("database")?.to_vec());
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        hs.auth_plugin = Some(r.nul_str("auth plugin name")?.to_vec());
    }
    if capabilities & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        let total = r.lenenc("connection attributes length")?;
        let total = usize::try_from(total).map_err(|_| frame_err("connection attributes too long"))?;
        let attrs = r.bytes(total, "connection attributes")?;
        let mut a = Reader::new(attrs);
        while !a.is_empty() {
            let k = a.lenenc_bytes("attribute key")?.to_vec();
            let v = a.lenenc_bytes("attribute value")?.to_vec();
            if hs.attributes.len() < 64 {
                hs.attributes.push((k, v));
            }
        }
    }
    Ok(hs)
}

/// Build Protocol::HandshakeResponse41 towards a server (always lenenc auth data).
#[allow(clippy::too_many_arguments)]
pub fn handshake_response_packet(seq: u8, capabilities: u32, max_packet: u32, charset: u8, username: &[u8], auth_response: &[u8], database: Option<&[u8]>, auth_plugin: &[u8], attributes: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>> {
    if username.contains(&0) || auth_plugin.contains(&0) || database.is_some_and(|d| d.contains(&0)) {
        return Err(Error::Invalid { message: "NUL byte in user, database or plugin name".into() });
    }
    let mut caps = capabilities | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    } else {
        caps &= !CLIENT_CONNECT_WITH_DB;
    }
    if attributes.is_empty() {
        caps &= !CLIENT_CONNECT_ATTRS;
    } else {
        caps |= CLIENT_CONNECT_ATTRS;
    }
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&max_packet.to_le_bytes());
    p.push(charset);
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(username);
    p.push(0);
    put_lenenc_bytes(&mut p, auth_response);
    if let Some(db) = database {
        p.extend_from_slice(db);
        p.push(0);
    }
    p.extend_from_slice(auth_plugin);
    p.push(0);
    if !attributes.is_empty() {
        let mut a = Vec::new();
        for (k, v) in attributes {
            put_lenenc_bytes(&mut a, k);
            put_lenenc_bytes(&mut a, v);
        }
        put_lenenc_bytes(&mut p, &a);
    }
    let mut out = Vec::with_capacity(p.len() + 4);
    frame_into(&mut out, &p, seq);
    Ok(out)
}

/// Protocol::SSLRequest (32 bytes, CLIENT_SSL set).
pub fn ssl_request_packet(seq: u8, capabilities: u32, max_packet: u32, charset: u8) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&(capabilities | CLIENT_SSL | CLIENT_PROTOCOL_41).to_le_bytes());
    p.extend_from_slice(&max_packet.to_le_bytes());
    p.push(charset);
    p.extend_from_slice(&[0u8; 23]);
    frame(&p, seq)
}

/// Protocol::AuthSwitchRequest: 0xfe, plugin name NUL, plugin data.
pub fn auth_switch_packet(seq: u8, plugin: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    if plugin.contains(&0) {
        return Err(Error::Invalid { message: "NUL byte in plugin name".into() });
    }
    let mut p = vec![AUTH_SWITCH_HEADER];
    p.extend_from_slice(plugin);
    p.push(0);
    p.extend_from_slice(data);
    Ok(frame(&p, seq))
}

/// Parse an AuthSwitchRequest payload: (plugin name, plugin data with a trailing NUL removed).
pub fn parse_auth_switch(payload: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader::new(payload);
    if r.u8("auth switch header")? != AUTH_SWITCH_HEADER {
        return Err(frame_err("expected AuthSwitchRequest"));
    }
    if r.is_empty() {
        return Err(frame_err("old-style auth switch (mysql_old_password) is not supported"));
    }
    let plugin = r.nul_str("auth switch plugin")?.to_vec();
    let mut data = r.rest();
    if let Some((0, head)) = data.split_last() {
        data = head;
    }
    Ok((plugin, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(framed: &[u8]) -> &[u8] {
        &framed[4..]
    }

    #[test]
    fn err_roundtrip() {
        let p = err_packet(3, 1792, "25006", b"blocked");
        assert_eq!(p[3], 3);
        let e = parse_err(payload(&p)).unwrap();
        assert_eq!(e.code, 1792);
        assert_eq!(e.sqlstate, "25006");
        assert_eq!(e.message, b"blocked");
        // pre-4.1 error without sqlstate
        let e = parse_err(&[0xff, 0x10, 0x04, b'x']).unwrap();
        assert_eq!(e.sqlstate, "HY000");
        assert!(parse_err(&[0xff, 1]).is_err());
    }

    #[test]
    fn ok_roundtrip() {
        let p = ok_packet(1, 300, 70000, 0x0002, 1, b"", false);
        let o = parse_ok(payload(&p)).unwrap();
        assert_eq!(o, OkInfo { affected_rows: 300, last_insert_id: 70000, status: 2, warnings: 1 });
        assert!(parse_ok(&[0x00, 0xfc]).is_err());
        let (w, s) = parse_eof(payload(&eof_packet(5, 2, 0x22))).unwrap();
        assert_eq!((w, s), (2, 0x22));
    }

    #[test]
    fn handshake_roundtrip() {
        let scramble: Vec<u8> = (1..=20).collect();
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_LONG_PASSWORD | CLIENT_DEPRECATE_EOF;
        let p = handshake_packet(b"10.11.6-MariaDB-sandbox-db-proxy", 42, &scramble, caps, 45, 2, b"mysql_native_password").unwrap();
        let hs = parse_handshake(payload(&p)).unwrap();
        assert_eq!(hs.server_version, b"10.11.6-MariaDB-sandbox-db-proxy");
        assert_eq!(hs.connection_id, 42);
        assert_eq!(hs.scramble, scramble);
        assert_eq!(hs.capabilities, caps);
        assert_eq!(hs.auth_plugin, b"mysql_native_password");
        // every truncation is an error or a shorter parse, never a panic
        for n in 0..p.len() - 4 {
            let _ = parse_handshake(&payload(&p)[..n]);
        }
        assert!(handshake_packet(b"x", 1, b"short", caps, 45, 2, b"p").is_err());
    }

    #[test]
    fn handshake_response_roundtrip() {
        let attrs = vec![(b"_client_name".to_vec(), b"test".to_vec())];
        let p = handshake_response_packet(1, CLIENT_DEPRECATE_EOF, 1 << 24, 45, b"app", &[9u8; 20], Some(b"db1"), b"mysql_native_password", &attrs).unwrap();
        assert_eq!(p[3], 1);
        let hs = parse_handshake_response(payload(&p)).unwrap();
        assert_eq!(hs.username, b"app");
        assert_eq!(hs.auth_response, vec![9u8; 20]);
        assert_eq!(hs.database.as_deref(), Some(&b"db1"[..]));
        assert_eq!(hs.auth_plugin.as_deref(), Some(&b"mysql_native_password"[..]));
        assert_eq!(hs.attributes, attrs);
        assert!(!hs.ssl_request);
        for n in 0..p.len() - 4 {
            let _ = parse_handshake_response(&payload(&p)[..n]);
        }
        let ssl = ssl_request_packet(1, CLIENT_PROTOCOL_41, 1 << 24, 45);
        assert!(parse_handshake_response(payload(&ssl)).unwrap().ssl_request);
        // no protocol 41
        assert!(parse_handshake_response(&[0u8; 40]).is_err());
        // bogus auth length
        let mut bad = payload(&p).to_vec();
        bad.truncate(40);
        assert!(parse_handshake_response(&bad).is_err() || parse_handshake_response(&bad).is_ok());
    }

    #[test]
    fn auth_switch_roundtrip() {
        let mut d = vec![7u8; 20];
        d.push(0);
        let p = auth_switch_packet(2, b"caching_sha2_password", &d).unwrap();
        let (plugin, data) = parse_auth_switch(payload(&p)).unwrap();
        assert_eq!(plugin, b"caching_sha2_password");
        assert_eq!(data.len(), 20);
        assert!(parse_auth_switch(&[0xfe]).is_err());
    }
}
