//! Who may change anything: the token (from `WF_SERVE_TOKEN`, else random and printed once), its
//! cookie, the same-origin check for forms, and the Host check against DNS rebinding.

use std::io::Read;
use std::net::SocketAddr;

use super::http::Request;

pub const COOKIE: &str = "wf_token";
pub const TOKEN_VAR: &str = "WF_SERVE_TOKEN";

/// A token from the environment must be at least this long (a guessable token is no token).
pub const MIN_TOKEN: usize = 16;

/// 32 random bytes from the kernel, as 64 hex digits.
pub fn random_token() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether a token from the environment can be used: printable ASCII without spaces, `;` or `,`
/// (it travels in a cookie and a header), and long enough.
pub fn acceptable(token: &str) -> bool {
    token.len() >= MIN_TOKEN
        && token.len() <= 512
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
}

/// Compare without an early exit, so the time taken says nothing about how much matched.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The token a request presents: `Authorization: Bearer T`, else the cookie.
pub fn presented(req: &Request) -> Option<(&str, Via)> {
    if let Some(h) = req.header("authorization") {
        let (scheme, t) = h.split_once(' ').unwrap_or((h, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some((t.trim(), Via::Bearer));
        }
    }
    req.cookie(COOKIE).map(|t| (t, Via::Cookie))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// A request carried by a browser on behalf of this server's own pages: the browser says the
/// request is same-origin (`Sec-Fetch-Site`), or its `Origin` is this server. A request with
/// neither header is not trusted with a cookie (a script or tool sends the bearer token instead).
pub fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return site == "same-origin";
    }
    match (req.header("origin"), req.header("host")) {
        (Some(origin), Some(host)) => origin == format!("http://{host}"),
        _ => false,
    }
}

/// Whether the `Host` header names this server. On loopback only `localhost`, `127.0.0.1` and
/// `[::1]` with the port are accepted: a page from elsewhere whose name was re-pointed at
/// 127.0.0.1 (DNS rebinding) sends its own name and is refused.
pub fn host_ok(req: &Request, addr: SocketAddr) -> bool {
    let Some(host) = req.header("host") else {
        return false;
    };
    if !addr.ip().is_loopback() {
        return true; // reachable by name from elsewhere; every request needs the token there
    }
    let port = addr.port();
    [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(same("abcdef", "abcdef"));
        assert!(!same("abcdef", "abcdeg"));
        assert!(!same("abcdef", "abcde"));
        assert!(!same("", "a"));
        assert!(!same("abc\u{0}", "abc"));
    }

    #[test]
    fn accepts_only_usable_tokens() {
        assert!(acceptable("0123456789abcdef"));
        assert!(!acceptable("short"));
        assert!(!acceptable("0123456789abcdef;x=1"));
        assert!(!acceptable("0123456789 abcdef"));
    }

    #[test]
    fn finds_the_token() {
        let r = req(&[("authorization", "Bearer t0k"), ("cookie", "wf_token=c00")]);
        assert_eq!(presented(&r), Some(("t0k", Via::Bearer)));
        let r = req(&[("cookie", "a=1; wf_token=c00; b=2")]);
        assert_eq!(presented(&r), Some(("c00", Via::Cookie)));
        assert_eq!(presented(&req(&[])), None);
    }

    #[test]
    fn same_origin_needs_the_browser_to_say_so() {
        assert!(same_origin(&req(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&req(&[
            ("origin", "http://127.0.0.1:8421"),
            ("host", "127.0.0.1:8421")
        ])));
        assert!(!same_origin(&req(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8421")
        ])));
        assert!(!same_origin(&req(&[("host", "127.0.0.1:8421")])));
    }

    #[test]
    fn refuses_rebound_hosts() {
        let addr: SocketAddr = "127.0.0.1:8421".parse().expect("addr");
        assert!(host_ok(&req(&[("host", "127.0.0.1:8421")]), addr));
        assert!(host_ok(&req(&[("host", "LOCALHOST:8421")]), addr));
        assert!(!host_ok(&req(&[("host", "evil.example:8421")]), addr));
        assert!(!host_ok(&req(&[("host", "127.0.0.1:9999")]), addr));
        assert!(!host_ok(&req(&[]), addr));
    }
}
