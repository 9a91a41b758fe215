//! OpenSSH's wildcard patterns (`*`, `?`, and `!` to negate one of a comma-separated list), as
//! `known_hosts` host fields and `allowed_signers` `namespaces=` options use them.

/// Whether `text` matches the comma-separated `list`: some pattern matches and no negated one
/// (`!pattern`) does. Case-insensitive, as OpenSSH compares host names.
pub fn matches_list(list: &str, text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let mut matched = false;
    for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(negated.as_bytes(), text.as_bytes()) => return false,
            Some(_) => {}
            None => matched |= wildcard(pattern.as_bytes(), text.as_bytes()),
        }
    }
    matched
}

/// `*` matches any run of characters, `?` exactly one.
pub fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_openssh() {
        assert!(wildcard(b"*.example.com", b"git.example.com"));
        assert!(!wildcard(b"*.example.com", b"example.com"));
        assert!(wildcard(b"git?.example.com", b"git1.example.com"));
        assert!(wildcard(b"*", b""));
        assert!(wildcard(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard(b"a*b*c", b"aXXbYY"));
    }

    #[test]
    fn a_negated_pattern_wins_over_a_match() {
        assert!(matches_list(
            "*.example.com,!bad.example.com",
            "Git.Example.com"
        ));
        assert!(!matches_list(
            "*.example.com,!bad.example.com",
            "bad.example.com"
        ));
        assert!(matches_list("git,file", "git"));
        assert!(!matches_list("file", "git"));
        assert!(!matches_list("", "git"));
    }
}
