//! Secrets compared by value from any machine. A container's spec label holds keyed digests of
//! its secret environment, made with the key of the machine that applied it; another machine (CI
//! planning a pull request, a laptop, a second agent) has another key. When a service's label
//! digests differ from this machine's, its containers' real environment (reported by the
//! engine) is digested with this machine's key instead: a plan from anywhere sees no change
//! where there is none, and a real change still shows. Values are never kept or printed.

use std::collections::BTreeMap;

use crate::model::live::{LiveResource, LiveState};
use crate::model::{AttrValue, Attributes, DesiredState, Kind, ResourceId, SecretDigest};
use crate::providers::runtime::{ContainerRuntime, RuntimeError};
use crate::secrets::Secrets;

/// Re-digests, with this machine's key, the secret env of services whose labels disagree.
pub async fn redigest(
    rt: &dyn ContainerRuntime,
    desired: &DesiredState,
    secrets: &Secrets,
    live: &mut LiveState,
) -> Result<(), RuntimeError> {
    for s in desired.services() {
        let id = ResourceId::new(Kind::Service, s.name.as_str());
        let Some(res) = live.resources.get_mut(&id) else {
            continue;
        };
        if secrets_agree(s, secrets, &res.attributes) {
            continue;
        }
        redigest_service(rt, secrets, res).await?;
    }
    Ok(())
}

/// Whether every secret in the service's env has this machine's digest in the live label: only
/// the secret values are digested, not the whole spec, since this runs on every observe.
fn secrets_agree(s: &crate::model::Service, secrets: &Secrets, live: &Attributes) -> bool {
    let agrees = |k: &str, want: AttrValue| {
        live.get(&format!("env.{k}"))
            .is_some_and(|l| l.value == want)
    };
    s.env
        .iter()
        .filter(|(_, v)| v.is_sensitive())
        .all(|(k, v)| agrees(k, AttrValue::Sensitive(SecretDigest::digest(secrets, v))))
        && s.env_file_values.0.iter().all(|(k, v)| {
            s.env.contains_key(k) || agrees(k, AttrValue::Sensitive(secrets.digest_loaded(k, v)))
        })
}

async fn redigest_service(
    rt: &dyn ContainerRuntime,
    secrets: &Secrets,
    res: &mut LiveResource,
) -> Result<(), RuntimeError> {
    let Some(service) = res.service.as_mut() else {
        return Ok(());
    };
    let mut chosen: Option<(bool, Attributes)> = None;
    for c in service.containers.iter_mut() {
        let Some(config) = rt.config(&c.name).await? else {
            continue;
        };
        let Some(attrs) = config
            .spec
            .as_deref()
            .and_then(|json| serde_json::from_str::<Attributes>(json).ok())
        else {
            continue;
        };
        let attrs = with_local_digests(attrs, &config.env, secrets);
        c.spec_hash = attrs.spec_hash();
        // The live attributes are the first running container's, else the first one's.
        if chosen
            .as_ref()
            .is_none_or(|(running, _)| !running && c.running)
        {
            chosen = Some((c.running, attrs));
        }
    }
    if let Some((_, attrs)) = chosen {
        res.attributes = attrs;
    }
    Ok(())
}

/// `attrs` with each secret `env.NAME` digested from the container's real value of NAME.
fn with_local_digests(
    mut attrs: Attributes,
    env: &BTreeMap<String, String>,
    secrets: &Secrets,
) -> Attributes {
    for (key, a) in attrs.0.iter_mut() {
        let Some(name) = key.strip_prefix("env.") else {
            continue;
        };
        if let (true, Some(value)) = (a.value.is_sensitive(), env.get(name)) {
            a.value = AttrValue::Sensitive(secrets.digest_value(value));
        }
    }
    attrs
}
