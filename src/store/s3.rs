//! The S3-compatible store (`s3://bucket/prefix`): Huawei OBS, Ceph RGW, MinIO and AWS
//! speak this protocol. Requests are signed with SigV4 (rusty-s3, presigned) and sent
//! with async reqwest on a small tokio runtime the backend owns: the rest of carryover
//! calls it synchronously, and what can overlap — packs going up, ranges and index
//! objects coming down — runs `[store] connections` transfers at once. Connection
//! errors, timeouts, 408, 429, 5xx and a body cut off mid-transfer are retried with
//! backoff and jitter; objects larger than one part go up as multipart uploads, their
//! parts in parallel.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use reqwest::{Client, Response};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use super::backend::{Backend, Fetched, ObjectWriter, Range, RangeRead, Transfer, check_name};
use crate::config::Config;
use crate::error::Error;

/// Multipart uploads use parts of this size (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
const SIGN_FOR: Duration = Duration::from_secs(3600);
const ATTEMPTS: u32 = 6;

/// What every request needs; shared with the tasks on the runtime.
struct Conn {
    bucket: Bucket,
    creds: Credentials,
    prefix: String,
    client: Client,
    /// One permit per connection: ranged reads and whole-object reads.
    reads: Arc<Semaphore>,
    /// Chains of `put_in_order` in flight: `connections × 5 / 8` (10 of 16), each a pack
    /// held in memory (at most `repo::MEMORY_PACK`, 8 MiB) — through the bench's relay
    /// 3.1–3.7 s and a peak RSS of 150–175 MiB, where 6 chains of 16 MiB packs took
    /// 3.4–3.7 s and 177–187 MiB (measured in docs/benchmark.md).
    chains: Arc<Semaphore>,
}

#[derive(Clone)]
pub struct S3Backend {
    conn: Arc<Conn>,
    rt: Arc<Runtime>,
    url: String,
    connections: usize,
}

/// Where the S3 settings come from: the config first, then the standard `AWS_*` variables.
pub(crate) fn setting(config: Option<&String>, vars: &[&str]) -> Option<String> {
    config.cloned().or_else(|| {
        vars.iter()
            .find_map(|v| std::env::var(v).ok().filter(|x| !x.is_empty()))
    })
}

impl S3Backend {
    /// Opens the bucket and prefix of `url` (parsed once, by `StoreUrl::parse`; the URL
    /// names the store in messages).
    pub fn open(url: &str, bucket: &str, prefix: &str, config: &Config) -> Result<S3Backend> {
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
        let connections = s.connections.max(1);
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(connections)
            .build()
            .context("creating the HTTP client")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("carryover-s3")
            .enable_all()
            .build()
            .context("starting the S3 transfer runtime")?;
        Ok(S3Backend {
            conn: Arc::new(Conn {
                bucket,
                creds,
                prefix: prefix.to_string(),
                client,
                reads: Arc::new(Semaphore::new(connections)),
                chains: Arc::new(Semaphore::new((connections * 5).div_ceil(8))),
            }),
            rt: Arc::new(rt),
            url: url.to_string(),
            connections,
        })
    }

    /// Runs one request to its end on the backend's runtime (the synchronous boundary).
    fn block<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(f)
    }

    /// Runs every future at once on the runtime; their results in the same order.
    fn block_all<T: Send + 'static>(
        &self,
        futures: impl Iterator<Item = impl Future<Output = Result<T>> + Send + 'static>,
    ) -> Vec<Result<T>> {
        let tasks: Vec<_> = futures.map(|f| self.rt.spawn(f)).collect();
        self.rt.block_on(async {
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(
                    t.await
                        .unwrap_or_else(|e| Err(anyhow!("an S3 transfer stopped: {e}"))),
                );
            }
            out
        })
    }
}

/// The context of an error for a multipart upload that the server lost while completing
/// it (after a dropped connection): made again from the start.
#[derive(Debug)]
struct UploadLost;

impl std::fmt::Display for UploadLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server lost the upload while completing it")
    }
}

/// Why one attempt failed: worth another, or final.
enum Fail {
    Retry(anyhow::Error),
    Stop(anyhow::Error),
}

/// A transport error: retried, except a request that cannot be built. Its URL is left
/// out: a presigned one carries the access key id, the signature and the session token
/// of temporary credentials, and the message goes to the log, the report and the event.
fn net(what: &str, e: reqwest::Error) -> Fail {
    // the server's origin (scheme, host, port) names where; nothing after it is shown
    let at = e
        .url()
        .map(|u| format!(" at {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    let builder = e.is_builder();
    // `{:#}`: the error with its causes (the connection's own error among them)
    let err = anyhow!("{what}{at}: {:#}", anyhow::Error::new(e.without_url()));
    if builder {
        Fail::Stop(err)
    } else {
        Fail::Retry(err)
    }
}

/// A success passes; what `retry::retryable` names (408, 425, 429, 5xx) is tried again;
/// anything else is final, with S3's code.
async fn ok(what: &str, r: Response) -> Result<Response, Fail> {
    let st = r.status().as_u16();
    if r.status().is_success() {
        Ok(r)
    } else if crate::retry::retryable(st) {
        Err(Fail::Retry(anyhow!("{what}: S3 answered {}", r.status())))
    } else {
        Err(Fail::Stop(failure(what, r).await))
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has failed `ATTEMPTS` times,
/// sleeping with exponential backoff and full jitter in between (`crate::retry`).
async fn retry<T, F, Fut>(f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let wait =
                crate::retry::backoff(attempt, Duration::from_millis(250), Duration::from_secs(10));
            tokio::time::sleep(wait).await;
        }
        match f().await {
            Ok(v) => return Ok(v),
            Err(Fail::Retry(e)) => {
                tracing::debug!("{e:#}; trying again");
                last = Some(e);
            }
            Err(Fail::Stop(e)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("S3 request failed")))
}

/// The error for an S3 answer that is not a success, with S3's own code.
async fn failure(what: &str, r: Response) -> anyhow::Error {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
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

/// Sends one request; a transport error is worth another attempt.
async fn send(what: &str, req: reqwest::RequestBuilder) -> Result<Response, Fail> {
    req.send().await.map_err(|e| net(what, e))
}

/// Sends one request that must succeed; returns the answer's text.
async fn text(what: &str, req: reqwest::RequestBuilder) -> Result<String, Fail> {
    let r = ok(what, send(what, req).await?).await?;
    r.text().await.map_err(|e| net(what, e))
}

impl Conn {
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

    async fn put(&self, k: &str, body: Bytes) -> Result<()> {
        let url = self.bucket.put_object(Some(&self.creds), k).sign(SIGN_FOR);
        let what = format!("writing {k}");
        retry(|| async {
            let r = send(&what, self.client.put(url.clone()).body(body.clone())).await?;
            ok(&what, r).await.map(drop)
        })
        .await
    }

    async fn get(&self, k: &str) -> Result<Option<Vec<u8>>> {
        let url = self.bucket.get_object(Some(&self.creds), k).sign(SIGN_FOR);
        let what = format!("reading {k}");
        retry(|| async {
            let r = send(&what, self.client.get(url.clone())).await?;
            if r.status().as_u16() == 404 {
                return Ok(None);
            }
            let mut r = ok(&what, r).await?;
            let big = |len| super::backend::too_large(k, len).map_err(Fail::Stop);
            big(r.content_length().unwrap_or(0))?;
            let mut body = Vec::new();
            while let Some(chunk) = r.chunk().await.map_err(|e| net(&what, e))? {
                big((body.len() + chunk.len()) as u64)?;
                body.extend_from_slice(&chunk);
            }
            Ok(Some(body))
        })
        .await
    }

    /// `len` bytes of `key` from `offset`.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let k = self.full(key)?;
        let url = self.bucket.get_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let what = format!("reading {k}");
        let short = || Fail::Stop(anyhow!("{key} is shorter than the index says"));
        retry(|| async {
            let r = send(
                &what,
                self.client.get(url.clone()).header("Range", range.clone()),
            )
            .await?;
            if r.status().as_u16() == 416 {
                return Err(short());
            }
            let mut r = ok(&what, r).await?;
            if r.status().as_u16() == 200 {
                // A server that ignores Range sends the whole object.
                let body = r.bytes().await.map_err(|e| net(&what, e))?;
                let end = offset.checked_add(len).filter(|e| *e <= body.len() as u64);
                return match end {
                    Some(end) => Ok(body[offset as usize..end as usize].to_vec()),
                    None => Err(short()),
                };
            }
            // Straight into a buffer of the range's size: collecting the body first and
            // copying it out held each range twice (16 connections: up to 64 MiB more).
            // (never more reserved up front than a part: `len` is the caller's, and it
            // may come from an index read back from the store)
            let mut part = Vec::with_capacity(len.min(PART_SIZE as u64) as usize);
            while let Some(chunk) = r.chunk().await.map_err(|e| net(&what, e))? {
                if (part.len() + chunk.len()) as u64 > len {
                    return Err(Fail::Stop(anyhow!(
                        "{key} answered with more than the range asked for"
                    )));
                }
                part.extend_from_slice(&chunk);
            }
            if part.len() as u64 != len {
                return Err(short());
            }
            Ok(part)
        })
        .await
    }

    /// An object in one PUT when it fits one part, else a multipart upload whose parts
    /// go up at the same time; a failed multipart upload is aborted. An upload that the
    /// server lost while completing it (the connection dropped mid-completion: the upload
    /// is gone, the object not there) is made again from the start, up to twice.
    async fn put_object(self: Arc<Self>, k: String, data: Bytes) -> Result<()> {
        if data.len() <= PART_SIZE {
            return self.put(&k, data).await;
        }
        let mut round = 0;
        loop {
            match self.clone().multipart(&k, data.clone()).await {
                Err(e) if round < 2 && e.downcast_ref::<UploadLost>().is_some() => {
                    tracing::debug!("{e:#}; uploading {k} again");
                    round += 1;
                }
                r => return r,
            }
        }
    }

    /// One multipart upload of `data` to `k`: started, its parts, completed.
    async fn multipart(self: Arc<Self>, k: &str, data: Bytes) -> Result<()> {
        let what = format!("starting the upload of {k}");
        let url = self
            .bucket
            .create_multipart_upload(Some(&self.creds), k)
            .sign(SIGN_FOR);
        let upload = retry(|| async {
            let text = text(&what, self.client.post(url.clone())).await?;
            let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
                .map_err(|e| Fail::Stop(anyhow!("{what}: {e}")))?;
            Ok(parsed.upload_id().to_string())
        })
        .await?;
        let done = self.clone().parts_and_complete(k, &upload, data).await;
        if done.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(Some(&self.creds), k, &upload)
                .sign(SIGN_FOR);
            let _ = self.client.delete(url).send().await;
        }
        done
    }

    async fn parts_and_complete(self: Arc<Self>, k: &str, upload: &str, data: Bytes) -> Result<()> {
        let mut parts = tokio::task::JoinSet::new();
        for (i, start) in (0..data.len()).step_by(PART_SIZE).enumerate() {
            let n = i as u16 + 1;
            let body = data.slice(start..(start + PART_SIZE).min(data.len()));
            let conn = self.clone();
            let url = self
                .bucket
                .upload_part(Some(&self.creds), k, n, upload)
                .sign(SIGN_FOR);
            let what = format!("uploading part {n} of {k}");
            parts.spawn(async move {
                let etag = retry(|| async {
                    let r = send(&what, conn.client.put(url.clone()).body(body.clone())).await?;
                    let r = ok(&what, r).await?;
                    r.headers()
                        .get("ETag")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .ok_or_else(|| Fail::Stop(anyhow!("{what}: no ETag in the answer")))
                })
                .await?;
                Ok::<_, anyhow::Error>((n, etag))
            });
        }
        let mut etags = Vec::new();
        while let Some(r) = parts.join_next().await {
            etags.push(r.context("a part upload stopped")??);
        }
        etags.sort();
        let tags = || etags.iter().map(|(_, e)| e.as_str());
        let url = self
            .bucket
            .complete_multipart_upload(Some(&self.creds), k, upload, tags())
            .sign(SIGN_FOR);
        let body = self
            .bucket
            .complete_multipart_upload(Some(&self.creds), k, upload, tags())
            .body();
        let what = format!("completing the upload of {k}");
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let completed = retry(|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let text = text(&what, self.client.post(url.clone()).body(body.clone())).await?;
            if text.contains("<Error>") {
                return Err(Fail::Stop(anyhow!("{what}: S3 reported an error: {text}")));
            }
            Ok(())
        })
        .await;
        // a completion whose answer was lost on a dropped connection is refused when sent
        // again (the upload is gone): the object in place, whole, is the success it was
        match completed {
            Err(e) => match self.size_of(k).await {
                Some(n) if n == data.len() as u64 => {
                    tracing::debug!("{e:#}, but {k} is complete");
                    Ok(())
                }
                // a completion sent again after the connection dropped finds the upload
                // gone: when the object is not there either, the server lost it midway
                _ if attempts.load(std::sync::atomic::Ordering::Relaxed) > 1 => {
                    Err(e.context(UploadLost))
                }
                _ => Err(e),
            },
            Ok(()) => Ok(()),
        }
    }

    /// The size of the object `k` (full key), when it exists.
    async fn size_of(&self, k: &str) -> Option<u64> {
        let mut action = self.bucket.list_objects_v2(Some(&self.creds));
        action.with_prefix(k);
        let url = action.sign(SIGN_FOR);
        let what = format!("listing {k}");
        let text = retry(|| text(&what, self.client.get(url.clone())))
            .await
            .ok()?;
        let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&text).ok()?;
        parsed.contents.into_iter().find(|c| c.key == k)?.size
    }

    async fn create_new(&self, k: &str, data: Bytes) -> Result<bool> {
        if self.get(k).await?.is_some() {
            return Ok(false);
        }
        let url = self.bucket.put_object(Some(&self.creds), k).sign(SIGN_FOR);
        let what = format!("writing {k}");
        retry(|| async {
            let r = send(
                &what,
                self.client
                    .put(url.clone())
                    .header("If-None-Match", "*")
                    .body(data.clone()),
            )
            .await?;
            match r.status().as_u16() {
                412 | 409 => Ok(false),
                _ => ok(&what, r).await.map(|_| true),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
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
        let what = format!("listing {full_prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(full_prefix.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let text = retry(|| text(&what, self.client.get(url.clone()))).await?;
            let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| anyhow!("{what}: the answer cannot be read: {e}"))?;
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

    async fn delete(&self, k: &str) -> Result<()> {
        let url = self
            .bucket
            .delete_object(Some(&self.creds), k)
            .sign(SIGN_FOR);
        let what = format!("removing {k}");
        retry(|| async {
            let r = send(&what, self.client.delete(url.clone())).await?;
            if r.status().as_u16() == 404 {
                return Ok(());
            }
            ok(&what, r).await.map(drop)
        })
        .await
    }
}

impl Backend for S3Backend {
    fn presigned_get(&self, key: &str, valid: Duration) -> Option<String> {
        let k = self.conn.full(key).ok()?;
        Some(
            self.conn
                .bucket
                .get_object(Some(&self.conn.creds), &k)
                .sign(valid)
                .to_string(),
        )
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let k = self.conn.full(key)?;
        self.block(self.conn.put(&k, Bytes::copy_from_slice(data)))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.conn.full(key)?;
        self.block(self.conn.get(&k))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.block(self.conn.get_range(key, offset, len))
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        let k = self.conn.full(key)?;
        self.block(self.conn.create_new(&k, Bytes::copy_from_slice(data)))
    }

    fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer {
            backend: self.clone(),
            key: self.conn.full(key)?,
            buf: Vec::new(),
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.block(self.conn.list(prefix))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let k = self.conn.full(key)?;
        self.block(self.conn.delete(&k))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn put_in_order(&self, objects: Vec<(String, Vec<u8>)>) -> Result<Box<dyn Transfer>> {
        let keys = objects
            .iter()
            .map(|(k, _)| self.conn.full(k))
            .collect::<Result<Vec<_>>>()?;
        let permit = self
            .rt
            .block_on(self.conn.chains.clone().acquire_owned())
            .context("the S3 transfers stopped")?;
        let conn = self.conn.clone();
        let task = self.rt.spawn(async move {
            let _slot = permit;
            for (k, (_, data)) in keys.into_iter().zip(objects) {
                conn.clone().put_object(k, Bytes::from(data)).await?;
            }
            Ok(())
        });
        Ok(Box::new(S3Transfer {
            task,
            rt: self.rt.clone(),
        }))
    }

    fn get_ranges(&self, requests: Receiver<Range>, deliver: &Sender<Fetched>) {
        let mut tasks = tokio::task::JoinSet::new();
        for r in requests {
            let Ok(permit) = self.rt.block_on(self.conn.reads.clone().acquire_owned()) else {
                break;
            };
            let conn = self.conn.clone();
            let deliver = deliver.clone();
            tasks.spawn_on(
                async move {
                    let got = conn.get_range(&r.key, r.offset, r.len).await;
                    let got = got.map(RangeRead::whole);
                    drop(permit);
                    let _ = deliver.send((r, got));
                },
                self.rt.handle(),
            );
            while tasks.try_join_next().is_some() {}
        }
        self.rt
            .block_on(async { while tasks.join_next().await.is_some() {} });
    }

    fn list_many(&self, prefixes: &[&str]) -> Vec<Result<Vec<String>>> {
        let lists = prefixes.iter().map(|p| {
            let conn = self.conn.clone();
            let p = p.to_string();
            async move {
                let _slot = conn.reads.clone().acquire_owned().await;
                conn.list(&p).await
            }
        });
        self.block_all(lists)
    }

    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let gets = keys.iter().map(|key| {
            let conn = self.conn.clone();
            let key = key.clone();
            async move {
                let _slot = conn.reads.clone().acquire_owned().await;
                conn.get(&conn.full(&key)?).await
            }
        });
        self.block_all(gets)
    }
}

/// A chain of `put_in_order` running on the runtime.
struct S3Transfer {
    task: tokio::task::JoinHandle<Result<()>>,
    rt: Arc<Runtime>,
}

impl Transfer for S3Transfer {
    fn done(&self) -> bool {
        self.task.is_finished()
    }

    fn wait(self: Box<Self>) -> Result<()> {
        self.rt
            .block_on(self.task)
            .context("an S3 upload stopped")?
    }
}

/// A large object on its way up, kept in memory and sent at `commit` (multipart when it
/// is larger than one part); dropped without `commit`, nothing is sent.
struct S3Writer {
    backend: S3Backend,
    key: String,
    buf: Vec<u8>,
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let conn = self.backend.conn.clone();
        let key = self.key.clone();
        self.backend.block(conn.put_object(key, data))
    }
}
