//! Effects stay where the host's operator allows them (issue 14, part 2), tried with the real
//! binary: files outside the allowed directories are neither read nor written, links are never
//! followed out of the desired state or through a rendered file, replaced contents stay out of
//! the journal, `render --out` stays in its directory, secret references obey the allow-list,
//! and the state directory is private.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{text, Project};

const CONFIG: &str = "kind: ConfigFile\nname: site\ntemplate: templates/site.hbs\npath: PATH\n";

/// A directory outside every default write and secret directory (not under the temp dir).
fn outside() -> tempfile::TempDir {
    tempfile::tempdir_in("/var/tmp").unwrap()
}

fn config_file(p: &Project, path: &Path) {
    p.write(&CONFIG.replace("PATH", &path.display().to_string()));
    std::fs::create_dir_all(p.path().join("templates")).unwrap();
    std::fs::write(
        p.path().join("templates/site.hbs"),
        "server {{project}} # new\n",
    )
    .unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_file_outside_the_allowed_directories_is_neither_shown_nor_written() {
    let victim_dir = outside();
    let victim = victim_dir.path().join("authorized_keys");
    std::fs::write(&victim, "ssh-ed25519 TOPSECRET-KEY root@host\n").unwrap();
    let p = Project::new("confine-outside", "");
    config_file(&p, &victim);
    for cmd in [vec!["plan", "DIR"], vec!["apply", "DIR", "--auto-approve"]] {
        let o = p.converge(&cmd);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {out}");
        assert!(!out.contains("TOPSECRET"), "{cmd:?} showed the file: {out}");
        assert!(
            out.contains(&format!(
                "configfile/site path: {} is outside the directories this host lets converge write to or mount",
                victim.display()
            )),
            "{out}"
        );
        assert!(
            out.contains("= hint: the host's operator lists it under `files.write`"),
            "{out}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "ssh-ed25519 TOPSECRET-KEY root@host\n"
    );
}

#[test]
fn the_operator_can_allow_a_directory_outside_git() {
    let allowed = outside();
    let target = allowed.path().join("site.conf");
    let p = Project::new("confine-allow", "");
    config_file(&p, &target);
    let config = p.state.path().join("host.yaml");
    std::fs::write(
        &config,
        format!("files:\n  write: [{}]\n", allowed.path().display()),
    )
    .unwrap();
    let o = p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("CONVERGE_CONFIG", config.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        format!("server {} # new\n", p.name)
    );
}

#[test]
fn a_template_linked_outside_the_desired_state_is_refused() {
    let secret_dir = outside();
    let secret = secret_dir.path().join("shadow");
    std::fs::write(&secret, "root:TOPSECRET-HASH:19000::::::\n").unwrap();
    let target = tempfile::tempdir().unwrap();
    let p = Project::new("confine-link", "");
    config_file(&p, &target.path().join("site.conf"));
    let template = p.path().join("templates/site.hbs");
    std::fs::remove_file(&template).unwrap();
    symlink(&secret, &template).unwrap();
    for cmd in [vec!["validate", "DIR"], vec!["plan", "DIR"]] {
        let o = p.converge(&cmd);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {out}");
        assert!(!out.contains("TOPSECRET"), "{out}");
        assert!(
            out.contains("is a symbolic link to")
                && out.contains("outside the desired-state directory; nothing was read"),
            "{out}"
        );
    }
}

#[test]
fn a_rendered_path_that_is_a_link_is_not_followed() {
    let victim_dir = outside();
    let victim = victim_dir.path().join("passwd");
    std::fs::write(&victim, "root:x:0:0:TOPSECRET\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("site.conf");
    symlink(&victim, &link).unwrap();
    let p = Project::new("confine-target-link", "");
    config_file(&p, &link);
    for cmd in [vec!["plan", "DIR"], vec!["apply", "DIR", "--auto-approve"]] {
        let o = p.converge(&cmd);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {out}");
        assert!(!out.contains("TOPSECRET"), "{out}");
        assert!(out.contains("is a symbolic link"), "{out}");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:x:0:0:TOPSECRET\n"
    );
}

#[test]
fn apply_keeps_the_mode_and_keeps_replaced_contents_out_of_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("site.conf");
    std::fs::write(&target, "OLD-CONTENTS with a password=hunter2\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A link planted where earlier versions put their temporary file.
    let victim_dir = outside();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    symlink(&victim, dir.path().join("site.converge-tmp")).unwrap();
    let p = Project::new("confine-mode", "");
    config_file(&p, &target);
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(mode(&target), 0o600, "the previous mode is kept");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        format!("server {} # new\n", p.name)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    let journal = p.journal();
    assert!(journal.contains("\"undo\":\"restore-file\""), "{journal}");
    assert!(!journal.contains("OLD-CONTENTS"), "{journal}");
    let undo = p.state.path().join("undo").join(&p.name);
    let left: Vec<PathBuf> = std::fs::read_dir(&undo)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "copies kept after the run: {left:?}");
    let journal_file = p.state.path().join(format!("journal/{}.jsonl", p.name));
    assert_eq!(mode(&journal_file), 0o600);
    assert_eq!(mode(p.state.path()), 0o700);
    assert_eq!(mode(&p.state.path().join("journal")), 0o700);
    assert_eq!(mode(&p.state.path().join("digest.key")), 0o600);
}

#[test]
fn render_out_never_leaves_its_directory() {
    let p = Project::new("confine-render", "");
    config_file(&p, Path::new("/opt/x/../../../../escape-converge.conf"));
    let out = tempfile::tempdir().unwrap();
    let o = p.converge(&["render", "DIR", "--out", out.path().to_str().unwrap()]);
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(
            "expected a plain absolute file path, found `/opt/x/../../../../escape-converge.conf`"
        ),
        "{msg}"
    );
    assert!(!Path::new("/escape-converge.conf").exists());
    assert!(!out.path().join("../escape-converge.conf").exists());
}

#[test]
fn secret_references_outside_the_allow_list_are_refused_before_anything_runs() {
    let p = Project::new("confine-secrets", "");
    let key = p.state.path().join("digest.key");
    p.write(&format!(
        "kind: Service\nname: leak\nimage: converge-test/httpd:v1\nenv:\n  HOOK: \"${{env:CONVERGE_WEBHOOK_SECRET}}\"\n  KEY: \"${{file:{}}}\"\n",
        key.display()
    ));
    let o = p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("CONVERGE_WEBHOOK_SECRET", "TOPSECRET-HOOK")],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains("TOPSECRET"), "{out}");
    assert!(
        out.contains("service/leak env.HOOK: secret `${env:CONVERGE_WEBHOOK_SECRET}` is not allowed on this host"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "service/leak env.KEY: secret `${{file:{}}}` is outside the directories this host allows secrets to be read from",
            key.display()
        )),
        "{out}"
    );
    assert!(p.containers().is_empty(), "{:?}", p.containers());
}

#[test]
fn host_directories_a_service_mounts_or_a_backup_reads_are_confined_too() {
    let p = Project::new("confine-mounts", "");
    p.write(
        "kind: Service\nname: root\nimage: converge-test/httpd:v1\nvolumes: [{source: /etc, target: /host-etc}]\n---\n\
         kind: Backup\nname: keys\nsource: {files: /root/.ssh}\nschedule: \"0 * * * *\"\n\
         destinations: [{url: \"file:///etc/cron.d\", keep: 7d}]\n",
    );
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("3 host path(s) are not allowed on this host; nothing was read or changed:"),
        "{out}"
    );
    for line in [
        "service/root volumes[0].source: /etc is outside",
        "backup/keys source.files: /root/.ssh is outside",
        "backup/keys destinations[0].url: /etc/cron.d is outside",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(p.containers().is_empty(), "{:?}", p.containers());
}
