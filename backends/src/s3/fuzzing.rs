//! Entry points for the fuzz targets (feature `fuzzing`): the XML S3 sends
//! back, parsed exactly as the client parses it, and the request bodies the
//! client writes, parsed back. Not part of the public API.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{client, time, xml};

/// Feeds `body` to every response parser the client uses. Must never panic.
pub fn parse_responses(body: &[u8]) {
    if let Ok(page) = xml::parse::<xml::ListBucketResult>(body) {
        for object in &page.contents {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            let _ = ltx::parse_file_name(name);
            let _ = time::parse(&object.last_modified);
        }
    }
    let _ = xml::parse::<xml::InitiateMultipartUploadResult>(body);
    let _ = xml::parse::<xml::DeleteResult>(body);
    let _ = xml::parse::<xml::ListMultipartUploadsResult>(body);
    let _ = xml::parse::<xml::LocationConstraint>(body);
    let _ = xml::is_error_document(body);
    for status in [
        StatusCode::OK,
        StatusCode::FORBIDDEN,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let _ = client::status_error(status, &HeaderMap::new(), body).to_string();
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Delete {
    #[serde(default)]
    object: Vec<DeleteObject>,
    #[serde(default)]
    quiet: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteObject {
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Complete {
    #[serde(default)]
    part: Vec<CompletePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompletePart {
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

/// Writes a `DeleteObjects` and a `CompleteMultipartUpload` body for
/// `keys` and parses them back; an error names what did not survive the
/// trip. Only text XML 1.0 can carry is meaningful input: keys with control
/// characters or surrounding whitespace are skipped by the caller.
pub fn request_bodies_round_trip(keys: &[&str]) -> Result<(), String> {
    let body = xml::delete_body(keys.iter().copied(), true);
    let parsed: Delete = quick_xml::de::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let back: Vec<&str> = parsed.object.iter().map(|o| o.key.as_str()).collect();
    if back != keys || !parsed.quiet {
        return Err(format!(
            "DeleteObjects body changed the keys: {keys:?} -> {back:?}"
        ));
    }
    let parts: Vec<(u32, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i as u32 + 1, (*k).to_owned()))
        .collect();
    let body = xml::complete_body(&parts);
    let parsed: Complete = quick_xml::de::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let back: Vec<(u32, String)> = parsed
        .part
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    if back != parts {
        return Err(format!(
            "CompleteMultipartUpload body changed the parts: {parts:?} -> {back:?}"
        ));
    }
    Ok(())
}
