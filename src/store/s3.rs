//! The S3-compatible store (`s3://bucket/prefix`): Huawei OBS, Ceph RGW, MinIO and AWS
//! speak this protocol. Requests are signed with SigV4 (rusty-s3, presigned) and sent
//! with reqwest; connection errors, timeouts, 408, 429 and 5xx are retried with
//! backoff; packs larger than one part go up as multipart uploads.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::blocking::{Client, Response};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::backend::{Backend, ObjectWriter, check_name};
use crate::config::Config;
use crate::error::Error;

/// Multipart uploads use parts of this size (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
const SIGN_FOR: Duration = Duration::from_secs(3600);
const ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub struct S3Backend {
    bucket: Bucket,
    creds: Credentials,
    prefix: String,
    client: Client,
    url: String,
}

/// Where the S3 settings come from: the config first, then the standard `AWS_*` variables.
pub(crate) fn setting(config: Option<&String>, vars: &[&str]) -> Option<String> {
    config.cloned().or_else(|| {
        vars.iter()
            .find_map(|v| std::env::var(v).ok().filter(|x| !x.is_empty()))
    })
}

impl S3Backend {
    pub fn open(url: &str, config: &Config) -> Result<S3Backend> {
        let rest = url.strip_prefix("s3://").context("not an s3:// URL")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!("{url}: no bucket")).into());
        }
        let prefix = prefix.trim_matches('/').to_string();
        for part in prefix.split('/').filter(|p| !p.is_empty()) {
            check_name(part).map_err(|e| Error::Usage(format!("{url}: {e}")))?;
        }
        let s = &config.store;
        let endpoint = setting(
            s.endpoint.as_ref(),
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        )
        .ok_or_else(|| {
            Error::Usage(format!(
                "{url}: no S3 endpoint: set [store] endpoint or AWS_ENDPOINT_URL"
            ))
        })?;
        let region = setting(s.region.as_ref(), &["AWS_REGION", "AWS_DEFAULT_REGION"])
            .unwrap_or_else(|| "us-east-1".into());
        let key = setting(s.access_key_id.as_ref(), &["AWS_ACCESS_KEY_ID"]);
        let secret = setting(s.secret_access_key.as_ref(), &["AWS_SECRET_ACCESS_KEY"]);
        let creds = match (key, secret) {
            (Some(key), Some(secret)) => match std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
            {
                Some(t) => Credentials::new_with_token(key, secret, t),
                None => Credentials::new(key, secret),
            },
            // no key anywhere: the instance's own temporary credentials (a Huawei Cloud
            // agency, an IAM role), which is how a new OS reaches the store with nothing
            // secret in its user-data
            _ => {
                let timeout = Duration::from_millis(config.metadata_timeout_ms);
                let t = crate::metadata::credentials(&config.metadata_url, timeout)
                    .map_err(|e| {
                        Error::Usage(format!(
                            "{url}: no S3 credentials: set [store] access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or bind an agency/IAM role to the instance ({e:#})"
                        ))
                    })?;
                tracing::info!("S3 credentials from the metadata service");
                match t.session_token {
                    Some(tok) => {
                        Credentials::new_with_token(t.access_key_id, t.secret_access_key, tok)
                    }
                    None => Credentials::new(t.access_key_id, t.secret_access_key),
                }
            }
        };
        let endpoint_url: url::Url = endpoint
            .parse()
            .map_err(|e| Error::Usage(format!("S3 endpoint '{endpoint}': {e}")))?;
        let bucket = Bucket::new(endpoint_url, UrlStyle::Path, bucket.to_string(), region)
            .map_err(|e| Error::Usage(format!("S3 endpoint '{endpoint}': {e}")))?;
        crate::sys::tls_provider();
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .context("creating the HTTP client")?;
        Ok(S3Backend {
            bucket,
            creds,
            prefix,
            client,
            url: url.to_string(),
        })
    }

    fn full(&self, key: &str) -> Result<String> {
        for part in key.split('/') {
            check_name(part)?;
        }
        Ok(if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    /// Sends a request built by `make`, retrying what is worth retrying.
    fn send(
        &self,
        what: &str,
        make: &dyn Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<Response> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let base = 100u64 << attempt.min(6);
                let jitter = rand::random::<u64>() % base;
                std::thread::sleep(Duration::from_millis(base + jitter));
            }
            match make().send() {
                Ok(r) => {
                    let st = r.status().as_u16();
                    if st == 408 || st == 429 || st >= 500 {
                        last = Some(anyhow!("{what}: S3 answered {}", r.status()));
                        continue;
                    }
                    return Ok(r);
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    last = Some(anyhow!("{what}: {e}"));
                }
                Err(e) => return Err(anyhow!("{what}: {e}")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{what}: failed")))
    }
}

/// The error for an S3 answer that is not a success, with S3's own code.
fn failure(what: &str, r: Response) -> anyhow::Error {
    let status = r.status();
    let body = r.text().unwrap_or_default();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|c| c.split("</Code>").next())
        .unwrap_or("");
    let hint = match code {
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => {
            ": the S3 credentials were refused — check access_key_id / secret_access_key (or AWS_*)"
        }
        "NoSuchBucket" => ": the bucket does not exist",
        _ => "",
    };
    anyhow!("{what}: S3 answered {status} {code}{hint}")
}

impl Backend for S3Backend {
    fn presigned_get(&self, key: &str, valid: Duration) -> Option<String> {
        let k = self.full(key).ok()?;
        Some(
            self.bucket
                .get_object(Some(&self.creds), &k)
                .sign(valid)
                .to_string(),
        )
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let k = self.full(key)?;
        let url = self.bucket.put_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let r = self.send(&format!("writing {k}"), &|| {
            self.client.put(url.clone()).body(data.to_vec())
        })?;
        if !r.status().is_success() {
            return Err(failure(&format!("writing {k}"), r));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.full(key)?;
        let url = self.bucket.get_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let r = self.send(&format!("reading {k}"), &|| self.client.get(url.clone()))?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(failure(&format!("reading {k}"), r));
        }
        Ok(Some(
            r.bytes().with_context(|| format!("reading {k}"))?.to_vec(),
        ))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let k = self.full(key)?;
        let url = self.bucket.get_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let r = self.send(&format!("reading {k}"), &|| {
            self.client.get(url.clone()).header("Range", range.clone())
        })?;
        if r.status().as_u16() == 416 {
            bail!("{key} is shorter than the index says");
        }
        if !r.status().is_success() {
            return Err(failure(&format!("reading {k}"), r));
        }
        let full = r.status().as_u16() == 200;
        let body = r.bytes().with_context(|| format!("reading {k}"))?;
        // A server that ignores Range sends the whole object.
        let part = if full {
            let end = offset.checked_add(len).filter(|e| *e <= body.len() as u64);
            match end {
                Some(end) => body[offset as usize..end as usize].to_vec(),
                None => bail!("{key} is shorter than the index says"),
            }
        } else {
            body.to_vec()
        };
        if part.len() as u64 != len {
            bail!("{key} is shorter than the index says");
        }
        Ok(part)
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        if self.get(key)?.is_some() {
            return Ok(false);
        }
        let k = self.full(key)?;
        let url = self.bucket.put_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let r = self.send(&format!("writing {k}"), &|| {
            self.client
                .put(url.clone())
                .header("If-None-Match", "*")
                .body(data.to_vec())
        })?;
        match r.status().as_u16() {
            412 | 409 => Ok(false),
            s if (200..300).contains(&s) => Ok(true),
            _ => Err(failure(&format!("writing {k}"), r)),
        }
    }

    fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer {
            backend: self.clone(),
            key: self.full(key)?,
            buf: Vec::new(),
            upload: None,
            etags: Vec::new(),
            done: false,
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full_prefix = if self.prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{}/{prefix}", self.prefix)
        };
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(full_prefix.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let r = self.send(&format!("listing {full_prefix}"), &|| {
                self.client.get(url.clone())
            })?;
            if !r.status().is_success() {
                return Err(failure(&format!("listing {full_prefix}"), r));
            }
            let text = r.text()?;
            let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| anyhow!("listing {full_prefix}: the answer cannot be read: {e}"))?;
            for c in parsed.contents {
                if c.key.len() > strip {
                    out.push(c.key[strip..].to_string());
                }
            }
            match parsed.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let k = self.full(key)?;
        let url = self
            .bucket
            .delete_object(Some(&self.creds), &k)
            .sign(SIGN_FOR);
        let r = self.send(&format!("removing {k}"), &|| {
            self.client.delete(url.clone())
        })?;
        if !r.status().is_success() && r.status().as_u16() != 404 {
            return Err(failure(&format!("removing {k}"), r));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// A pack on its way up: one PUT when small, a multipart upload of 8 MiB parts when not.
struct S3Writer {
    backend: S3Backend,
    key: String,
    buf: Vec<u8>,
    upload: Option<String>,
    etags: Vec<String>,
    done: bool,
}

impl S3Writer {
    fn upload_part(&mut self, data: Vec<u8>) -> Result<()> {
        let b = self.backend.clone();
        if self.upload.is_none() {
            let url = b
                .bucket
                .create_multipart_upload(Some(&b.creds), &self.key)
                .sign(SIGN_FOR);
            let r = b.send(&format!("starting the upload of {}", self.key), &|| {
                b.client.post(url.clone())
            })?;
            if !r.status().is_success() {
                return Err(failure(&format!("starting the upload of {}", self.key), r));
            }
            let text = r.text()?;
            let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
                .map_err(|e| anyhow!("starting the upload of {}: {e}", self.key))?;
            self.upload = Some(parsed.upload_id().to_string());
        }
        let upload = self.upload.clone().expect("started");
        let n = self.etags.len() as u16 + 1;
        let url = b
            .bucket
            .upload_part(Some(&b.creds), &self.key, n, &upload)
            .sign(SIGN_FOR);
        let what = format!("uploading part {n} of {}", self.key);
        let r = b.send(&what, &|| b.client.put(url.clone()).body(data.clone()))?;
        if !r.status().is_success() {
            return Err(failure(&what, r));
        }
        let etag = r
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("{what}: no ETag in the answer"))?
            .to_string();
        self.etags.push(etag);
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= PART_SIZE {
            let rest = self.buf.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part)?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let b = self.backend.clone();
        match self.upload.clone() {
            None => {
                let url = b
                    .bucket
                    .put_object(Some(&b.creds), &self.key)
                    .sign(SIGN_FOR);
                let body = std::mem::take(&mut self.buf);
                let r = b.send(&format!("writing {}", self.key), &|| {
                    b.client.put(url.clone()).body(body.clone())
                })?;
                if !r.status().is_success() {
                    return Err(failure(&format!("writing {}", self.key), r));
                }
            }
            Some(upload) => {
                if !self.buf.is_empty() {
                    let last = std::mem::take(&mut self.buf);
                    self.upload_part(last)?;
                }
                let action = b.bucket.complete_multipart_upload(
                    Some(&b.creds),
                    &self.key,
                    &upload,
                    self.etags.iter().map(String::as_str),
                );
                let url = action.sign(SIGN_FOR);
                let body = b
                    .bucket
                    .complete_multipart_upload(
                        Some(&b.creds),
                        &self.key,
                        &upload,
                        self.etags.iter().map(String::as_str),
                    )
                    .body();
                let what = format!("completing the upload of {}", self.key);
                let r = b.send(&what, &|| b.client.post(url.clone()).body(body.clone()))?;
                if !r.status().is_success() {
                    return Err(failure(&what, r));
                }
                let text = r.text()?;
                if text.contains("<Error>") {
                    bail!("{what}: S3 reported an error: {text}");
                }
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(upload) = &self.upload {
            let b = self.backend.clone();
            let url = b
                .bucket
                .abort_multipart_upload(Some(&b.creds), &self.key, upload)
                .sign(SIGN_FOR);
            let _ = b.client.delete(url).send();
        }
    }
}
