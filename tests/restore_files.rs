//! `restore --to-dir` keeps what a directory holds unless asked (issue 15): a files backup is
//! restored into an empty directory, refused over a non-empty one, and written over it only with
//! `--force`, and then only after a safety copy of what it held. Real binary, real tar, a
//! `file://` destination; no database or S3 needed.

mod common;

use common::{text, Project};

#[test]
fn a_files_restore_refuses_a_non_empty_directory_without_force() {
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("video.txt"), "frame 1\n").unwrap();
    let store = tempfile::tempdir().unwrap();
    let p = Project::new(
        "restore-dir",
        &format!(
            "kind: Backup\nname: media\nsource: {{files: {}}}\nschedule: \"0 * * * *\"\ndestinations: [{{url: \"file://{}\", keep: 7d}}]\n",
            media.path().display(),
            store.path().display()
        ),
    );
    let o = p.converge(&["backup", "run", "media", "DIR"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep.txt"), "precious\n").unwrap();
    let to = target.path().to_str().unwrap();
    let o = p.converge(&["restore", "media@latest", "DIR", "--to-dir", to]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{to} is not empty; restore refuses to write over what is there"
        )) && out.contains("pass --force"),
        "{out}"
    );
    assert!(
        !target.path().join("video.txt").exists(),
        "nothing was restored"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("keep.txt")).unwrap(),
        "precious\n"
    );

    let fresh = target.path().join("new");
    let o = p.converge(&[
        "restore",
        "media@latest",
        "DIR",
        "--to-dir",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let restored = walk(&fresh);
    assert!(
        restored.iter().any(|p| p.ends_with("video.txt")),
        "{restored:?}"
    );
    // --force writes over it, after a safety copy of what it held, restorable by its name.
    std::fs::write(target.path().join("video.txt"), "frame 1, edited by hand\n").unwrap();
    let o = p.converge(&["restore", "media@latest", "DIR", "--to-dir", to, "--force"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "Before replacing it, directory {to} saved as safety-dir-"
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("video.txt")).unwrap(),
        "frame 1\n"
    );
    let id = out
        .split("saved as ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(id.starts_with("safety-dir-"), "{id}");
    let back = tempfile::tempdir().unwrap();
    let o = p.converge(&[
        "restore",
        &id,
        "DIR",
        "--to-dir",
        back.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let saved: Vec<String> = walk(back.path())
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        saved.contains(&"frame 1, edited by hand\n".to_string())
            && saved.contains(&"precious\n".to_string()),
        "the safety copy holds what the directory held: {saved:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
