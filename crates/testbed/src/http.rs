//! A minimal blocking HTTP/1.1 client for the few setup requests object_store cannot
//! make (creating containers and buckets). Plain `std` sockets keep it usable from
//! synchronous tests and from inside async runtimes alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{io_error, Error, Result};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Status code and body of a response.
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends a body-less request to `127.0.0.1:port` and reads the whole response.
/// `target` is the request target (path and query); `what` names the request in errors.
pub(crate) fn send(port: u16, method: &str, target: &str, headers: &[(&str, String)], what: &str) -> Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let context = |step: &str| format!("{what}: {step} 127.0.0.1:{port}");
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io_error(context("connecting to")))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(io_error(context("setting timeouts on")))?;

    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(io_error(context("sending to")))?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_error(context("reading the response from")))?;
    let text = String::from_utf8_lossy(&raw);

    // "HTTP/1.1 201 Created"
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::Status {
            what: what.to_string(),
            status: 0,
            body: format!("unparseable response: {:?}", truncate(&text)),
        })?;
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    Ok(Response { status, body: truncate(body).to_string() })
}

fn truncate(text: &str) -> &str {
    const MAX: usize = 2000;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
