//! The XML S3 speaks: `ListObjectsV2` pages, multipart responses and the
//! `CompleteMultipartUpload` body, `DeleteObjects` request and result,
//! `ListMultipartUploads`, `GetBucketLocation`, and error documents.
//! Responses are read with quick-xml's serde support (unknown elements are
//! ignored); the few request bodies are written here with escaping.

use quick_xml::escape::escape;
use serde::Deserialize;

const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// One `ListObjectsV2` page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListBucketResult {
    #[serde(default)]
    pub(crate) is_truncated: bool,
    #[serde(default)]
    pub(crate) contents: Vec<ListedObject>,
    #[serde(default)]
    pub(crate) next_continuation_token: Option<String>,
}

/// One object of a listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListedObject {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) last_modified: String,
    #[serde(default)]
    pub(crate) size: u64,
}

/// `CreateMultipartUpload`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InitiateMultipartUploadResult {
    pub(crate) upload_id: String,
}

/// An S3 error document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorDocument {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// `DeleteObjects`' answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteResult {
    #[serde(default)]
    pub(crate) deleted: Vec<DeletedObject>,
    #[serde(default, rename = "Error")]
    pub(crate) errors: Vec<DeleteError>,
}

/// A key `DeleteObjects` removed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeletedObject {}

/// A key `DeleteObjects` could not remove.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteError {
    #[serde(default)]
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// One `ListMultipartUploads` page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListMultipartUploadsResult {
    #[serde(default)]
    pub(crate) is_truncated: bool,
    #[serde(default)]
    pub(crate) next_key_marker: Option<String>,
    #[serde(default)]
    pub(crate) next_upload_id_marker: Option<String>,
    #[serde(default)]
    pub(crate) upload: Vec<OpenUpload>,
}

/// An open multipart upload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OpenUpload {
    pub(crate) key: String,
    pub(crate) upload_id: String,
}

/// `GetBucketLocation`'s answer: the region, empty for us-east-1.
#[derive(Debug, Deserialize)]
pub(crate) struct LocationConstraint {
    #[serde(rename = "$text", default)]
    pub(crate) region: String,
}

/// Parses a response body.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("response is not UTF-8: {e}"))?;
    quick_xml::de::from_str(text).map_err(|e| {
        let preview: String = text.chars().take(200).collect();
        format!("cannot parse XML ({e}): {preview:?}")
    })
}

/// Whether a body is an `<Error>` document; S3 sends one with status 200
/// when `CompleteMultipartUpload` fails after it started answering.
pub(crate) fn is_error_document(body: &[u8]) -> bool {
    let mut rest = body;
    loop {
        while let [first, tail @ ..] = rest {
            if first.is_ascii_whitespace() {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.starts_with(b"<?") || rest.starts_with(b"<!--") {
            let close: &[u8] = if rest.starts_with(b"<?") {
                b"?>"
            } else {
                b"-->"
            };
            match rest.windows(close.len()).position(|w| w == close) {
                Some(i) => rest = &rest[i + close.len()..],
                None => return false,
            }
        } else {
            return rest.starts_with(b"<Error>") || rest.starts_with(b"<Error ");
        }
    }
}

/// The `CompleteMultipartUpload` body for `(part number, ETag)` pairs in
/// order.
pub(crate) fn complete_body(parts: &[(u32, String)]) -> String {
    let mut out = format!("<CompleteMultipartUpload xmlns=\"{S3_NS}\">");
    for (number, etag) in parts {
        out.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(etag.as_str())
        ));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

/// The `DeleteObjects` body (at most 1000 keys, S3_PROTOCOL.md §2.5).
pub(crate) fn delete_body<'a>(keys: impl IntoIterator<Item = &'a str>, quiet: bool) -> String {
    let mut out = format!("<Delete xmlns=\"{S3_NS}\">");
    for key in keys {
        out.push_str(&format!("<Object><Key>{}</Key></Object>", escape(key)));
    }
    if quiet {
        out.push_str("<Quiet>true</Quiet>");
    }
    out.push_str("</Delete>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page_with_and_without_contents() {
        let page: ListBucketResult = parse(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bkt</Name><Prefix>db/0000/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>db/0000/0000000000000001-0000000000000001.ltx</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
    <Size>434234</Size><StorageClass>STANDARD</StorageClass><Owner><ID>x</ID></Owner></Contents>
  <Contents><Key>db/0000/a&amp;b</Key><LastModified>2009-10-12T17:50:31.000Z</LastModified><Size>1</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"#,
        )
        .unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[0].size, 434_234);
        assert_eq!(page.contents[1].key, "db/0000/a&b");
        assert_eq!(
            page.next_continuation_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
        let empty: ListBucketResult = parse(
            b"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(!empty.is_truncated && empty.contents.is_empty());
    }

    #[test]
    fn errors_delete_results_uploads_and_location() {
        let e: ErrorDocument = parse(
            b"<?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>",
        )
        .unwrap();
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(e.request_id.as_deref(), Some("4442587FB7D0A2F9"));
        assert!(is_error_document(
            b"<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code></Error>"
        ));
        assert!(!is_error_document(
            b"<?xml version=\"1.0\"?><CompleteMultipartUploadResult/>"
        ));

        // Interleaved elements of both lists.
        let d: DeleteResult = parse(
            b"<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>x</Key><Code>InternalError</Code></Error><Deleted><Key>b</Key></Deleted>\
              <Error><Key>c</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>",
        )
        .unwrap();
        assert_eq!(d.deleted.len(), 2);
        assert_eq!(d.errors.len(), 2);
        assert_eq!(
            (d.errors[1].key.as_str(), d.errors[1].code.as_str()),
            ("c", "AccessDenied")
        );

        let u: ListMultipartUploadsResult = parse(
            b"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated>\
              <Upload><Key>k</Key><UploadId>u1</UploadId><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>\
              </ListMultipartUploadsResult>",
        )
        .unwrap();
        assert_eq!(
            (u.upload[0].key.as_str(), u.upload[0].upload_id.as_str()),
            ("k", "u1")
        );
        let none: ListMultipartUploadsResult =
            parse(b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>").unwrap();
        assert!(none.upload.is_empty());

        let l: LocationConstraint = parse(
            b"<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">eu-west-1</LocationConstraint>",
        )
        .unwrap();
        assert_eq!(l.region, "eu-west-1");
        let l: LocationConstraint =
            parse(b"<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>")
                .unwrap();
        assert_eq!(l.region, "");
        let i: InitiateMultipartUploadResult = parse(
            b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>",
        )
        .unwrap();
        assert_eq!(i.upload_id, "VXBsb2FkIElE");
        assert!(parse::<ListBucketResult>(b"not xml <").is_err());
    }

    #[test]
    fn request_bodies_are_escaped() {
        assert_eq!(
            complete_body(&[(1, "\"e1\"".into()), (2, "\"e2\"".into())]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            delete_body(["a<b", "c"], true),
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>a&lt;b</Key></Object>\
             <Object><Key>c</Key></Object><Quiet>true</Quiet></Delete>"
        );
    }
}
