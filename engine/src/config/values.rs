//! Value syntax (CLI_CONFIG.md §4.2–4.3): Go durations, go-humanize byte
//! sizes, and the YAML 1.1 integers and booleans that Litestream's YAML
//! decoder accepts.

use std::fmt;
use std::time::Duration;

/// A value that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A Go `time.Duration`: signed nanoseconds. Configuration values are parsed
/// into this first so that a negative value can be reported with the rule it
/// breaks, then converted with [`GoDuration::to_std`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(i64);

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MINUTE: u64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u64 = 60 * NANOS_PER_MINUTE;

impl GoDuration {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// From signed nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Signed nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The duration, or `None` when it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }

    /// From a `std` duration (saturating at Go's maximum of about 292 years).
    pub fn from_std(d: Duration) -> Self {
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Formats like Go's `Duration.String`: `1h30m0s`, `1.5s`, `500ms`, `0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            f.write_str("-")?;
        }
        let u = self.0.unsigned_abs();
        if u == 0 {
            return f.write_str("0s");
        }
        if u < NANOS_PER_MICRO {
            return write!(f, "{u}ns");
        }
        if u < NANOS_PER_MILLI {
            return write!(f, "{}µs", decimal(u, 3));
        }
        if u < NANOS_PER_SECOND {
            return write!(f, "{}ms", decimal(u, 6));
        }
        let hours = u / NANOS_PER_HOUR;
        let minutes = (u % NANOS_PER_HOUR) / NANOS_PER_MINUTE;
        let seconds = decimal(u % NANOS_PER_MINUTE, 9);
        if hours > 0 {
            write!(f, "{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            write!(f, "{minutes}m{seconds}s")
        } else {
            write!(f, "{seconds}s")
        }
    }
}

/// `v / 10^digits` with the fraction's trailing zeros removed.
fn decimal(v: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Parses a Go duration string (Go's `time.ParseDuration`): an optional sign,
/// then one or more decimal numbers, each with a unit `ns`, `us` (`µs`, `μs`),
/// `ms`, `s`, `m` or `h`, e.g. `30s`, `1h30m`, `1.5s`, `-2m`. `0` alone needs
/// no unit. There is no `d`.
///
/// In the YAML file an unquoted integer is also accepted and means
/// nanoseconds, as in Litestream; this function is the string syntax only.
pub fn parse_duration(input: &str) -> Result<GoDuration, ValueError> {
    let invalid = |why: &str| ValueError::new(format!("invalid duration {input:?}: {why}"));
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(GoDuration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid(
            "expected a number with a unit, such as 30s, 5m or 1h30m",
        ));
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let whole = if int_digits.is_empty() {
            0
        } else {
            int_digits
                .parse::<u64>()
                .ok()
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(|| invalid("too large"))?
        };
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac_digits, s) = rest.split_at(n);
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid(
                "expected a number with a unit, such as 30s, 5m or 1h30m",
            ));
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let scale = match unit {
            "" => {
                return Err(invalid(
                    "missing unit; add one of ns, us, ms, s, m, h (e.g. 30s)",
                ));
            }
            "ns" => 1,
            "us" | "µs" | "μs" => NANOS_PER_MICRO,
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SECOND,
            "m" => NANOS_PER_MINUTE,
            "h" => NANOS_PER_HOUR,
            "d" => {
                return Err(invalid(
                    "there is no unit \"d\"; write days as hours, e.g. 24h",
                ));
            }
            other => {
                return Err(invalid(&format!(
                    "unknown unit {other:?}; use ns, us, ms, s, m or h"
                )));
            }
        };
        let mut value = whole
            .checked_mul(scale)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(|| invalid("too large"))?;
        if !frac_digits.is_empty() {
            value = value
                .checked_add(fraction_nanos(frac_digits, scale))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(|| invalid("too large"))?;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(|| invalid("too large"))?;
    }
    if negative {
        // -(1 << 63) is exactly i64::MIN.
        Ok(GoDuration(0i64.wrapping_sub_unsigned(total)))
    } else {
        i64::try_from(total)
            .map(GoDuration)
            .map_err(|_| invalid("too large"))
    }
}

/// The fractional part `0.<digits>` of one unit, in nanoseconds, computed the
/// way Go does (digits past 64-bit precision are dropped; the product is
/// rounded toward zero).
fn fraction_nanos(digits: &str, unit: u64) -> u64 {
    let mut f: u64 = 0;
    let mut scale: f64 = 1.0;
    for d in digits.bytes() {
        match f
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
        {
            Some(v) if v <= 1 << 63 => {
                f = v;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    // Float arithmetic as in the reference; the result is truncated.
    (f as f64 * (unit as f64 / scale)) as u64
}

/// 2^63 as a float, the first byte count that no longer fits an `i64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Multipliers of go-humanize's byte-size names (lower case).
const BYTE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("e", 1_000_000_000_000_000_000),
    ("eb", 1_000_000_000_000_000_000),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// Parses a byte size the way go-humanize's `ParseBytes` does (CLI_CONFIG.md
/// §4.3): a decimal number (commas ignored, fraction allowed), optional
/// spaces, and a case-insensitive unit: `B`; `K`/`KB` = 1000, `Ki`/`KiB` =
/// 1024; likewise `M`, `G`, `T`, `P`, `E`. A bare number is bytes.
///
/// Note `5MB` is 5,000,000 bytes; the S3 minimum part size is `5MiB`.
pub fn parse_byte_size(input: &str) -> Result<u64, ValueError> {
    let s = input.trim();
    let num_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let (num, unit) = s.split_at(num_len);
    let num: String = num.chars().filter(|c| *c != ',').collect();
    let value: f64 = num.parse().map_err(|_| {
        ValueError::new(format!(
            "invalid size {input:?}: expected a number and a unit, such as 5MiB or 10MB"
        ))
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let Some(&(_, scale)) = BYTE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(ValueError::new(format!(
            "invalid size {input:?}: unknown unit {unit:?}; use B, KB, KiB, MB, MiB, GB, GiB, \
             TB, TiB, PB, PiB, EB or EiB"
        )));
    };
    let bytes = value * scale as f64;
    // Sizes are signed 64-bit in the reference: anything from 2^63 up is refused.
    if bytes >= TWO_POW_63 {
        return Err(ValueError::new(format!(
            "invalid size {input:?}: too large"
        )));
    }
    Ok(bytes as u64)
}

/// Parses a YAML 1.1 integer as Litestream's YAML decoder does: underscores
/// ignored, optional sign, `0x` hex, `0o` or leading-`0` octal (so `0600` is
/// 384), `0b` binary, else decimal.
pub(crate) fn parse_yaml_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, rest) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let lower = rest.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parses a YAML 1.1 boolean (`true`/`false`, `yes`/`no`, `on`/`off`,
/// `y`/`n`, in lower, title or upper case).
pub(crate) fn parse_yaml_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn durations_parse_like_go() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("0s", 0),
            ("30s", 30 * S),
            ("5m", 300 * S),
            ("1h", 3600 * S),
            ("24h", 86_400 * S),
            ("1h30m", 5400 * S),
            ("1h30m15s", 5415 * S),
            ("500ms", S / 2),
            ("1.5s", 3 * S / 2),
            (".5s", S / 2),
            ("1.s", S),
            ("1.5h", 5400 * S),
            ("100ns", 100),
            ("100us", 100_000),
            ("100µs", 100_000),
            ("100μs", 100_000),
            ("2ms500us", 2_500_000),
            ("-1s", -S),
            ("+2s", 2 * S),
            ("1m0.5s", 60 * S + S / 2),
            ("0.000000001s", 1),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ];
        for (input, nanos) in cases {
            assert_eq!(
                parse_duration(input).map(GoDuration::as_nanos),
                Ok(*nanos),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn bad_durations_are_errors_that_say_why() {
        let cases: &[(&str, &str)] = &[
            ("", "expected a number with a unit"),
            ("-", "expected a number with a unit"),
            ("5", "missing unit"),
            ("1h5", "missing unit"),
            ("1d", "there is no unit \"d\""),
            ("1x", "unknown unit \"x\""),
            ("s", "expected a number with a unit"),
            (".s", "expected a number with a unit"),
            ("1.2.3s", "missing unit"),
            ("1 s", "unknown unit \" s\""),
            ("9223372036854775808ns", "too large"),
            ("3000000h", "too large"),
            ("30S", "unknown unit \"S\""),
        ];
        for (input, want) in cases {
            let err = parse_duration(input)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with(&format!("invalid duration {input:?}")) && err.contains(want),
                "input {input:?}: got {err:?}, want it to contain {want:?}"
            );
        }
    }

    #[test]
    fn durations_display_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (S / 2, "500ms"),
            (3 * S / 2, "1.5s"),
            (90 * S, "1m30s"),
            (3600 * S, "1h0m0s"),
            (5415 * S, "1h30m15s"),
            (-S, "-1s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(GoDuration::from_nanos(*nanos).to_string(), *want);
        }
    }

    #[test]
    fn negative_durations_have_no_std_form() {
        assert_eq!(GoDuration::from_nanos(-1).to_std(), None);
        assert_eq!(
            GoDuration::from_nanos(1_500).to_std(),
            Some(Duration::from_nanos(1_500))
        );
        assert_eq!(
            GoDuration::from_std(Duration::from_secs(2)).as_nanos(),
            2 * S
        );
    }

    #[test]
    fn byte_sizes_parse_like_go_humanize() {
        let cases: &[(&str, u64)] = &[
            ("5MB", 5_000_000),
            ("5MiB", 5_242_880),
            ("5mib", 5_242_880),
            ("5 MiB", 5_242_880),
            ("5M", 5_000_000),
            ("5Mi", 5_242_880),
            ("1.5MiB", 1_572_864),
            ("1,000", 1000),
            ("1,000KB", 1_000_000),
            ("42", 42),
            ("42B", 42),
            ("42 b", 42),
            ("1K", 1000),
            ("1KiB", 1024),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("1PB", 1_000_000_000_000_000),
            ("1EiB", 1 << 60),
            (" 7MiB ", 7 << 20),
            ("0.5K", 500),
            (".5KiB", 512),
            ("10485760", 10_485_760),
        ];
        for (input, want) in cases {
            assert_eq!(parse_byte_size(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn bad_byte_sizes_are_errors() {
        for (input, want) in [
            ("", "expected a number"),
            ("MiB", "expected a number"),
            ("-5MiB", "expected a number"),
            ("1.2.3MB", "expected a number"),
            ("5XB", "unknown unit \"xb\""),
            ("5 mebibytes", "unknown unit \"mebibytes\""),
            ("1e3", "unknown unit \"e3\""),
            ("8EiB", "too large"),
            ("100EB", "too large"),
        ] {
            let err = parse_byte_size(input)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "input {input:?}: got {err:?}");
        }
    }

    #[test]
    fn yaml_integers_follow_yaml_1_1() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            ("-42", Some(-42)),
            ("+42", Some(42)),
            ("0600", Some(0o600)),
            ("0o600", Some(0o600)),
            ("0x1F", Some(31)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("09", None),
            ("1.0", None),
            ("12a", None),
            ("", None),
            ("-", None),
            ("0x", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_yaml_int(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn yaml_booleans_follow_yaml_1_1() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(parse_yaml_bool(t), Some(true), "{t}");
        }
        for f in [
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(parse_yaml_bool(f), Some(false), "{f}");
        }
        for x in ["tRUE", "1", "0", "", "yep", "enabled"] {
            assert_eq!(parse_yaml_bool(x), None, "{x}");
        }
    }
}
