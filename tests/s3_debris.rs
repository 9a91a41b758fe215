//! No billed debris in S3: a bucket that receives backups gets a rule that aborts incomplete
//! multipart uploads, and retention aborts the uploads interrupted backups left. Against the S3
//! server scripts/test starts (`CONVERGE_TEST_S3_ENDPOINT`).

mod common;

use std::process::Command;

use common::{text, Project};
use converge::backup::store::Store;
use converge::providers::s3::S3;

fn endpoint() -> String {
    std::env::var("CONVERGE_TEST_S3_ENDPOINT")
        .expect("CONVERGE_TEST_S3_ENDPOINT: run scripts/test (it starts an S3 server)")
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl").arg("-sS").args(args).output().unwrap();
    assert!(o.status.success(), "curl {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_bucket_that_receives_backups_aborts_incomplete_uploads_and_the_plan_then_converges() {
    let s3 = endpoint();
    let bucket = format!("cvt-abortrule-{}", std::process::id());
    let p = Project::new("abortrule", "");
    let yaml = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{s3: {{endpoint: \"{s3}\", region: us-east-1}}}}\n---\nkind: Bucket\nname: {bucket}\n---\nkind: Backup\nname: media\nsource: {{files: /tmp}}\nschedule: \"0 * * * *\"\ndestinations: [{{url: \"s3://{bucket}/media/\", keep: 7d}}]\n",
        p.name
    );
    std::fs::write(p.path().join("converge.yaml"), yaml).unwrap();
    let plan = p.converge(&["plan", "DIR"]);
    assert!(
        text(&plan).contains("lifecycle[0]") && text(&plan).contains("*: abort uploads after 1d"),
        "{}",
        text(&plan)
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rules = curl(&[&format!("{s3}/{bucket}?lifecycle")]);
    assert!(
        rules.contains("<AbortIncompleteMultipartUpload>")
            && rules.contains("<DaysAfterInitiation>1</DaysAfterInitiation>"),
        "{rules}"
    );
    assert_eq!(p.plan_exit(), 0, "{}", text(&p.converge(&["plan", "DIR"])));
}

#[test]
fn retention_aborts_the_uploads_of_interrupted_backups_and_nothing_else() {
    let s3 = endpoint();
    let bucket = format!("cvt-sweep-{}", std::process::id());
    curl(&["-X", "PUT", &format!("{s3}/{bucket}")]);
    let ours = "db/data-20261128T143800Z.cvbak";
    let other = "db/notes.bin";
    for key in [ours, other] {
        let started = curl(&["-X", "POST", &format!("{s3}/{bucket}/{key}?uploads")]);
        assert!(started.contains("<UploadId>"), "{started}");
    }
    // moto reports every upload as initiated in 2010, so both are past the day a running
    // backup's upload is given; only the one named like a copy of this backup is aborted.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(S3::connect(Some(&s3), "us-east-1"));
    let store = Store::parse(&format!("s3://{bucket}/db/"), Some(&client)).unwrap();
    let aborted = store
        .sweep_uploads("data", converge::backup::debris::STALE_UPLOAD, rt.handle())
        .unwrap();
    assert_eq!(aborted, vec![ours.to_string()]);
    let left = rt
        .block_on(client.incomplete_uploads(&bucket, "db/"))
        .unwrap();
    let keys: Vec<&str> = left.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, vec![other]);
}
