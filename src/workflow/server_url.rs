//! The `smtp://` / `smtps://` URL of an email channel's server, parsed when the workflow is
//! validated (and again when an alert is sent, from `env:NAME`); it never prints its credentials.

/// A parsed `smtp://` or `smtps://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub implicit_tls: bool,
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

// Never print the credentials, not even in a debug string.
impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerUrl({}:{})", self.host, self.port)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl ServerUrl {
    /// Parse without ever putting the URL (or a part of it) in the error.
    pub fn parse(s: &str) -> Result<ServerUrl, &'static str> {
        let (implicit_tls, rest) = if let Some(r) = s.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err("must be `env:NAME` or an `smtp://` or `smtps://` URL");
        };
        let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or("has a badly encoded user name")?;
                let pass = percent_decode(pass).ok_or("has a badly encoded password")?;
                Some((user, pass))
            }
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h.split_once(']').ok_or("has a bad IPv6 address")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>\"\\".contains(c))
        {
            return Err("has no valid host");
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("has a bad port")?,
            None if implicit_tls => 465,
            None => 587,
        };
        Ok(ServerUrl {
            implicit_tls: implicit_tls || port == 465,
            host,
            port,
            credentials,
        })
    }
}
