//! E-mail alerts over SMTP (lettre): STARTTLS when the server offers it (or required, or never),
//! implicit TLS for `smtps://` or port 465, credentials from the URL. The server URL may hold a
//! password: it is read at delivery time (`env:NAME`) and never appears in output, the journal or
//! an error message — errors name the server as `env:NAME` or "the configured server".

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message as Mail, SmtpTransport, Transport};

use super::message::Message;
use crate::workflow::{Email, StartTls};

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

/// The server URL and how to name it without revealing it.
fn server(spec: &str) -> Result<(ServerUrl, String), String> {
    let (url, name) = match spec.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(u) if !u.is_empty() => (u, format!("env:{var}")),
            _ => return Err(format!("the environment variable {var} is not set")),
        },
        None => (spec.to_string(), "the configured server".to_string()),
    };
    let parsed = ServerUrl::parse(&url).map_err(|why| format!("{name} {why}"))?;
    Ok((parsed, name))
}

fn mailbox(a: &str, what: &str) -> Result<Mailbox, String> {
    a.parse::<Mailbox>().map_err(|_| {
        format!(
            "the {what} address `{}` is not valid",
            super::message::one_line(a)
        )
    })
}

/// Send `m` to every recipient of `email`; errors never carry the URL or its password.
pub fn send(email: &Email, m: &Message, timeout: Duration) -> Result<String, String> {
    let (url, name) = server(&email.server)?;
    let domain = url.host.clone();
    let tls = || {
        TlsParameters::new(domain.clone())
            .map_err(|_| format!("{name}: TLS could not be set up for the server's name"))
    };
    let mode = if url.implicit_tls {
        Tls::Wrapper(tls()?)
    } else {
        match email.starttls {
            StartTls::Required => Tls::Required(tls()?),
            StartTls::Opportunistic => Tls::Opportunistic(tls()?),
            StartTls::Never => Tls::None,
        }
    };
    let mut builder = SmtpTransport::builder_dangerous(url.host.clone())
        .port(url.port)
        .tls(mode)
        .timeout(Some(timeout));
    if let Some((user, pass)) = &url.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    let transport = builder.build();
    let mut mail = Mail::builder()
        .from(mailbox(&email.from, "sender")?)
        .subject(m.subject())
        .message_id(Some(format!(
            "<{}.{}.{}@wf.invalid>",
            m.run,
            m.seq,
            blake3::hash(m.id().as_bytes())
                .to_hex()
                .get(..16)
                .unwrap_or_default()
        )))
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        mail = mail.to(mailbox(to, "recipient")?);
    }
    let mail = mail
        .body(m.body())
        .map_err(|_| "the e-mail could not be built".to_string())?;
    match transport.send(&mail) {
        Ok(r) => Ok(format!("{name}: accepted ({})", r.code())),
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_tls() {
                "TLS failed (or the server offers no STARTTLS while `starttls = \"required\"`)"
                    .to_string()
            } else if let Some(code) = e.status() {
                format!("the server answered {code}")
            } else if e.is_client() {
                "the server does not offer STARTTLS while `starttls = \"required\"`".to_string()
            } else {
                "the connection failed".to_string()
            };
            Err(format!("{name}: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ServerUrl::parse("smtp://mail.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.port, u.implicit_tls),
            ("mail.example.com", 587, false)
        );
        let u =
            ServerUrl::parse("smtps://a%40b:p%3Ass@[::1]:2465/x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.port, u.implicit_tls),
            ("::1", 2465, true)
        );
        assert_eq!(u.credentials, Some(("a@b".into(), "p:ss".into())));
        let u = ServerUrl::parse("smtp://h:465").unwrap_or_else(|e| panic!("{e}"));
        assert!(u.implicit_tls);
        for bad in [
            "http://x",
            "smtp://",
            "smtp://h:0",
            "smtp://h:x",
            "smtp://u:%zz@h",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", ServerUrl::parse("smtp://u:secret@h").ok()).contains("secret"));
    }
}
