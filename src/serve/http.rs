//! A deliberately small HTTP/1.1 server side: one request per connection (`Connection: close`),
//! strict parsing with hard limits, and nothing the dashboard does not need (no keep-alive, no
//! chunked request bodies, no upgrades). Anything outside that subset is refused with a 4xx.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The request line and headers together may not exceed this.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body (the JSON or form of an approval) may not exceed this.
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to accept a response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The raw query string (after `?`), not decoded.
    pub query: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of the query parameter `name` (the first one given).
    pub fn param(&self, name: &str) -> Option<String> {
        form_pairs(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Why a request could not be read: the status to answer with and one sentence.
#[derive(Debug)]
pub struct BadRequest {
    pub status: u16,
    pub message: &'static str,
}

fn bad(status: u16, message: &'static str) -> BadRequest {
    BadRequest { status, message }
}

/// Read one request from `stream`. `Err(None)` when the client went away or timed out before
/// sending anything worth answering.
pub fn read_request(stream: &TcpStream) -> Result<Request, Option<BadRequest>> {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let mut reader = BufReader::new(stream.take((MAX_HEAD + MAX_BODY) as u64 + 1));
    let mut head = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take((MAX_HEAD + 1 - head.len().min(MAX_HEAD)) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|_| None)?;
        if n == 0 {
            return Err(if lines.is_empty() {
                None
            } else {
                Some(bad(400, "the request ended before its headers did"))
            });
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(Some(bad(431, "the request's headers are too large")));
        }
        if !line.ends_with(b"\n") {
            return Err(Some(bad(400, "the request ended before its headers did")));
        }
        let text = String::from_utf8(line)
            .map_err(|_| Some(bad(400, "the request's headers are not UTF-8")))?;
        let text = text.trim_end_matches('\n').trim_end_matches('\r');
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerated blank line before the request line (RFC 9112 §2.2)
            }
            break;
        }
        if lines.len() > MAX_HEADERS {
            return Err(Some(bad(431, "the request has too many headers")));
        }
        lines.push(text.to_string());
    }
    let mut first = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(Some(bad(400, "the request line is malformed")));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(Some(bad(505, "only HTTP/1.0 and HTTP/1.1 are served")));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Some(bad(400, "the request method is malformed")));
    }
    if !target.starts_with('/') {
        return Err(Some(bad(400, "the request target must be a path")));
    }
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path)
        .filter(|p| !p.chars().any(char::is_control))
        .ok_or_else(|| {
            Some(bad(
                400,
                "the request path is not valid percent-encoded UTF-8",
            ))
        })?;
    let mut headers = Vec::new();
    for l in &lines[1..] {
        let Some((name, value)) = l.split_once(':') else {
            return Err(Some(bad(400, "a request header is malformed")));
        };
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(Some(bad(400, "a request header name is malformed")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        query: query.to_string(),
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(Some(bad(
            411,
            "chunked request bodies are not accepted; send a Content-Length",
        )));
    }
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let len = match lengths.as_slice() {
        [] => 0,
        [one] => one
            .parse::<usize>()
            .map_err(|_| Some(bad(400, "the Content-Length is not a number")))?,
        _ => {
            return Err(Some(bad(
                400,
                "the request has more than one Content-Length",
            )))
        }
    };
    if len > MAX_BODY {
        return Err(Some(bad(
            413,
            "the request body is too large (64 KiB at most)",
        )));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(|_| {
        Some(bad(
            400,
            "the request body is shorter than its Content-Length",
        ))
    })?;
    req.body = body;
    Ok(req)
}

/// `%XX` decoding of a path or a form value (`plus` also turns `+` into a space); `None` when an
/// escape is malformed or the result is not UTF-8.
fn decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub fn percent_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// `application/x-www-form-urlencoded` pairs (also query strings); undecodable pairs are dropped.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// Percent-encode a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub enum Body {
    Bytes(Vec<u8>),
    /// A reader sent as it is read (a task's log), with the length it will send.
    Stream(Box<dyn Read + Send>, u64),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

/// The policy of every page: nothing from elsewhere, scripts and fetches only from this server,
/// forms only to it, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                       style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: Body::Bytes(body.into()),
        }
    }

    pub fn html(status: u16, body: String) -> Response {
        Response::new(status, "text/html; charset=utf-8", body)
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        Response::new(status, "application/json", b)
    }

    pub fn text(status: u16, body: String) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn redirect(to: &str) -> Response {
        let mut r = Response::text(303, format!("see {to}\n"));
        r.headers.push(("Location", to.to_string()));
        r
    }

    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// Write the response and close. HEAD requests get the headers only.
    pub fn send(self, stream: &mut TcpStream, head_only: bool) -> io::Result<()> {
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let len = match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::Stream(_, n) => *n,
        };
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {len}\r\nConnection: close\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
             X-Frame-Options: DENY\r\nCross-Origin-Opener-Policy: same-origin\r\n\
             Cross-Origin-Resource-Policy: same-origin\r\n"
        ));
        if !self
            .headers
            .iter()
            .any(|(n, _)| *n == "Content-Security-Policy")
        {
            head.push_str(&format!("Content-Security-Policy: {CSP}\r\n"));
        }
        head.push_str("\r\n");
        let mut w = io::BufWriter::with_capacity(64 * 1024, stream);
        w.write_all(head.as_bytes())?;
        if !head_only {
            match self.body {
                Body::Bytes(b) => w.write_all(&b)?,
                Body::Stream(r, n) => {
                    io::copy(&mut r.take(n), &mut w)?;
                }
            }
        }
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_paths_and_forms() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2"), None);
        assert_eq!(percent_decode("/a%zz"), None);
        assert_eq!(percent_decode("/%ff%fe"), None, "not UTF-8");
        assert_eq!(
            form_pairs("note=a+b%26c&by=&x"),
            vec![
                ("note".into(), "a b&c".into()),
                ("by".into(), String::new()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(encode("a b/<é>"), "a%20b%2F%3C%C3%A9%3E");
    }
}
