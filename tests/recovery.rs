//! Recovery tells the truth and rolls forward (issue 15): a run whose steps all completed is
//! complete even when its last record was lost, `plan` shows a pending recovery before `apply`
//! acts on it, and an apply does not start without room to journal its steps. Real binary, real
//! Docker engine.

mod common;

use common::{docker, text, Project};

fn workers() -> String {
    (1..=3)
        .map(|i| format!("kind: Service\nname: w{i}\nimage: converge-test/worker:v1\n---\n"))
        .collect()
}

fn container_ids(p: &Project) -> String {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=converge.project={}", p.name),
    ])
}

#[test]
fn a_run_that_completed_every_step_is_kept_when_its_last_record_is_lost() {
    let p = Project::new("rec-lost-last", &workers());
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let before = container_ids(&p);
    assert_eq!(before.lines().count(), 3, "{before}");
    // The disk filled up after the last step: everything from the run's final record on is gone.
    let path = p.state.path().join(format!("journal/{}.jsonl", p.name));
    let journal = std::fs::read_to_string(&path).unwrap();
    let cut = journal.find("\"apply-finished\"").expect("a finished run");
    let cut = journal[..cut].rfind('\n').map_or(0, |i| i + 1);
    std::fs::write(&path, &journal[..cut]).unwrap();

    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    let out = text(&plan);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "plan shows the recovery: {out}"
    );
    assert!(
        out.contains("Recovery first (an earlier apply was interrupted):")
            && out.contains(
                "completed every step but its last record is missing: it is kept as applied"
            ),
        "{out}"
    );
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("kept as applied"), "{out}");
    assert_eq!(container_ids(&p), before, "nothing was restarted: {out}");
    assert_eq!(p.plan_exit(), 0);
}

#[test]
fn an_interrupted_run_is_shown_by_plan_before_apply_undoes_it() {
    let p = Project::new("rec-interrupted", &workers());
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let path = p.state.path().join(format!("journal/{}.jsonl", p.name));
    let journal = std::fs::read_to_string(&path).unwrap();
    // Killed after the second creation: the third step and the end never reached the journal.
    let steps: Vec<usize> = journal
        .match_indices("\"step-done\"")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(steps.len(), 4, "the network and three services: {journal}");
    let cut = journal[..steps[3]].rfind('\n').map_or(0, |i| i + 1);
    std::fs::write(&path, &journal[..cut]).unwrap();

    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains("was interrupted: undo `create service/w")
            && plan.contains(&format!(", `create network/{}`", p.name)),
        "{plan}"
    );
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("recovery: undid `create service/w"), "{out}");
    assert_eq!(p.plan_exit(), 0);
}

#[test]
fn apply_does_not_start_without_room_to_journal_its_steps() {
    let p = Project::new("rec-headroom", &workers());
    let state = p.state.path().to_str().unwrap().to_string();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", &state])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let o = p.apply();
    let out = text(&o);
    let _ = std::process::Command::new("umount").arg(&state).status();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("KiB free in {state}/journal; an apply needs at least 16 MiB there to journal its steps, so nothing was changed")),
        "{out}"
    );
    assert!(!out.contains("No space left on device"), "{out}");
    assert!(container_ids(&p).is_empty(), "nothing was created");
}
