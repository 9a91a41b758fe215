//! The host address a published port is bound to (`host_ip` of a blue/green color or a
//! `ports[]` entry): an IPv4 or IPv6 address, parsed with a message that says what to write.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::types::HINT_SEPARATOR;

/// A host address a published port is bound to: an IPv4 or IPv6 address, written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostIp(std::net::IpAddr);

impl HostIp {
    /// `127.0.0.1`: this host only.
    pub const LOOPBACK: HostIp = HostIp(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    /// `0.0.0.0`: every IPv4 interface.
    pub const ANY: HostIp = HostIp(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));

    pub fn get(&self) -> std::net::IpAddr {
        self.0
    }

    /// `address:port`, with an IPv6 address in brackets.
    pub fn with_port(&self, port: impl fmt::Display) -> String {
        match self.0 {
            std::net::IpAddr::V4(a) => format!("{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        }
    }
}

impl TryFrom<String> for HostIp {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse().map(HostIp).map_err(|_| {
            format!(
                "expected an IP address (IPv4 or IPv6), found `{}`{HINT_SEPARATOR}write `127.0.0.1` to keep the port on this host (the default for blue/green colors), `0.0.0.0` to publish it on every interface, or one interface's address; a host name or a port is not an address",
                text.escape_debug()
            )
        })
    }
}

impl From<HostIp> for String {
    fn from(ip: HostIp) -> String {
        ip.0.to_string()
    }
}

impl fmt::Display for HostIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for HostIp {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("HostIp")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 address a published port is bound to: `127.0.0.1` (this host only), `0.0.0.0` (every interface), or one interface's address.",
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_are_ipv4_or_ipv6() {
        for (text, shown) in [
            ("127.0.0.1", "127.0.0.1:80"),
            ("0.0.0.0", "0.0.0.0:80"),
            ("::1", "[::1]:80"),
        ] {
            let ip = HostIp::try_from(text.to_string()).unwrap();
            assert_eq!(ip.to_string(), text);
            assert_eq!(ip.with_port(80), shown);
        }
        for bad in [
            "localhost",
            "127.0.0.1:80",
            "256.0.0.1",
            "",
            " 127.0.0.1",
            "0.0.0.0\n",
        ] {
            let err = HostIp::try_from(bad.to_string()).unwrap_err();
            assert!(err.starts_with("expected an IP address"), "{err}");
        }
        assert_eq!(HostIp::LOOPBACK.to_string(), "127.0.0.1");
        assert_eq!(HostIp::ANY.to_string(), "0.0.0.0");
    }
}
