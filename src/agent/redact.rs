//! Credentials out of what is shown: a git URL's password or token replaced by `***`, and a
//! message scrubbed of the URL's secret and of any other secret the agent holds.

/// The URL with its credentials replaced by `***`: `https://user:token@host/r.git` shows as
/// `https://user:***@host/r.git`, and `https://token@host/r.git` (a lone user name over HTTP is
/// usually a token) as `https://***@host/r.git`. The user of `ssh://git@host/r.git` and of
/// `git@host:r.git` is no secret and stays.
pub fn redact_url(url: &str) -> String {
    let Some((user, password, at)) = userinfo(url) else {
        return url.to_string();
    };
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let shown = match password {
        Some(_) => format!("{user}:***"),
        None if is_http(url) => "***".to_string(),
        None => return url.to_string(),
    };
    format!("{}{shown}{}", &url[..scheme_end], &url[at..])
}

/// The user, the password and the index of the `@` of a `scheme://user[:password]@host/…` URL.
fn userinfo(url: &str) -> Option<(&str, Option<&str>, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = start + url[start..authority_end].rfind('@')?;
    let info = &url[start..at];
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password), at),
        None => (info, None, at),
    })
}

pub fn is_http(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `message` without the URL's credentials: the URL itself and its secret part (raw and
/// percent-decoded) are replaced.
pub fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    let secret = match userinfo(url) {
        Some((_, Some(password), _)) => password,
        Some((user, None, _)) if is_http(url) => user,
        _ => return out,
    };
    for s in [secret.to_string(), percent_decode(secret)] {
        if !s.is_empty() {
            out = out.replace(&s, "***");
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every occurrence of each of `secrets` in `message` replaced by `***`.
pub fn scrub_secrets(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// The user name in a `scheme://user[:password]@host/...` URL.
pub fn url_user(url: &str) -> Option<String> {
    userinfo(url).map(|(user, _, _)| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_source_urls_are_hidden() {
        for (url, shown) in [
            (
                "https://alice:t0ken@git.example.com/infra.git",
                "https://alice:***@git.example.com/infra.git",
            ),
            (
                "https://ghp_abc123@github.com/o/r.git",
                "https://***@github.com/o/r.git",
            ),
            (
                "HTTP://x:p%40ss@h:8080/r.git?x=@y",
                "HTTP://x:***@h:8080/r.git?x=@y",
            ),
            (
                "ssh://git@github.com/o/r.git",
                "ssh://git@github.com/o/r.git",
            ),
            (
                "ssh://git:pw@github.com/o/r.git",
                "ssh://git:***@github.com/o/r.git",
            ),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("file:///srv/r.git", "file:///srv/r.git"),
            (
                "https://github.com/o/r@main.git",
                "https://github.com/o/r@main.git",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn errors_lose_the_url_s_secret_raw_and_decoded() {
        let url = "https://bob:p%40ss@h/r.git";
        let m = scrub(
            "failed for https://bob:p%40ss@h/r.git with p@ss and p%40ss",
            url,
        );
        assert_eq!(m, "failed for https://bob:***@h/r.git with *** and ***");
    }

    #[test]
    fn other_secrets_are_scrubbed_too() {
        assert_eq!(
            scrub_secrets(
                "401 for tok3n-value",
                &["tok3n-value".into(), String::new()]
            ),
            "401 for ***"
        );
        assert_eq!(url_user("https://bob:pw@h/r.git").as_deref(), Some("bob"));
        assert_eq!(url_user("https://h/r.git"), None);
    }
}
