//! Timestamps on the wire: the `litestream-timestamp` object metadata
//! (REPLICA_LAYOUT.md §3: RFC 3339 in UTC, trailing zeros of the fraction
//! removed) and S3's `LastModified` (ISO 8601, `2009-10-12T17:50:30.000Z`).

use crate::calendar::{civil_from_days, days_from_civil};
use std::time::{Duration, SystemTime};

const SECS_PER_DAY: i64 = 86_400;

/// Formats milliseconds since the epoch as RFC 3339 in UTC, with the
/// fraction's trailing zeros (and an all-zero fraction) left out:
/// `2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.5Z`, `2023-11-14T22:13:20.123Z`.
pub(crate) fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if millis != 0 {
        let frac = format!("{millis:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 / ISO 8601 timestamp (`YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction of up to 9 digits, then `Z` or `±HH:MM`). `None` if malformed.
pub(crate) fn parse(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        let frac: u32 = s.get(start..end)?.parse().ok()?;
        nanos = frac * 10u32.pow(9 - digits as u32);
        i = end;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            if tz.as_bytes()[3] != b':' {
                return None;
            }
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            let v = h * 3600 + m * 60;
            if tz.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + min * 60 + sec - offset;
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Some(t + Duration::from_nanos(u64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_timestamps_drop_trailing_fraction_zeros() {
        // REPLICA_LAYOUT.md §3's three examples.
        assert_eq!(format_millis(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_millis(1_700_000_000_500), "2023-11-14T22:13:20.5Z");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_millis(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_millis(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_what_it_formats_and_s3_last_modified() {
        for ms in [
            0,
            1_700_000_000_000,
            1_700_000_000_500,
            1_700_000_000_123,
            -1,
        ] {
            let t = parse(&format_millis(ms)).unwrap();
            assert_eq!(t, crate::time_from_millis(ms), "{ms}");
        }
        assert_eq!(
            parse("2009-10-12T17:50:30.000Z").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_255_369_830)
        );
        assert_eq!(
            parse("2023-11-14T23:13:20.000000001+01:00").unwrap(),
            crate::time_from_millis(1_700_000_000_000) + Duration::from_nanos(1)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567890Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14X22:13:20Z",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
