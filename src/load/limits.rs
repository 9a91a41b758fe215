//! Limits on what the loader accepts, so that hostile input is an error, never a crash or a hog:
//! every limit is checked while the input is read (counters, no extra pass), before the thing it
//! bounds (memory, recursion, time) can grow.

/// The largest YAML file read, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of lists and mappings in a document (aliases included).
pub const MAX_DEPTH: usize = 64;
/// How many values (scalars, lists and mappings, before aliases) one file may hold.
pub const MAX_FILE_NODES: usize = 500_000;
/// How many nodes aliases (`*name`) may copy into one document, in all.
pub const MAX_ALIAS_NODES: usize = 10_000;
/// How many nodes anchored values (`&name`) may hold in one document, in all (each is kept as a
/// copy until the document ends, for the aliases that may refer to it).
pub const MAX_ANCHORED_NODES: usize = 100_000;
/// How many documents a desired state may hold, over all its files.
pub const MAX_DOCUMENTS: usize = 10_000;

pub(crate) fn file_too_large() -> (String, String) {
    (
        "file is larger than 4 MiB".to_string(),
        "split it into several files (one per kind of resource, or one per resource)".into(),
    )
}

pub(crate) fn too_many_nodes() -> (String, String) {
    (
        format!("file holds more than {MAX_FILE_NODES} values"),
        "split it into several files (one per kind of resource, or one per resource)".into(),
    )
}

pub(crate) fn too_deep() -> (String, String) {
    (
        format!("lists and mappings nested more than {MAX_DEPTH} levels deep"),
        "no resource needs this much nesting: flatten the value (an alias counts as deep as the value it copies)".into(),
    )
}

pub(crate) fn too_many_alias_nodes() -> (String, String) {
    (
        format!("aliases expand to more than {MAX_ALIAS_NODES} values in this document"),
        "each `*name` copies everything its anchor holds: write the values out, or refer to smaller anchors".into(),
    )
}

pub(crate) fn too_many_anchored_nodes() -> (String, String) {
    (
        format!("anchored values hold more than {MAX_ANCHORED_NODES} values in this document"),
        "anchor (`&name`) only the small values that aliases reuse, not large or nested ones"
            .into(),
    )
}

pub(crate) fn too_many_documents() -> (String, String) {
    (
        format!("more than {MAX_DOCUMENTS} documents in the desired state"),
        "split the desired state into several, or remove documents that declare nothing".into(),
    )
}
