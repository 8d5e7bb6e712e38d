//! The S3 calls freshet makes (S3_PROTOCOL.md §2), each built as a
//! [`Call`] and run by the transport: `ListObjectsV2`, `HeadObject`,
//! `GetObject` (always with `Range`), `PutObject`, the multipart calls,
//! `DeleteObjects`, `ListMultipartUploads` and `GetBucketLocation`.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::Inner;
use super::client::{Call, Streaming};
use super::config::{Addressing, DEFAULT_REGION, ObjectKey, query};
use super::error::{ErrorKind, S3Error};
use super::sign::Payload;
use super::xml;

/// Keys per `DeleteObjects` request (S3_PROTOCOL.md §2.5).
pub(crate) const DELETE_BATCH: usize = 1000;
/// User metadata carrying the LTX header timestamp (REPLICA_LAYOUT.md §3).
pub(crate) const TIMESTAMP_HEADER: &str = "x-amz-meta-litestream-timestamp";

/// The region and addressing requests use.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) region: String,
    pub(crate) addressing: Addressing,
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl Inner {
    /// Where requests go, looking the region up once if needed
    /// (S3_PROTOCOL.md §1.2).
    pub(crate) async fn location(&self) -> Result<&Location, S3Error> {
        self.location.get_or_try_init(|| self.lookup_region()).await
    }

    async fn lookup_region(&self) -> Result<Location, S3Error> {
        let target = format!("s3://{}", self.settings.bucket);
        let invalid = |e: String| S3Error::new("locate", target.clone(), ErrorKind::Invalid(e));
        let probe = Location {
            region: DEFAULT_REGION.to_owned(),
            addressing: Addressing::new(&self.settings, DEFAULT_REGION).map_err(invalid)?,
        };
        let call = self.bucket_call(
            &probe,
            "locate",
            Method::GET,
            &query(&[("location", None)]),
            Vec::new(),
            Bytes::new(),
        );
        let reply = self.transport.execute(&call).await?;
        let found: xml::LocationConstraint = xml::parse(&reply.body).map_err(invalid)?;
        let region = match found.region.trim() {
            "" => DEFAULT_REGION.to_owned(),
            "EU" => "eu-west-1".to_owned(),
            r => r.to_owned(),
        };
        let addressing = Addressing::new(&self.settings, &region).map_err(invalid)?;
        tracing::debug!(bucket = %self.settings.bucket, %region, "found the bucket's region");
        Ok(Location { region, addressing })
    }

    /// `s3://bucket/key`, for messages.
    pub(crate) fn target(&self, key: &str) -> String {
        format!("s3://{}/{}", self.settings.bucket, key)
    }

    fn payload(&self, body: &[u8]) -> Payload {
        Payload::of(body, self.settings.sign_payload)
    }

    #[allow(clippy::too_many_arguments)]
    fn object_call(
        &self,
        loc: &Location,
        op: &'static str,
        key: &ObjectKey,
        method: Method,
        query: &str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> Call {
        Call {
            op,
            target: self.target(key.as_str()),
            method,
            url: loc.addressing.object_url(key, query),
            host: loc.addressing.host(),
            region: loc.region.clone(),
            headers,
            payload: self.payload(&body),
            body,
        }
    }

    fn bucket_call(
        &self,
        loc: &Location,
        op: &'static str,
        method: Method,
        query: &str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> Call {
        Call {
            op,
            target: self.target(&self.settings.path),
            method,
            url: loc.addressing.bucket_url(query),
            host: loc.addressing.host(),
            region: loc.region.clone(),
            headers,
            payload: self.payload(&body),
            body,
        }
    }

    /// Headers of `PutObject` and `CreateMultipartUpload` (S3_PROTOCOL.md §2.4).
    fn write_headers(&self, timestamp: &str) -> Vec<(&'static str, String)> {
        let mut h = vec![(TIMESTAMP_HEADER, timestamp.to_owned())];
        h.extend(self.write_headers.iter().cloned());
        h.extend(self.sse_headers.iter().cloned());
        h
    }

    /// One `PutObject`.
    pub(crate) async fn put_object(
        &self,
        key: &ObjectKey,
        timestamp: &str,
        body: Bytes,
    ) -> Result<(), S3Error> {
        let loc = self.location().await?;
        let call = self.object_call(
            loc,
            "put",
            key,
            Method::PUT,
            "",
            self.write_headers(timestamp),
            body,
        );
        let reply = self.transport.execute(&call).await?;
        require_etag(&call, &reply.headers).map(drop)
    }

    /// `CreateMultipartUpload` → (upload id, whether it took more than one
    /// attempt: an earlier attempt may have opened an upload we never heard of).
    pub(crate) async fn create_upload(
        &self,
        key: &ObjectKey,
        timestamp: &str,
    ) -> Result<(String, bool), S3Error> {
        let loc = self.location().await?;
        let call = self.object_call(
            loc,
            "start multipart upload",
            key,
            Method::POST,
            &query(&[("uploads", None)]),
            self.write_headers(timestamp),
            Bytes::new(),
        );
        let reply = self.transport.execute(&call).await?;
        let retried = reply.attempts > 1;
        let result: xml::InitiateMultipartUploadResult = xml::parse(&reply.body)
            .map_err(|e| S3Error::new(call.op, call.target.clone(), ErrorKind::Invalid(e)))?;
        Ok((result.upload_id, retried))
    }

    /// `UploadPart` → its ETag.
    pub(crate) async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let loc = self.location().await?;
        let number = part.to_string();
        let q = query(&[("partNumber", Some(&number)), ("uploadId", Some(upload_id))]);
        let call = self.object_call(
            loc,
            "upload part",
            key,
            Method::PUT,
            &q,
            self.sse_headers.clone(),
            body,
        );
        let reply = self.transport.execute(&call).await?;
        require_etag(&call, &reply.headers)
    }

    /// `CompleteMultipartUpload`.
    pub(crate) async fn complete_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[(u32, String)],
        size: u64,
    ) -> Result<(), S3Error> {
        let loc = self.location().await?;
        let body = Bytes::from(xml::complete_body(parts));
        let q = query(&[("uploadId", Some(upload_id))]);
        let call = self.object_call(
            loc,
            "complete multipart upload",
            key,
            Method::POST,
            &q,
            self.sse_headers.clone(),
            body,
        );
        match self.transport.execute(&call).await {
            Ok(_) => Ok(()),
            // A retried Complete that fails may follow an attempt that
            // succeeded unseen (S3 then says NoSuchUpload, some servers
            // AccessDenied): the object's size tells.
            Err(e) if e.attempts > 1 && !super::retry::is_retryable(&e.kind) => {
                match self.head_object(key).await {
                    Ok(headers) if content_length(&headers) == Some(size) => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `AbortMultipartUpload`; an upload already gone counts as aborted.
    pub(crate) async fn abort_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        let loc = self.location().await?;
        let q = query(&[("uploadId", Some(upload_id))]);
        let call = self.object_call(
            loc,
            "abort multipart upload",
            key,
            Method::DELETE,
            &q,
            Vec::new(),
            Bytes::new(),
        );
        match self.transport.execute(&call).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") || e.status() == Some(404) => Ok(()),
            // After a retry, "denied" on an upload id means an earlier
            // attempt removed it (servers that check the id that way).
            Err(e) if e.attempts > 1 && e.code() == Some("AccessDenied") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every object under `prefix` (`ListObjectsV2`, all pages, no delimiter).
    pub(crate) async fn list_objects(
        &self,
        prefix: &str,
    ) -> Result<Vec<xml::ListedObject>, S3Error> {
        let loc = self.location().await?;
        let max_keys = self.settings.list_max_keys.map(|n| n.to_string());
        let mut token: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut params = vec![("list-type", Some("2")), ("prefix", Some(prefix))];
            if let Some(t) = &token {
                params.push(("continuation-token", Some(t.as_str())));
            }
            if let Some(m) = &max_keys {
                params.push(("max-keys", Some(m.as_str())));
            }
            params.sort_by(|a, b| a.0.cmp(b.0));
            let mut call = self.bucket_call(
                loc,
                "list",
                Method::GET,
                &query(&params),
                Vec::new(),
                Bytes::new(),
            );
            call.target = self.target(prefix);
            let reply = self.transport.execute(&call).await?;
            let page: xml::ListBucketResult = xml::parse(&reply.body)
                .map_err(|e| S3Error::new(call.op, call.target.clone(), ErrorKind::Invalid(e)))?;
            out.extend(page.contents);
            match page.next_continuation_token.filter(|t| !t.is_empty()) {
                Some(next) if page.is_truncated => {
                    if token.as_deref() == Some(next.as_str()) {
                        return Err(S3Error::new(
                            call.op,
                            call.target,
                            ErrorKind::Invalid("the listing repeats its continuation token".into()),
                        ));
                    }
                    token = Some(next);
                }
                _ if page.is_truncated => {
                    return Err(S3Error::new(
                        call.op,
                        call.target,
                        ErrorKind::Invalid("truncated listing without a continuation token".into()),
                    ));
                }
                _ => return Ok(out),
            }
        }
    }

    /// `HeadObject` → the response headers.
    pub(crate) async fn head_object(&self, key: &ObjectKey) -> Result<HeaderMap, S3Error> {
        let loc = self.location().await?;
        let call = self.object_call(
            loc,
            "head",
            key,
            Method::HEAD,
            "",
            self.sse_headers.clone(),
            Bytes::new(),
        );
        Ok(self.transport.execute(&call).await?.headers)
    }

    /// `GetObject` of bytes `start..=end` (`end` `None`: to the end);
    /// `None` when the range starts past the end (416).
    pub(crate) async fn get_object(
        &self,
        key: &ObjectKey,
        start: u64,
        end: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<Option<Streaming>, S3Error> {
        let loc = self.location().await?;
        let range = match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        };
        let mut headers = vec![("range", range)];
        if let Some(etag) = if_match {
            headers.push(("if-match", etag.to_owned()));
        }
        headers.extend(self.sse_headers.iter().cloned());
        let call = self.object_call(loc, "get", key, Method::GET, "", headers, Bytes::new());
        match self.transport.execute_streaming(&call).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.status() == Some(416) => Ok(None),
            Err(e) if e.status() == Some(412) => Err(S3Error {
                kind: ErrorKind::Precondition,
                ..e
            }),
            Err(e) => Err(e),
        }
    }

    /// `DeleteObjects` in batches of [`DELETE_BATCH`]; any per-key error
    /// fails the call after the batch (earlier batches stay deleted).
    pub(crate) async fn delete_objects(&self, keys: &[String], quiet: bool) -> Result<(), S3Error> {
        let loc = self.location().await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let body = xml::delete_body(batch.iter().map(String::as_str), quiet);
            let body = Bytes::from(body);
            let checksum = if self.settings.require_content_md5 {
                ("content-md5", base64(&Md5::digest(&body)))
            } else {
                ("x-amz-checksum-sha256", base64(&Sha256::digest(&body)))
            };
            let mut call = self.bucket_call(
                loc,
                "delete",
                Method::POST,
                &query(&[("delete", None)]),
                vec![checksum],
                body,
            );
            call.target = self.target(batch.first().map_or("", String::as_str));
            let reply = self.transport.execute(&call).await?;
            let result: xml::DeleteResult = xml::parse(&reply.body)
                .map_err(|e| S3Error::new(call.op, call.target.clone(), ErrorKind::Invalid(e)))?;
            if let Some(first) = result.errors.first() {
                for e in result.errors.iter().take(5) {
                    tracing::warn!(key = %e.key, code = %e.code, message = %e.message, "S3 could not delete an object");
                }
                return Err(S3Error::new(
                    "delete",
                    self.target(&first.key),
                    ErrorKind::Status {
                        status: 200,
                        code: Some(first.code.clone()),
                        message: Some(format!(
                            "{} ({} of {} keys failed)",
                            first.message,
                            result.errors.len(),
                            batch.len()
                        )),
                        request_id: None,
                    },
                ));
            }
            tracing::debug!(deleted = result.deleted.len(), "deleted S3 objects");
        }
        Ok(())
    }

    /// Open multipart uploads under `prefix` (`ListMultipartUploads`).
    pub(crate) async fn list_uploads(&self, prefix: &str) -> Result<Vec<xml::OpenUpload>, S3Error> {
        let loc = self.location().await?;
        let mut markers: Option<(String, String)> = None;
        let mut out = Vec::new();
        loop {
            let mut params = vec![("uploads", None), ("prefix", Some(prefix))];
            if let Some((k, u)) = &markers {
                params.push(("key-marker", Some(k.as_str())));
                params.push(("upload-id-marker", Some(u.as_str())));
            }
            let mut call = self.bucket_call(
                loc,
                "list multipart uploads",
                Method::GET,
                &query(&params),
                Vec::new(),
                Bytes::new(),
            );
            call.target = self.target(prefix);
            let reply = self.transport.execute(&call).await?;
            let page: xml::ListMultipartUploadsResult = xml::parse(&reply.body)
                .map_err(|e| S3Error::new(call.op, call.target.clone(), ErrorKind::Invalid(e)))?;
            out.extend(page.upload);
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(k), Some(u)) if markers.as_ref() != Some(&(k.clone(), u.clone())) => {
                    markers = Some((k, u))
                }
                _ => return Ok(out),
            }
        }
    }
}

fn require_etag(call: &Call, headers: &HeaderMap) -> Result<String, S3Error> {
    headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            S3Error::new(
                call.op,
                call.target.clone(),
                ErrorKind::Invalid("no ETag in the response".into()),
            )
        })
}

/// `Content-Length` of a response.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get("content-length")?.to_str().ok()?.parse().ok()
}
