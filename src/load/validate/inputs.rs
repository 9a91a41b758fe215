//! Template inputs (issue 14): values that reach a Router's or ConfigFile's template context are
//! written verbatim into nginx, Prometheus and Alertmanager files, so none may end or escape a
//! directive there. Route hosts are DNS names, route and metrics paths URL paths, and every other
//! free-form string that a template sees carries no control character, `;`, `{`, `}` or quote.
//!
//! Values already constrained by their type need nothing here: names (`Name`: letters, digits,
//! `-`, `_`, `.`), ports and numbers, durations (printed in canonical form), enums, and
//! references (a route's service must name an existing service).

use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Span;

/// The longest DNS name, and the longest label in one.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;
/// How much of a refused value an error message shows.
const SHOWN_CHARS: usize = 60;

/// Why the characters are refused, for the end of every hint.
const WHY: &str = "templates write this value into config files (nginx, Prometheus, Alertmanager), where control characters, `;`, `{`, `}` and quotes would end or escape a directive";

/// Characters no template input may hold: controls (Unicode `Cc`, which includes `\n`, `\r`,
/// `\t`, NUL, ESC and NEL), the line and paragraph separators (YAML parsers built on libyaml,
/// such as Prometheus's and Alertmanager's, break lines at them), bidirectional overrides (they
/// make a rendered file read differently from what it does), and the characters that end or
/// open a directive or a quoted value: `;`, `{`, `}`, `"`, `'` and `` ` ``.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            ';' | '{'
                | '}'
                | '"'
                | '\''
                | '`'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A character as an error message names it: `` `;` ``, `a newline (U+000A)`, `a quote `"``.
fn describe(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    match c {
        '\n' => format!("a newline ({code})"),
        '\r' => format!("a carriage return ({code})"),
        '\t' => format!("a tab ({code})"),
        ' ' => format!("a space ({code})"),
        '"' | '\'' => format!("a quote `{c}`"),
        '`' => "a backquote `` ` ``".to_string(),
        '\u{2028}' | '\u{2029}' => format!("a line separator ({code})"),
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            format!("a bidirectional text control ({code})")
        }
        c if is_forbidden(c) && !c.is_ascii_punctuation() => {
            format!("a control character ({code})")
        }
        c if !c.is_ascii() => format!("`{c}` ({code}, not ASCII)"),
        c => format!("`{c}`"),
    }
}

/// A value as an error message shows it: on one line (controls escaped) and at most
/// `SHOWN_CHARS` characters, so that a hostile value cannot break up or flood the output.
fn shown(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_forbidden(c) && !c.is_ascii_punctuation() => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Refuses a free-form value (`what` names the field) holding a forbidden character; `example`
/// starts the hint.
pub(super) fn text(what: &str, value: &str, span: &Span, example: &str) -> Option<Diagnostic> {
    let c = value.chars().find(|c| is_forbidden(*c))?;
    Some(
        Diagnostic::at(
            span,
            format!("{what} contains {}: `{}`", describe(c), shown(value)),
        )
        .hint(format!("{example}; {WHY}")),
    )
}

/// A route's `host`: a DNS name, or a wildcard whose first label is `*` (`*.example.com`), as
/// nginx's `server_name` takes it. No port (nginx matches the Host header without it), and no
/// `_`: the built-in `nginx-site` template declares no default server for it to catch.
pub(super) fn route_host(host: &str, span: &Span) -> Option<Diagnostic> {
    const HINT: &str = "a host is dot-separated labels of letters, digits and `-`, e.g. `app.example.com`, or a wildcard `*.example.com`; no scheme, port or path";
    let (found, hint) = match host_problem(host)? {
        HostProblem::Empty => {
            return Some(
                Diagnostic::at(span, "route host is empty, expected a DNS name").hint(HINT),
            )
        }
        HostProblem::CatchAll => (
            "`_`".to_string(),
            "the built-in `nginx-site` template declares no default server, so `_` would catch nothing: route each name, or a wildcard such as `*.example.com`".to_string(),
        ),
        HostProblem::Port(port) => (
            format!("a port (`:{port}`)"),
            "nginx matches the Host header without its port, and the port the router listens on is the Router's `listen`: write the host alone, e.g. `app.example.com`".to_string(),
        ),
        HostProblem::Wildcard => (
            "a `*` that is not the whole first label".to_string(),
            "a wildcard is allowed only as the whole first label, as in `*.example.com`".to_string(),
        ),
        HostProblem::Char(c) if is_forbidden(c) => (describe(c), format!("{HINT}; {WHY}")),
        HostProblem::Char(c) if !c.is_ascii() => (
            describe(c),
            format!("write an internationalised name in its ASCII form (`xn--…`); {HINT}"),
        ),
        HostProblem::Char(c) => (describe(c), HINT.to_string()),
        HostProblem::EmptyLabel => (
            "an empty label (`..`, or a leading or trailing `.`)".to_string(),
            HINT.to_string(),
        ),
        HostProblem::Hyphen => (
            "a label that starts or ends with `-`".to_string(),
            HINT.to_string(),
        ),
        HostProblem::LongLabel => (
            format!("a label longer than {MAX_LABEL} characters"),
            HINT.to_string(),
        ),
        HostProblem::Long => (format!("more than {MAX_NAME} characters"), HINT.to_string()),
    };
    Some(
        Diagnostic::at(
            span,
            format!(
                "route host must be a DNS name, found {found} in `{}`",
                shown(host)
            ),
        )
        .hint(hint),
    )
}

#[derive(Debug, PartialEq, Eq)]
enum HostProblem {
    Empty,
    CatchAll,
    Port(String),
    Wildcard,
    Char(char),
    EmptyLabel,
    Hyphen,
    LongLabel,
    Long,
}

fn host_problem(host: &str) -> Option<HostProblem> {
    if host.is_empty() {
        return Some(HostProblem::Empty);
    }
    if host == "_" {
        return Some(HostProblem::CatchAll);
    }
    if let Some(c) = host.chars().find(|c| is_forbidden(*c)) {
        return Some(HostProblem::Char(c));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
    {
        return Some(match (c, name.rsplit_once(':')) {
            (':', Some((before, port)))
                if !before.contains(':')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                HostProblem::Port(port.to_string())
            }
            ('*', _) => HostProblem::Wildcard,
            (c, _) => HostProblem::Char(c),
        });
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some(HostProblem::EmptyLabel);
    }
    if labels
        .iter()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Some(HostProblem::Hyphen);
    }
    if labels.iter().any(|l| l.len() > MAX_LABEL) {
        return Some(HostProblem::LongLabel);
    }
    if host.len() > MAX_NAME {
        return Some(HostProblem::Long);
    }
    None
}

/// A URL path (`what` names the field): `/` first, then unreserved characters, the sub-delims
/// other than `;` and `'`, `:`, `@`, `/` and `%XX` escapes. No space, no `?` or `#`.
pub(super) fn url_path(what: &str, path: &str, span: &Span, example: &str) -> Option<Diagnostic> {
    if !path.starts_with('/') {
        return Some(
            Diagnostic::at(
                span,
                format!("{what} must start with `/`, found `{}`", shown(path)),
            )
            .hint(format!("e.g. `{example}`")),
        );
    }
    let found = path_problem(path)?;
    let rules = "letters, digits, `-._~!$&()*+,=:@/` and `%XX` escapes (a space is `%20`)";
    let mut hint = format!("a URL path holds {rules}, e.g. `{example}`");
    if path.chars().any(is_forbidden) {
        hint = format!("{hint}; {WHY}");
    }
    Some(
        Diagnostic::at(
            span,
            format!(
                "{what} must be a URL path, found {found} in `{}`",
                shown(path)
            ),
        )
        .hint(hint),
    )
}

/// What is wrong with a path that starts with `/`, as an error message says it.
fn path_problem(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    for (i, c) in path.char_indices() {
        let ok = c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | '='
                    | ':'
                    | '@'
                    | '/'
            );
        if ok {
            continue;
        }
        if c == '%' {
            let hex = |j: usize| bytes.get(j).is_some_and(|b| b.is_ascii_hexdigit());
            if hex(i + 1) && hex(i + 2) {
                continue;
            }
            return Some("a `%` that is not a `%XX` escape".to_string());
        }
        return Some(describe(c));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_leading_wildcards_are_hosts() {
        for ok in [
            "app.example.com",
            "localhost",
            "*.example.com",
            "API-1.Example.COM",
            "10.0.0.1",
            "xn--bcher-kva.example",
            &format!("{}.com", "a".repeat(63)),
        ] {
            assert_eq!(host_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn anything_else_is_not_a_host() {
        use HostProblem::*;
        for (bad, problem) in [
            ("", Empty),
            ("_", CatchAll),
            ("app.example.com:8080", Port("8080".into())),
            ("app.*.com", Wildcard),
            ("*", Wildcard),
            ("www.example.*", Wildcard),
            (
                "app.example.com;\n  location /x { return 200 'pwned'; }\n  #",
                Char(';'),
            ),
            ("app example.com", Char(' ')),
            ("https://app.example.com", Char(':')),
            ("app.example.com/api", Char('/')),
            ("[::1]", Char('[')),
            ("bücher.example", Char('ü')),
            ("a_b.example.com", Char('_')),
            ("app..example.com", EmptyLabel),
            ("app.example.com.", EmptyLabel),
            (".example.com", EmptyLabel),
            ("-app.example.com", Hyphen),
            (&format!("{}.com", "a".repeat(64)), LongLabel),
            (&vec!["abcdefghi"; 26].join("."), Long),
        ] {
            assert_eq!(host_problem(bad), Some(problem), "{bad:?}");
        }
    }

    #[test]
    fn a_forbidden_character_is_named_before_a_wildcard() {
        assert_eq!(host_problem("a*.b;c"), Some(HostProblem::Char(';')));
    }

    #[test]
    fn url_paths_take_the_rfc_3986_path_characters_but_no_semicolon_or_quote() {
        for ok in ["/", "/api/", "/a-b_c.d~e/%20/:@!$&()*+,=", "/v1/users@host"] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        for (bad, found) in [
            ("/a b", "a space (U+0020)"),
            ("/a;b", "`;`"),
            ("/a'b", "a quote `'`"),
            ("/a{b}", "`{`"),
            ("/a\nb", "a newline (U+000A)"),
            ("/a?b", "`?`"),
            ("/a#b", "`#`"),
            ("/%2", "a `%` that is not a `%XX` escape"),
            ("/%zz", "a `%` that is not a `%XX` escape"),
            ("/é", "`é` (U+00E9, not ASCII)"),
        ] {
            assert_eq!(path_problem(bad).as_deref(), Some(found), "{bad:?}");
        }
    }

    #[test]
    fn forbidden_characters_are_controls_separators_and_directive_punctuation() {
        for c in [
            '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202e}', ';', '{',
            '}', '"', '\'', '`',
        ] {
            assert!(is_forbidden(c), "{c:?}");
        }
        for c in ['a', '-', ' ', '/', '$', 'é', '#'] {
            assert!(!is_forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn shown_values_stay_on_one_short_line() {
        assert_eq!(shown("a;\n\tb\u{1b}[31m"), "a;\\n\\tb\\u{001b}[31m");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), SHOWN_CHARS + 1);
    }

    #[test]
    fn free_text_names_the_character_and_keeps_the_message_on_one_line() {
        let span = Span::new(&std::sync::Arc::from("f.yaml"), 3, 11);
        let d = text(
            "budget currency",
            "US\"D\n",
            &span,
            "write a code such as `USD`",
        )
        .unwrap();
        assert_eq!(
            d.message,
            "budget currency contains a quote `\"`: `US\"D\\n`"
        );
        assert!(d
            .hint
            .unwrap()
            .starts_with("write a code such as `USD`; templates"));
        assert!(text("budget currency", "EUR", &span, "").is_none());
    }
}
