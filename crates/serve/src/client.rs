//! How other `pipectl` commands reach a running daemon: its address file and a minimal
//! HTTP/1.1 client over a loopback TCP connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::daemon::address_file;

/// The address of the daemon using `state_dir`, if its address file exists.
pub fn daemon_address(state_dir: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(address_file(state_dir)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("addr")?.as_str()?.parse().ok()
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// Sends one request and reads the whole response. The connect timeout is short (the daemon
/// is local); reading has none, because `POST /api/run` answers when the run ends.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response. Works on bytes: chunk sizes count bytes of the body as
/// sent, so the body is only decoded (lossily) after it has been reassembled.
fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let invalid = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the daemon sent an invalid HTTP response",
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(invalid)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        String::from_utf8_lossy(&dechunk(body)).into_owned()
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    Ok(Response { status, body })
}

/// Reassembles a chunked body; stops at the last chunk or at the first malformed one.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..line_end]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[line_end + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status and body of a raw response, asserted to parse.
    fn status_and_body(raw: &[u8]) -> (u16, String) {
        let response = parse_response(raw).unwrap();
        (response.status, response.body)
    }

    #[test]
    fn a_chunk_boundary_inside_a_multibyte_character_keeps_the_character() {
        // "é" is two bytes; each chunk carries one of them.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xc3\r\n2\r\n\xa9!\r\n0\r\n\r\n";
        assert_eq!(status_and_body(raw), (200, "é!".to_owned()));
    }

    #[test]
    fn invalid_utf8_in_a_chunk_is_replaced_not_a_panic() {
        let raw = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\xffb\r\n2\r\n\xc3\xa9\r\n0\r\n\r\n";
        assert_eq!(status_and_body(raw), (500, "a\u{fffd}bé".to_owned()));
    }

    #[test]
    fn a_plain_body_and_a_missing_head_end() {
        assert_eq!(
            status_and_body(b"HTTP/1.1 404 Not Found\r\n\r\nno such run"),
            (404, "no such run".to_owned())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
