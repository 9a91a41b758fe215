//! Check and reload actions of rendered files: a command, or an HTTP request.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// `[nginx, -s, reload]` or `{http: {method: POST, url: "http://127.0.0.1:9090/-/reload"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Action {
    Command(Vec<String>),
    Http { http: HttpAction },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    #[serde(default = "post")]
    pub method: String,
    pub url: String,
}

fn post() -> String {
    "POST".into()
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Command(argv) => write!(f, "{}", argv.join(" ")),
            Action::Http { http } => write!(f, "{} {}", http.method, http.url),
        }
    }
}

/// Written by hand (not `untagged`) so that errors inside keep their source position.
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ActionVisitor;
        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command (a list of strings) or `{http: {method, url}}`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Action, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                if argv.is_empty() {
                    return Err(de::Error::custom("a command needs at least one word"));
                }
                Ok(Action::Command(argv))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
                let mut http = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "http" {
                        return Err(de::Error::unknown_field(&key, &["http"]));
                    }
                    http = Some(map.next_value::<HttpAction>()?);
                }
                http.map(|http| Action::Http { http })
                    .ok_or_else(|| de::Error::missing_field("http"))
            }
        }
        d.deserialize_any(ActionVisitor)
    }
}
