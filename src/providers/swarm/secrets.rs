//! Secret values of services as Swarm secrets: one per service and value, named by its keyed
//! digest (`<project>-<service>-<VARIABLE>-<digest>`) and labelled with its service, so that a
//! new value is a new secret and a service update, and a service's secrets that none of its
//! Swarm services uses any more are removed after its step. Each service sweeps only its own:
//! steps of other services running alongside never lose a secret they just made. Values go to
//! the manager's encrypted store and nowhere else: not in a service spec, a label, a plan or a log.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use bollard::models::SecretSpec;
use bollard::query_parameters::ListSecretsOptions;

use super::spec::SecretFile;
use crate::providers::docker::api;
use crate::providers::runtime::{RuntimeError, MANAGED, PROJECT, RESOURCE};
use crate::providers::services::containers::ResolvedVar;
use crate::secrets::Secrets;

/// The Swarm name of one secret value: nothing of the value but its keyed digest.
pub fn secret_name(project: &str, service: &str, variable: &str, digest: &str) -> String {
    let mut name = format!("{project}-{service}-{variable}-{digest}");
    if name.len() > 64 {
        let keep = 64 - digest.len() - 1;
        name = format!("{}-{digest}", &name[..keep]);
    }
    name
}

/// The labels (and list filter) of one service's secrets.
fn owner(project: &str, service: &str) -> [(String, String); 3] {
    [
        (MANAGED.to_string(), "true".to_string()),
        (PROJECT.to_string(), project.to_string()),
        (RESOURCE.to_string(), format!("service/{service}")),
    ]
}

/// Makes sure each secret variable of `service` has its Swarm secret; returns the files tasks
/// mount.
pub async fn ensure(
    client: &bollard::Docker,
    (project, service): (&str, &str),
    secrets: &Secrets,
    vars: &[ResolvedVar],
) -> Result<Vec<SecretFile>, RuntimeError> {
    let existing = list(client, project, service).await?;
    let mut files = Vec::new();
    for v in vars.iter().filter(|v| v.secret) {
        let name = secret_name(project, service, &v.name, &secrets.digest_value(&v.value));
        let id = match existing.get(&name) {
            Some(id) => id.clone(),
            None => create(client, (project, service), &name, &v.value).await?,
        };
        files.push(SecretFile {
            variable: v.name.clone(),
            secret_name: name,
            secret_id: id,
        });
    }
    Ok(files)
}

async fn create(
    client: &bollard::Docker,
    (project, service): (&str, &str),
    name: &str,
    value: &str,
) -> Result<String, RuntimeError> {
    let spec = SecretSpec {
        name: Some(name.to_string()),
        labels: Some(owner(project, service).into_iter().collect()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
        ..Default::default()
    };
    let created = client
        .create_secret(spec)
        .await
        .map_err(api(format!("create secret {name}")))?;
    Ok(created.id)
}

/// One service's secrets: name → id.
async fn list(
    client: &bollard::Docker,
    project: &str,
    service: &str,
) -> Result<HashMap<String, String>, RuntimeError> {
    let labels = owner(project, service)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let found = client
        .list_secrets(Some(ListSecretsOptions {
            filters: Some(HashMap::from([("label".to_string(), labels)])),
        }))
        .await
        .map_err(api("list secrets"))?;
    Ok(found
        .into_iter()
        .filter_map(|s| Some((s.spec?.name?, s.id?)))
        .collect())
}

/// Removes `service`'s secrets that none of `used` (the secret ids its Swarm services refer to
/// now) is; returns their names.
pub async fn sweep(
    client: &bollard::Docker,
    (project, service): (&str, &str),
    used: &BTreeSet<String>,
) -> Result<Vec<String>, RuntimeError> {
    let mut removed = Vec::new();
    for (name, id) in list(client, project, service).await? {
        if !used.contains(&id) && client.delete_secret(&id).await.is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_hold_the_service_and_the_digest_and_fit_swarms_limit() {
        assert_eq!(
            secret_name("ytempire", "api", "DB_PASSWORD", "0123456789abcdef"),
            "ytempire-api-DB_PASSWORD-0123456789abcdef"
        );
        let long = secret_name(&"p".repeat(40), "api", &"V".repeat(40), "0123456789abcdef");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-0123456789abcdef"));
    }
}
