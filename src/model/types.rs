//! Scalar value types of the desired-state format: durations, sizes, cron schedules, ports,
//! host addresses (`host_ip.rs`), names and strings that may carry secret references. Each
//! parses from text with a message that says what was expected.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Separates a value's error message from a hint on what to write instead; the loader shows
/// the two apart (a control character, so it never occurs in an escaped value).
pub const HINT_SEPARATOR: char = '\u{1f}';

/// Implements `JsonSchema` for a type written as a string, with a pattern and description.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $desc:literal, $pattern:expr) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                let pattern: Option<&str> = $pattern;
                match pattern {
                    Some(p) => json_schema!({"type": "string", "description": $desc, "pattern": p}),
                    None => json_schema!({"type": "string", "description": $desc}),
                }
            }
        }
    };
}

/// A duration written `500ms`, `30s`, `5m`, `1h`, `7d` or combined (`1h30m`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, Serialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Duration {
    millis: u64,
}

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs * 1000,
        }
    }
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }
    pub fn as_millis(&self) -> u64 {
        self.millis
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.millis as f64 / 1000.0
    }
    pub fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("expected a duration like `30s`, `5m`, `1h` or `7d`, found `{text}`");
        let t = text.trim();
        if t.is_empty() {
            return Err(bad());
        }
        let mut millis: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
            let factor = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            millis = n
                .checked_mul(factor)
                .and_then(|v| v.checked_add(millis))
                .ok_or_else(bad)?;
        }
        Ok(Duration { millis })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (factor, unit) in UNITS {
            if rest >= factor {
                write!(f, "{}{}", rest / factor, unit)?;
                rest %= factor;
            }
        }
        Ok(())
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

string_schema!(
    Duration,
    "Duration",
    "A duration: `500ms`, `30s`, `5m`, `1h`, `7d`, or combined like `1h30m`.",
    Some("^([0-9]+(ms|s|m|h|d|w))+$")
);

/// A size in bytes, written `512Mi`, `2Gi`, `1G`, `100M` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "SizeText", into = "String")]
pub struct Size {
    bytes: u64,
}

/// A size may be written as a number (bytes) or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Bytes(u64),
    Text(String),
}

impl Size {
    pub const fn from_bytes(bytes: u64) -> Self {
        Size { bytes }
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn gib(&self) -> f64 {
        self.bytes as f64 / (1u64 << 30) as f64
    }
}

impl TryFrom<SizeText> for Size {
    type Error = String;
    fn try_from(t: SizeText) -> Result<Self, String> {
        match t {
            SizeText::Bytes(bytes) => Ok(Size { bytes }),
            SizeText::Text(s) => s.parse(),
        }
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("expected a size like `512Mi`, `2Gi` or `1G`, found `{text}`");
        let t = text.trim();
        let digits = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .count();
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = t[..digits].parse().map_err(|_| bad())?;
        let factor: u64 = match &t[digits..] {
            "" | "B" => 1,
            "K" | "k" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "Ti" | "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = n * factor as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Size {
            bytes: bytes.round() as u64,
        })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (factor, unit) in [
            (1u64 << 40, "Ti"),
            (1 << 30, "Gi"),
            (1 << 20, "Mi"),
            (1 << 10, "Ki"),
        ] {
            if self.bytes >= factor && self.bytes.is_multiple_of(factor) {
                return write!(f, "{}{}", self.bytes / factor, unit);
            }
        }
        write!(f, "{}", self.bytes)
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Size")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: `512Mi`, `2Gi`, `1G`, or a number of bytes.",
            "anyOf": [
                {"type": "string", "pattern": "^[0-9.]+(B|K|k|KB|M|MB|G|GB|T|TB|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB)?$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

/// A 5-field cron schedule, evaluated in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSchedule(String);

impl CronSchedule {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "expected a 5-field cron schedule (minute hour day month weekday) like `0 2 * * *`, found `{text}` with {fields} field(s)"
            ));
        }
        text.parse::<croner::Cron>().map_err(|e| {
            let detail = e
                .to_string()
                .replace("Component error: ", "")
                .to_lowercase();
            format!(
                "expected a 5-field cron schedule like `0 2 * * *`, found `{text}`: {}",
                detail.trim_end_matches('.')
            )
        })?;
        Ok(CronSchedule(text))
    }
}

impl From<CronSchedule> for String {
    fn from(c: CronSchedule) -> String {
        c.0
    }
}

string_schema!(
    CronSchedule,
    "CronSchedule",
    "A 5-field cron schedule in UTC: minute hour day-of-month month day-of-week.",
    None
);

/// A TCP/UDP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Port(u16);

impl Port {
    pub fn get(&self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for Port {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        if (1..=65535).contains(&n) {
            Ok(Port(n as u16))
        } else {
            Err(format!("expected a port from 1 to 65535, found {n}"))
        }
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Port")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": 65535})
    }
}

pub use super::host_ip::HostIp;

/// A resource name: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let ok_first = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok_first && ok_rest && text.len() <= 63 {
            Ok(Name(text))
        } else {
            Err(format!(
                "expected a name of letters, digits, `-`, `_` or `.` (at most 63, starting with a letter or digit), found `{text}`"
            ))
        }
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_schema!(
    Name,
    "Name",
    "A name: letters, digits, `-`, `_` and `.`, starting with a letter or digit.",
    Some("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
);

/// One piece of a string that may reference secrets: literal text or `${env:NAME}` / `${file:PATH}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    Text(String),
    Env(String),
    File(String),
}

/// A string that may contain secret references. References are resolved only at apply time;
/// a value with any reference is sensitive and shows as `(sensitive)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretString {
    raw: String,
    pieces: Vec<Piece>,
}

impl SecretString {
    pub fn is_sensitive(&self) -> bool {
        self.pieces.iter().any(|p| !matches!(p, Piece::Text(_)))
    }
    /// The text as written, references unresolved. Never print this for a sensitive value.
    pub fn raw(&self) -> &str {
        &self.raw
    }
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }
    pub fn plain(text: &str) -> Self {
        SecretString {
            raw: text.to_string(),
            pieces: vec![Piece::Text(text.to_string())],
        }
    }
}

impl TryFrom<String> for SecretString {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = raw.as_str();
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                format!("unclosed secret reference in `{}`: expected `${{env:NAME}}` or `${{file:PATH}}`", redact_hint(&raw))
            })?;
            let inner = &after[..end];
            let piece = match inner.split_once(':') {
                Some(("env", name)) if is_env_name(name) => Piece::Env(name.to_string()),
                Some(("file", path)) if !path.is_empty() => Piece::File(path.to_string()),
                _ => {
                    return Err(format!(
                        "unknown secret reference `${{{inner}}}`: expected `${{env:NAME}}` or `${{file:PATH}}`"
                    ))
                }
            };
            pieces.push(piece);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(SecretString { raw, pieces })
    }
}

/// Error messages about a malformed reference show only its shape, never its literal text.
fn redact_hint(raw: &str) -> String {
    match raw.find("${") {
        Some(i) => {
            // At most 12 bytes, cut at a character boundary.
            let mut end = raw.len().min(i + 12);
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            format!("…{}", &raw[i..end])
        }
        None => "…".into(),
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl From<SecretString> for String {
    fn from(s: SecretString) -> String {
        s.raw
    }
}

impl fmt::Display for SecretString {
    /// Shows the value, or `(sensitive)` when it holds a reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_sensitive() {
            f.write_str("(sensitive)")
        } else {
            f.write_str(&self.raw)
        }
    }
}

string_schema!(
    SecretString,
    "SecretString",
    "Text that may hold secret references, `${env:NAME}` or `${file:PATH}`, resolved only at apply time.",
    None
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_in_canonical_form() {
        for (text, millis, shown) in [
            ("30s", 30_000, "30s"),
            ("5m", 300_000, "5m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("7d", 604_800_000, "7d"),
            ("90s", 90_000, "1m30s"),
            ("250ms", 250, "250ms"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_millis(), millis, "{text}");
            assert_eq!(d.to_string(), shown);
        }
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        for text in ["", "5", "5 minutes", "m5", "1x", "-3s"] {
            let err = text.parse::<Duration>().unwrap_err();
            assert!(err.starts_with("expected a duration like"), "{err}");
        }
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!("512Mi".parse::<Size>().unwrap().bytes(), 512 << 20);
        assert_eq!("2Gi".parse::<Size>().unwrap().to_string(), "2Gi");
        assert_eq!("1G".parse::<Size>().unwrap().bytes(), 1_000_000_000);
        assert!("2 gigs".parse::<Size>().is_err());
    }

    #[test]
    fn cron_needs_five_valid_fields() {
        assert!(CronSchedule::try_from("0 2 * * *".to_string()).is_ok());
        assert!(CronSchedule::try_from("0 2 * *".to_string()).is_err());
        assert!(CronSchedule::try_from("61 2 * * *".to_string()).is_err());
    }

    #[test]
    fn secret_references_make_a_value_sensitive() {
        let s =
            SecretString::try_from("postgres://app:${env:PG_PASSWORD}@db/app".to_string()).unwrap();
        assert!(s.is_sensitive());
        assert_eq!(s.to_string(), "(sensitive)");
        assert_eq!(s.pieces()[1], Piece::Env("PG_PASSWORD".into()));
        let plain = SecretString::try_from("json".to_string()).unwrap();
        assert!(!plain.is_sensitive());
        assert!(SecretString::try_from("${vault:x}".to_string()).is_err());
        assert!(SecretString::try_from("${env:X".to_string()).is_err());
    }
}
