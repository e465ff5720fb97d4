//! The cloud's metadata service (OpenStack `meta_data.json`, EC2-style `meta-data/`):
//! the instance id, hostname and instance type as the cloud knows them, asked with a
//! short timeout so an absent service costs little.

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

/// Asks the service at `base` (e.g. `http://169.254.169.254`); either document may be
/// missing, but one of them must answer.
pub fn fetch(base: &str, timeout: Duration) -> Result<Metadata> {
    crate::sys::tls_provider();
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .context("creating the HTTP client")?;
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
