//! Replica URL syntax (CLI_CONFIG.md §5): splitting `scheme://[user[:pass]@]host/path?query`
//! the way Go's `net/url` does, Go's `path.Clean`, and the S3 host forms of §5.2.

/// Whether `s` looks like a replica URL (`^\w+://`), as opposed to a path.
pub fn is_replica_url(s: &str) -> bool {
    let word = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    word > 0 && s[word..].starts_with("://")
}

/// A replica URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaUrl {
    /// Lower-cased scheme.
    pub(crate) scheme: String,
    /// Decoded user name from the userinfo.
    pub(crate) username: Option<String>,
    /// Decoded password from the userinfo.
    pub(crate) password: Option<String>,
    /// Host as written, with port.
    pub(crate) host: String,
    /// Decoded path, with its leading `/`, uncleaned (Go's `URL.Path`).
    pub(crate) path: String,
    /// Decoded query pairs in order.
    query: Vec<(String, String)>,
}

impl ReplicaUrl {
    /// Parses `s`. Errors are messages without the URL (which may hold a
    /// password); the caller adds a redacted copy.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s.chars().any(|c| c.is_ascii_control()) {
            return Err("invalid control character in URL".into());
        }
        let s = s.split_once('#').map_or(s, |(before, _)| before);
        let scheme_len = s
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            .count();
        let scheme = &s[..scheme_len];
        let Some(rest) = s[scheme_len..].strip_prefix("://") else {
            return Err("a scheme is required, e.g. s3://bucket/path or file:///path".into());
        };
        if scheme.is_empty() || !scheme.as_bytes()[0].is_ascii_alphabetic() {
            return Err("a scheme is required, e.g. s3://bucket/path or file:///path".into());
        }
        // An S3 access point ARN contains colons that are not a port.
        if scheme.eq_ignore_ascii_case("s3")
            && rest
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("arn:"))
        {
            return parse_access_point(rest);
        }
        let (rest, raw_query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, raw_path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        check_port(host)?;
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (name, pass) = u.split_once(':').map_or((u, None), |(n, p)| (n, Some(p)));
                (
                    Some(unescape(name, false)?),
                    pass.map(|p| unescape(p, false)).transpose()?,
                )
            }
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            username,
            password,
            host: unescape(host, false)?,
            path: unescape(raw_path, false)?,
            query: parse_query(raw_query),
        })
    }

    /// The first value of query parameter `name`, if present and non-empty.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The path as Litestream uses it for object stores: cleaned, without the
    /// leading `/` (`/db/` → `db`, `/` → ``, none → `.`).
    pub(crate) fn object_path(&self) -> String {
        let cleaned = clean_path(&self.path);
        cleaned
            .strip_prefix('/')
            .map_or(cleaned.clone(), str::to_owned)
    }
}

/// `s3://arn:aws:s3:<region>:<account>:accesspoint/<name>[/<prefix>][?query]`:
/// the bucket is the ARN up to the access point name.
fn parse_access_point(rest: &str) -> Result<ReplicaUrl, String> {
    let (arn_and_key, raw_query) = rest.split_once('?').unwrap_or((rest, ""));
    const MARKER: &str = ":accesspoint/";
    let Some(at) = arn_and_key.to_ascii_lowercase().find(MARKER) else {
        return Err("an S3 access point ARN must contain \":accesspoint/<name>\"".into());
    };
    let name_start = at + MARKER.len();
    if name_start >= arn_and_key.len() {
        return Err("the S3 access point ARN has no access point name".into());
    }
    let (bucket, key) = match arn_and_key[name_start..].find('/') {
        Some(i) => (
            &arn_and_key[..name_start + i],
            &arn_and_key[name_start + i + 1..],
        ),
        None => (arn_and_key, ""),
    };
    Ok(ReplicaUrl {
        scheme: "s3".into(),
        username: None,
        password: None,
        host: bucket.to_owned(),
        path: format!("/{key}"),
        query: parse_query(raw_query),
    })
}

/// The region of an ARN (`arn:aws:s3:<region>:…`).
pub(crate) fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Go refuses a host whose text after the last `:` is not a port.
fn check_port(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        return Ok(());
    }
    match host.rfind(':') {
        Some(i) if !host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("invalid port {:?} after host", &host[i..]))
        }
        _ => Ok(()),
    }
}

/// Percent-decoding; `plus_is_space` for query components.
fn unescape(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    let end = (i + 3).min(s.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        s.get(i..end).unwrap_or("%")
                    ));
                };
                out.push(b);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to invalid UTF-8".to_owned())
}

/// Go's `url.ParseQuery` as used by `URL.Query()`: malformed pairs are dropped.
fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(k, true).ok()?, unescape(v, true).ok()?))
        })
        .collect()
}

/// The URL with any password, and the values of query parameters that look
/// secret (`…key…`, `…secret…`, `…token…`, `…password…`), replaced by `***`,
/// for messages.
pub(crate) fn redact(url: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    // Only a scheme before the query counts: `x?a=s3://b` has none.
    let mut out = match head.find("://") {
        Some(scheme_end) => redact_password(head, scheme_end),
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if looks_secret(k) => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `head` (a URL without its query) with the password of its authority
/// replaced; `scheme_end` is where `://` starts.
fn redact_password(head: &str, scheme_end: usize) -> String {
    let after = &head[scheme_end + 3..];
    let authority_end = after.find(['/', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => match after[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &head[..scheme_end + 3],
                &after[..colon],
                &after[at..]
            ),
            None => head.to_owned(),
        },
        None => head.to_owned(),
    }
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["key", "secret", "token", "password"]
        .iter()
        .any(|w| n.contains(w))
}

/// Go's `path.Clean`: the shortest equivalent slash-separated path.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The S3 settings a URL host implies (CLI_CONFIG.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct S3Host {
    pub(crate) bucket: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) force_path_style: bool,
}

/// Splits an `s3://` URL host into bucket, region and endpoint.
pub(crate) fn parse_s3_host(host: &str) -> S3Host {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    // `bucket.host:port` of a local server (MinIO and the like).
    if host.contains(':') && !host.contains(".com") {
        return match host.split_once('.') {
            Some((bucket, rest)) => S3Host {
                bucket: some(bucket),
                region: Some(super::backend::S3_FALLBACK_REGION.into()),
                endpoint: Some(format!("http://{rest}")),
                force_path_style: true,
            },
            None => S3Host {
                endpoint: Some(format!("http://{host}")),
                force_path_style: true,
                ..S3Host::default()
            },
        };
    }
    // `<bucket>.s3.amazonaws.com` and `<bucket>.s3.<region>.amazonaws.com`.
    if let Some(bucket) = host.strip_suffix(".s3.amazonaws.com") {
        return S3Host {
            bucket: some(bucket),
            ..S3Host::default()
        };
    }
    if let Some((bucket, region)) = host
        .strip_suffix(".amazonaws.com")
        .and_then(|h| h.rsplit_once('.'))
        .and_then(|(head, region)| Some((head.strip_suffix(".s3")?, region)))
    {
        return S3Host {
            bucket: some(bucket),
            region: some(region),
            ..S3Host::default()
        };
    }
    // `[<bucket>.]<region>.digitaloceanspaces.com`.
    if let Some(head) = host.strip_suffix(".digitaloceanspaces.com") {
        let (bucket, region) = head.rsplit_once('.').unwrap_or(("", head));
        return S3Host {
            bucket: some(bucket),
            region: some(region),
            endpoint: Some(format!("https://{region}.digitaloceanspaces.com")),
            force_path_style: false,
        };
    }
    // `[<bucket>.]s3.<region>.backblazeb2.com`.
    if let Some((bucket, region)) = provider_region(host, ".backblazeb2.com") {
        return S3Host {
            bucket: some(bucket),
            region: some(region),
            endpoint: Some(format!("https://s3.{region}.backblazeb2.com")),
            force_path_style: true,
        };
    }
    // `[<bucket>.]s3.filebase.com`.
    if host == "s3.filebase.com" || host.ends_with(".s3.filebase.com") {
        return S3Host {
            bucket: some(host.strip_suffix(".s3.filebase.com").unwrap_or_default()),
            endpoint: Some("https://s3.filebase.com".into()),
            ..S3Host::default()
        };
    }
    // `[<bucket>.]s3.<region>.scw.cloud`.
    if let Some((bucket, region)) = provider_region(host, ".scw.cloud") {
        return S3Host {
            bucket: some(bucket),
            region: some(region),
            endpoint: Some(format!("https://s3.{region}.scw.cloud")),
            force_path_style: false,
        };
    }
    S3Host {
        bucket: some(host),
        ..S3Host::default()
    }
}

/// Matches `[<bucket>.]s3.<region><suffix>` and returns bucket and region.
fn provider_region<'a>(host: &'a str, suffix: &str) -> Option<(&'a str, &'a str)> {
    let head = host.strip_suffix(suffix)?;
    let (before, region) = head.rsplit_once('.')?;
    if region.is_empty() {
        return None;
    }
    if before == "s3" {
        return Some(("", region));
    }
    Some((before.strip_suffix(".s3")?, region))
}

/// An `?endpoint=` value with a scheme: `http://` for local and private
/// hosts, `https://` otherwise (CLI_CONFIG.md §5.3).
pub(crate) fn query_endpoint(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return endpoint.to_owned();
    }
    let host = endpoint.trim().to_ascii_lowercase();
    let host = host.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let private_172 = host
        .strip_prefix("172.")
        .and_then(|r| r.split('.').next())
        .and_then(|o| o.parse::<u8>().ok())
        .is_some_and(|o| (16..=31).contains(&o));
    let local = host == "localhost"
        || host == "127.0.0.1"
        || host.starts_with("10.")
        || host.starts_with("192.168.")
        || private_172
        || host.ends_with(".local")
        || host.ends_with(".localhost");
    if local {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> ReplicaUrl {
        ReplicaUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn url_detection() {
        assert!(is_replica_url("s3://bucket/db"));
        assert!(is_replica_url("file:///tmp/x"));
        assert!(is_replica_url("my_scheme1://x"));
        assert!(!is_replica_url("/var/lib/db"));
        assert!(!is_replica_url("s3:/bucket"));
        assert!(!is_replica_url("://x"));
        assert!(!is_replica_url("web-dav://x"));
    }

    #[test]
    fn urls_split_like_go() {
        let u = parsed("SFTP://user:p%40ss@host:2222/backups/db?x=1#frag");
        assert_eq!(u.scheme, "sftp");
        assert_eq!(u.username.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.host, "host:2222");
        assert_eq!(u.path, "/backups/db");
        assert_eq!(u.query("x"), Some("1"));

        let u = parsed("s3://bucket/a%20b?region=us-west-2&storage-class=STANDARD_IA&e=a+b");
        assert_eq!(u.path, "/a b");
        assert_eq!(u.query("region"), Some("us-west-2"));
        assert_eq!(u.query("storage-class"), Some("STANDARD_IA"));
        assert_eq!(u.query("e"), Some("a b"));
        assert_eq!(u.query("missing"), None);
    }

    #[test]
    fn object_paths_are_cleaned_without_the_leading_slash() {
        for (url, path) in [
            ("s3://bucket/db", "db"),
            ("s3://bucket/db/", "db"),
            ("s3://bucket/", ""),
            ("s3://bucket", "."),
            ("s3://bucket//a/./b/../c", "a/c"),
            ("s3://bucket/../x", "x"),
        ] {
            assert_eq!(parsed(url).object_path(), path, "{url}");
        }
    }

    #[test]
    fn bad_urls_are_errors() {
        for (url, want) in [
            ("bucket/path", "a scheme is required"),
            ("1s3://bucket", "a scheme is required"),
            ("s3://host:port/x", "invalid port \":port\" after host"),
            ("s3://bucket/%zz", "invalid URL escape \"%zz\""),
            ("s3://bucket/a\nb", "invalid control character"),
            (
                "s3://arn:aws:s3:us-east-1:123:bucket/x",
                "must contain \":accesspoint/<name>\"",
            ),
        ] {
            let err = ReplicaUrl::parse(url).err().unwrap_or_default();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn access_point_arns() {
        let u = parsed("s3://arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/db/x?region=eu");
        assert_eq!(
            u.host,
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap"
        );
        assert_eq!(u.object_path(), "db/x");
        assert_eq!(arn_region(&u.host), Some("us-west-2"));
        assert_eq!(u.query("region"), Some("eu"));
        let u = parsed("s3://arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap");
        assert_eq!(
            u.host,
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap"
        );
        assert_eq!(u.object_path(), "");
    }

    #[test]
    fn path_clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("a/b/", "a/b"),
            ("/a//b/./c/..", "/a/b"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a/./b", "a/b"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }

    #[test]
    fn s3_host_forms_of_section_5_2() {
        let h = |bucket: Option<&str>,
                 region: Option<&str>,
                 endpoint: Option<&str>,
                 style: bool| S3Host {
            bucket: bucket.map(str::to_owned),
            region: region.map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
            force_path_style: style,
        };
        let cases = [
            (
                "mybucket.s3.amazonaws.com",
                h(Some("mybucket"), None, None, false),
            ),
            (
                "mybucket.s3.eu-west-1.amazonaws.com",
                h(Some("mybucket"), Some("eu-west-1"), None, false),
            ),
            (
                "mybucket.nyc3.digitaloceanspaces.com",
                h(
                    Some("mybucket"),
                    Some("nyc3"),
                    Some("https://nyc3.digitaloceanspaces.com"),
                    false,
                ),
            ),
            (
                "mybucket.s3.us-west-004.backblazeb2.com",
                h(
                    Some("mybucket"),
                    Some("us-west-004"),
                    Some("https://s3.us-west-004.backblazeb2.com"),
                    true,
                ),
            ),
            (
                "mybucket.s3.filebase.com",
                h(
                    Some("mybucket"),
                    None,
                    Some("https://s3.filebase.com"),
                    false,
                ),
            ),
            (
                "mybucket.s3.fr-par.scw.cloud",
                h(
                    Some("mybucket"),
                    Some("fr-par"),
                    Some("https://s3.fr-par.scw.cloud"),
                    false,
                ),
            ),
            (
                "mybucket.localhost:9000",
                h(
                    Some("mybucket"),
                    Some("us-east-1"),
                    Some("http://localhost:9000"),
                    true,
                ),
            ),
            (
                "localhost:9000",
                h(None, None, Some("http://localhost:9000"), true),
            ),
            ("mybucket", h(Some("mybucket"), None, None, false)),
            (
                "my.bucket.example.com",
                h(Some("my.bucket.example.com"), None, None, false),
            ),
        ];
        for (host, want) in cases {
            assert_eq!(parse_s3_host(host), want, "{host}");
        }
    }

    #[test]
    fn query_endpoints_get_a_scheme() {
        for (input, want) in [
            ("localhost:9000", "http://localhost:9000"),
            ("127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("10.0.0.5:9000", "http://10.0.0.5:9000"),
            ("172.16.0.1", "http://172.16.0.1"),
            ("172.31.255.1", "http://172.31.255.1"),
            ("172.32.0.1", "https://172.32.0.1"),
            ("172.2.0.1", "https://172.2.0.1"),
            ("192.168.1.2:9000", "http://192.168.1.2:9000"),
            ("minio.local:9000", "http://minio.local:9000"),
            ("s3.localhost", "http://s3.localhost"),
            ("s3.example.com", "https://s3.example.com"),
            ("http://s3.example.com", "http://s3.example.com"),
            ("https://localhost:9000", "https://localhost:9000"),
        ] {
            assert_eq!(query_endpoint(input), want, "{input}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("sftp://u:secret@host/p"), "sftp://u:***@host/p");
        assert_eq!(
            redact("nats://u:p@a@host:4222/b"),
            "nats://u:***@host:4222/b"
        );
        assert_eq!(
            redact("abs://account@container/p"),
            "abs://account@container/p"
        );
        assert_eq!(redact("s3://bucket/p?x=a@b"), "s3://bucket/p?x=a@b");
        assert_eq!(
            redact("s3://b/p?region=r&sseCustomerKey=abc&sse-kms-key-id=k"),
            "s3://b/p?region=r&sseCustomerKey=***&sse-kms-key-id=***"
        );
    }

    /// Found by fuzzing: a `://` only inside the query used to index past
    /// the end of the part before it.
    #[test]
    fn a_multibyte_character_after_s3_scheme_is_not_an_arn() {
        // Found by the config_parser fuzz target: slicing four bytes into
        // a three-byte character panicked.
        let e = ReplicaUrl::parse("s3://bus\u{3f90}E:cket").unwrap_err();
        assert!(e.contains("port"), "{e}");
        assert!(ReplicaUrl::parse("s3://b\u{3f90}/path").is_ok());
    }

    #[test]
    fn a_scheme_only_in_the_query_is_no_scheme() {
        assert_eq!(
            redact("s3:bucket/p?endpoint=h&x=s3://b/very/long/path&token=t"),
            "s3:bucket/p?endpoint=h&x=s3://b/very/long/path&token=***"
        );
        assert_eq!(redact("bucket?secret=x://y"), "bucket?secret=***");
        let line = "# x: E 9000&r/p?e=1# y ts3:x&region=uss3://b?e";
        assert_eq!(redact(line), line);
    }
}
