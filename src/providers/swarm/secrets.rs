//! Secret values of services as Swarm secrets: one per value, named by its keyed digest
//! (`<project>-<VARIABLE>-<digest>`), so that a new value is a new secret and a service
//! update; secrets no service of the project uses any more are removed. Values go to the
//! manager's encrypted store and nowhere else: not in a service spec, a label, a plan or a log.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use bollard::models::SecretSpec;
use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions};

use super::spec::SecretFile;
use crate::model::types::SecretString;
use crate::model::Service;
use crate::providers::docker::api;
use crate::providers::runtime::{RuntimeError, MANAGED, PROJECT};
use crate::secrets::Secrets;

/// A service's variables split into plain ones and secret ones (resolved; never logged).
pub struct SplitEnv {
    pub plain: Vec<(String, String)>,
    pub secret: Vec<(String, String)>,
}

/// Resolves a service's env: references (`${env:…}`, `${file:…}`) and env-file values are
/// secrets; the rest is plain.
pub fn split_env(
    s: &Service,
    secrets: &Secrets,
) -> Result<SplitEnv, (String, crate::secrets::SecretError)> {
    let mut out = SplitEnv {
        plain: Vec::new(),
        secret: Vec::new(),
    };
    for (k, v) in &s.env {
        let value = secrets.resolve(v).map_err(|e| (k.clone(), e))?;
        if v.is_sensitive() {
            out.secret.push((k.clone(), value));
        } else {
            out.plain.push((k.clone(), value));
        }
    }
    for (k, v) in &s.env_file_values.0 {
        if !s.env.contains_key(k) {
            let value = secrets
                .resolve(&SecretString::plain(v))
                .map_err(|e| (k.clone(), e))?;
            out.secret.push((k.clone(), value));
        }
    }
    Ok(out)
}

/// The Swarm name of one secret value: nothing of the value but its keyed digest.
pub fn secret_name(project: &str, variable: &str, digest: &str) -> String {
    let mut name = format!("{project}-{variable}-{digest}");
    if name.len() > 64 {
        let keep = 64 - digest.len() - 1;
        name = format!("{}-{digest}", &name[..keep]);
    }
    name
}

/// Makes sure each secret value has its Swarm secret; returns the files tasks mount.
pub async fn ensure(
    client: &bollard::Docker,
    project: &str,
    secrets: &Secrets,
    values: &[(String, String)],
) -> Result<Vec<SecretFile>, RuntimeError> {
    let existing = list(client, project).await?;
    let mut files = Vec::new();
    for (variable, value) in values {
        let name = secret_name(project, variable, &secrets.digest_value(value));
        let id = match existing.get(&name) {
            Some(id) => id.clone(),
            None => create(client, project, &name, value).await?,
        };
        files.push(SecretFile {
            variable: variable.clone(),
            secret_name: name,
            secret_id: id,
        });
    }
    Ok(files)
}

async fn create(
    client: &bollard::Docker,
    project: &str,
    name: &str,
    value: &str,
) -> Result<String, RuntimeError> {
    let spec = SecretSpec {
        name: Some(name.to_string()),
        labels: Some(HashMap::from([
            (MANAGED.to_string(), "true".to_string()),
            (PROJECT.to_string(), project.to_string()),
        ])),
        data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
        ..Default::default()
    };
    let created = client
        .create_secret(spec)
        .await
        .map_err(api(format!("create secret {name}")))?;
    Ok(created.id)
}

/// This project's secrets: name → id.
async fn list(
    client: &bollard::Docker,
    project: &str,
) -> Result<HashMap<String, String>, RuntimeError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{MANAGED}=true"), format!("{PROJECT}={project}")],
    )]);
    let found = client
        .list_secrets(Some(ListSecretsOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(api("list secrets"))?;
    Ok(found
        .into_iter()
        .filter_map(|s| Some((s.spec?.name?, s.id?)))
        .collect())
}

/// Removes this project's secrets that none of its services refers to; returns their names.
pub async fn sweep(client: &bollard::Docker, project: &str) -> Result<Vec<String>, RuntimeError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{MANAGED}=true"), format!("{PROJECT}={project}")],
    )]);
    let services = client
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            status: None,
        }))
        .await
        .map_err(api("list services"))?;
    let used: BTreeSet<String> = services
        .iter()
        .filter_map(|s| {
            s.spec
                .as_ref()?
                .task_template
                .as_ref()?
                .container_spec
                .as_ref()
        })
        .flat_map(|c| c.secrets.iter().flatten())
        .filter_map(|r| r.secret_id.clone())
        .collect();
    let mut removed = Vec::new();
    for (name, id) in list(client, project).await? {
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
    fn secret_names_hold_the_digest_and_fit_swarms_limit() {
        assert_eq!(
            secret_name("ytempire", "DB_PASSWORD", "0123456789abcdef"),
            "ytempire-DB_PASSWORD-0123456789abcdef"
        );
        let long = secret_name(&"p".repeat(40), &"V".repeat(40), "0123456789abcdef");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-0123456789abcdef"));
    }
}
