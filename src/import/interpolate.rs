//! Compose's variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$` for a literal `$`,
//! and the `.env` file the values come from when the environment does not set them.

use std::collections::BTreeMap;

/// The variables interpolation reads: the process environment over the `.env` file.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    /// `.env` entries first, then the environment, which wins (as compose does).
    pub fn new(
        dotenv: BTreeMap<String, String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut values = dotenv;
        values.extend(env);
        Vars { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Why a string could not be interpolated (the message never holds a variable's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR:?message}` (or `${VAR?message}`) with VAR unset (or empty).
    Required { var: String, message: String },
    /// `${` without its `}`, or a name that is not a variable name.
    Malformed(String),
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpolationError::Required { var, message } if message.is_empty() => {
                write!(f, "required variable {var} is not set")
            }
            InterpolationError::Required { var, message } => {
                write!(f, "required variable {var} is not set: {message}")
            }
            InterpolationError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Interpolates `text` with `vars`.
pub fn interpolate(text: &str, vars: &Vars) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = closing_brace(braced).ok_or_else(|| {
                InterpolationError::Malformed("`${` without its closing `}`".into())
            })?;
            out.push_str(&expand(&braced[..end], vars)?);
            rest = &braced[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                out.push('$');
                rest = after;
            } else {
                out.push_str(vars.get(&after[..n]).unwrap_or(""));
                rest = &after[n..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable a value consists of, when it is exactly one reference (`${VAR}`, `$VAR`,
/// `${VAR:-x}`…): secrets are then referenced by that name.
pub fn sole_variable(text: &str) -> Option<String> {
    let t = text.trim();
    let inner = if let Some(b) = t.strip_prefix("${") {
        let end = closing_brace(b)?;
        if end + 1 != b.len() {
            return None;
        }
        &b[..end]
    } else {
        let plain = t.strip_prefix('$')?;
        if name_len(plain) != plain.len() {
            return None;
        }
        plain
    };
    let n = name_len(inner);
    (n > 0).then(|| inner[..n].to_string())
}

/// The index of the `}` closing a `${`, allowing nested `${…}` in defaults.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Expands the inside of one `${…}`.
fn expand(inner: &str, vars: &Vars) -> Result<String, InterpolationError> {
    let n = name_len(inner);
    if n == 0 {
        return Err(InterpolationError::Malformed(format!(
            "`${{{}}}` does not start with a variable name",
            inner.chars().take(20).collect::<String>()
        )));
    }
    let (name, op) = inner.split_at(n);
    let value = vars.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let word = |w: &str| interpolate(w, vars);
    let required = |message: &str| InterpolationError::Required {
        var: name.to_string(),
        message: message.to_string(),
    };
    match op {
        "" => Ok(value.unwrap_or("").to_string()),
        _ if op.starts_with(":-") => {
            if non_empty {
                Ok(value.unwrap_or("").into())
            } else {
                word(&op[2..])
            }
        }
        _ if op.starts_with('-') => {
            if set {
                Ok(value.unwrap_or("").into())
            } else {
                word(&op[1..])
            }
        }
        _ if op.starts_with(":?") => {
            if non_empty {
                Ok(value.unwrap_or("").into())
            } else {
                Err(required(&op[2..]))
            }
        }
        _ if op.starts_with('?') => {
            if set {
                Ok(value.unwrap_or("").into())
            } else {
                Err(required(&op[1..]))
            }
        }
        _ if op.starts_with(":+") => {
            if non_empty {
                word(&op[2..])
            } else {
                Ok(String::new())
            }
        }
        _ if op.starts_with('+') => {
            if set {
                word(&op[1..])
            } else {
                Ok(String::new())
            }
        }
        _ => Err(InterpolationError::Malformed(format!(
            "unknown operator in `${{{name}{}}}`: expected `:-`, `-`, `:?`, `?`, `:+` or `+`",
            op.chars().take(2).collect::<String>()
        ))),
    }
}

/// Parses a `.env` file: `KEY=VALUE` lines, `#` comments, optional `export `, values in single
/// quotes (literal) or double quotes (with `\n` escapes), unquoted values up to a ` #` comment.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        out.insert(key.trim().to_string(), dotenv_value(value.trim()));
    }
    out
}

fn dotenv_value(v: &str) -> String {
    if let Some(inner) = v
        .strip_prefix('\'')
        .and_then(|s| s.rfind('\'').map(|e| &s[..e]))
    {
        return inner.to_string();
    }
    if let Some(inner) = v
        .strip_prefix('"')
        .and_then(|s| s.rfind('"').map(|e| &s[..e]))
    {
        return inner.replace("\\n", "\n").replace("\\\"", "\"");
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end().to_string(),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::new(
            BTreeMap::new(),
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn every_compose_form_expands() {
        let v = vars(&[("A", "1"), ("E", "")]);
        assert_eq!(interpolate("x${A}y$A", &v).unwrap(), "x1y1");
        assert_eq!(interpolate("${E:-d}|${E-d}|${U-d}", &v).unwrap(), "d||d");
        assert_eq!(interpolate("${A:+set}${U:+no}", &v).unwrap(), "set");
        assert_eq!(interpolate("$$A costs $$5 $", &v).unwrap(), "$A costs $5 $");
        assert_eq!(interpolate("${U:-${A}}", &v).unwrap(), "1");
    }

    #[test]
    fn a_required_variable_names_itself_and_its_message() {
        let err = interpolate("${DB:?set DB first}", &vars(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required variable DB is not set: set DB first"
        );
        assert!(interpolate("${E?x}", &vars(&[("E", "")])).is_ok());
        assert!(interpolate("${E:?x}", &vars(&[("E", "")])).is_err());
    }

    #[test]
    fn an_unclosed_reference_is_an_error() {
        assert!(matches!(
            interpolate("${A", &vars(&[])),
            Err(InterpolationError::Malformed(_))
        ));
    }

    #[test]
    fn the_sole_variable_of_a_value_is_found() {
        assert_eq!(sole_variable("${PG_PASS:-x}").as_deref(), Some("PG_PASS"));
        assert_eq!(sole_variable("$TOKEN").as_deref(), Some("TOKEN"));
        assert_eq!(sole_variable("a${B}"), None);
    }

    #[test]
    fn dotenv_lines_are_parsed_like_compose() {
        let env = parse_dotenv("# c\nexport A=1\nB='x y' \nC=\"q\\nr\"\nD=v # note\n\nbad\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x y");
        assert_eq!(env["C"], "q\nr");
        assert_eq!(env["D"], "v");
        assert!(!env.contains_key("bad"));
    }
}
