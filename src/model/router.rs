//! The `Router` kind: the traffic switch, a template rendered to a proxy config and reloaded.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Action;
use super::types::{Duration, Name, Port};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    pub name: Name,
    /// A built-in template by bare name (`nginx-site`) or a file relative to the desired-state directory.
    #[serde(default = "nginx_site")]
    pub template: String,
    /// Where the rendered config is written.
    pub path: String,
    /// The port the proxy listens on (the built-in nginx template's `listen`).
    #[serde(default = "http_port")]
    pub listen: Port,
    /// How long the proxy keeps an idle client connection open. `0s` (the default) closes it
    /// after each response: nginx before 1.27.4 resets idle keep-alive connections when it
    /// reloads, so a client that reuses one at that moment loses its request. Raise it when the
    /// clients (a load balancer, a browser) retry such requests.
    #[serde(default)]
    pub client_keepalive: Duration,
    /// Validates the new file before reload, e.g. `[nginx, -t]`.
    #[serde(default)]
    pub check: Option<Action>,
    #[serde(default)]
    pub reload: Option<Action>,
    /// How long `check` and `reload` may each run before converge stops them and counts them
    /// as failed (a failed check puts the previous file back). Default: 60s for a command,
    /// 30s for an HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_timeout: Option<Duration>,
    pub routes: Vec<Route>,
}

fn http_port() -> Port {
    Port::try_from(80).expect("valid port")
}

fn nginx_site() -> String {
    "nginx-site".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub host: String,
    /// Name of a `Service` that publishes a host port.
    pub service: String,
    #[serde(default = "slash")]
    pub path: String,
}

fn slash() -> String {
    "/".into()
}
