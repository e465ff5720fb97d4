//! The cloud's metadata service (OpenStack `meta_data.json`, EC2-style `meta-data/`):
//! the instance id, hostname and instance type as the cloud knows them, and the temporary
//! object-storage credentials of the instance's agency / IAM role (so a new OS reaches an
//! S3 store without a key in its user-data) — asked with a short timeout so an absent
//! service costs little.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// What the metadata service says about this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub instance_type: Option<String>,
}

#[derive(Deserialize)]
struct OpenStack {
    uuid: Option<String>,
    hostname: Option<String>,
}

fn client(timeout: Duration) -> Result<reqwest::blocking::Client> {
    crate::sys::tls_provider();
    reqwest::blocking::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .context("creating the HTTP client")
}

/// Temporary credentials of the instance (never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct TempCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for TempCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TempCredentials { .. }")
    }
}

/// Huawei Cloud / OpenStack-style `/openstack/latest/securitykey`:
/// `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`.
pub fn parse_securitykey(text: &str) -> Option<TempCredentials> {
    #[derive(Deserialize)]
    struct Doc {
        credential: Cred,
    }
    #[derive(Deserialize)]
    struct Cred {
        access: String,
        secret: String,
        securitytoken: Option<String>,
    }
    let d: Doc = serde_json::from_str(text).ok()?;
    (!d.credential.access.is_empty() && !d.credential.secret.is_empty()).then(|| TempCredentials {
        access_key_id: d.credential.access,
        secret_access_key: d.credential.secret,
        session_token: d.credential.securitytoken.filter(|t| !t.is_empty()),
    })
}

/// EC2-style `/latest/meta-data/iam/security-credentials/<role>`:
/// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`.
pub fn parse_iam(text: &str) -> Option<TempCredentials> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        access_key_id: String,
        secret_access_key: String,
        token: Option<String>,
    }
    let d: Doc = serde_json::from_str(text).ok()?;
    (!d.access_key_id.is_empty() && !d.secret_access_key.is_empty()).then(|| TempCredentials {
        access_key_id: d.access_key_id,
        secret_access_key: d.secret_access_key,
        session_token: d.token.filter(|t| !t.is_empty()),
    })
}

/// The instance's temporary credentials: the OpenStack-style security key first, then
/// the EC2-style IAM role.
pub fn credentials(base: &str, timeout: Duration) -> Result<TempCredentials> {
    let client = client(timeout)?;
    let get = |path: &str| -> Option<String> {
        let r = client.get(format!("{base}{path}")).send().ok()?;
        r.status().is_success().then(|| r.text().ok()).flatten()
    };
    if let Some(c) = get("/openstack/latest/securitykey").and_then(|t| parse_securitykey(&t)) {
        return Ok(c);
    }
    let role = get("/latest/meta-data/iam/security-credentials/")
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        });
    if let Some(role) = role
        && let Some(c) = get(&format!(
            "/latest/meta-data/iam/security-credentials/{role}"
        ))
        .and_then(|t| parse_iam(&t))
    {
        return Ok(c);
    }
    bail!(
        "the metadata service at {base} gave no credentials (no agency / IAM role bound to this instance?)"
    )
}

/// Asks the service at `base` (e.g. `http://169.254.169.254`); either document may be
/// missing, but one of them must answer.
pub fn fetch(base: &str, timeout: Duration) -> Result<Metadata> {
    let client = client(timeout)?;
    let get = |path: &str| -> Result<Option<String>> {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .with_context(|| format!("{base}{path}"))?;
        if !r.status().is_success() {
            return Ok(None);
        }
        Ok(Some(r.text()?))
    };
    let mut m = Metadata::default();
    let os = get("/openstack/latest/meta_data.json");
    if let Ok(Some(text)) = &os {
        let doc: OpenStack = serde_json::from_str(text)
            .with_context(|| format!("{base}/openstack/latest/meta_data.json is not valid JSON"))?;
        m.instance_id = doc.uuid.map(|u| u.to_ascii_lowercase());
        m.hostname = doc.hostname;
    }
    let ty = get("/latest/meta-data/instance-type");
    if let Ok(Some(t)) = &ty {
        let t = t.trim();
        if !t.is_empty() && !t.contains('<') {
            m.instance_type = Some(t.to_string());
        }
    }
    if m == Metadata::default() {
        match (os, ty) {
            (Err(e), _) | (_, Err(e)) => return Err(e),
            _ => bail!("{base} answered, but with neither an instance id nor a type"),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_documents() {
        let c = parse_securitykey(r#"{"credential":{"access":"AK","secret":"SK","securitytoken":"TOK","expires_at":"2026-11-26T10:00:00.000000Z"}}"#).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert_eq!(c.session_token.as_deref(), Some("TOK"));
        let c = parse_iam(r#"{"Code":"Success","AccessKeyId":"ASIA","SecretAccessKey":"S","Token":"T","Expiration":"x"}"#).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        assert!(parse_securitykey(r#"{"credential":{"access":"","secret":"x"}}"#).is_none());
        assert!(parse_iam("<html>").is_none());
        assert_eq!(format!("{c:?}"), "TempCredentials { .. }", "never printed");
    }
}
