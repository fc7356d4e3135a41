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
use crate::workflow::{Email, ServerUrl, StartTls};

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
