//! Slack-compatible webhook POSTs (ureq, rustls). The URL is a secret: errors name it as
//! `env:NAME` or "the configured URL", never by its value.

use std::time::Duration;

/// A webhook target: its URL, and how to name it without revealing it.
fn webhook_url(spec: &str) -> Result<(String, String), String> {
    match spec.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(u) if !u.is_empty() => Ok((u, format!("env:{var}"))),
            _ => Err(format!("the environment variable {var} is not set")),
        },
        None => Ok((spec.to_string(), "the configured URL".to_string())),
    }
}

/// POST the payload.
pub(super) fn post(
    spec: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<String, String> {
    let (url, name) = webhook_url(spec)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| {
            let why = match e {
                ureq::Error::Timeout(_) => "timed out".to_string(),
                ureq::Error::HostNotFound => "host not found".to_string(),
                ureq::Error::ConnectionFailed => "connection failed".to_string(),
                ureq::Error::Io(io) => format!("I/O error ({})", crate::error::io_reason(&io)),
                ureq::Error::BadUri(_) => "not a valid URL".to_string(),
                _ => "the request failed".to_string(),
            };
            format!("{name}: {why}")
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(format!("{name}: HTTP {status}"))
    } else {
        Err(format!("{name}: HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_webhooks_are_named_not_shown() {
        let e = webhook_url("env:WF_TEST_HOOK_SURELY_UNSET_X")
            .err()
            .unwrap_or_default();
        assert!(e.contains("WF_TEST_HOOK_SURELY_UNSET_X"));
    }
}
