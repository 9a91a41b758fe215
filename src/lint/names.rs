//! Names in folded (upper-cased, whitespace-folded) SQL text: the table after `ON` or
//! `ALTER TABLE`, schema-qualified or quoted or not, and the actions of an `ALTER TABLE`.

/// Words that may sit between a keyword and the name it introduces.
const NOISE: &[&str] = &["ONLY", "IF", "NOT", "EXISTS", "CONCURRENTLY"];

/// The name right after `keyword` (skipping `ONLY`, `IF NOT EXISTS`, `CONCURRENTLY`), lowercased
/// and without quotes or schema: `ON public."Videos"(id)` → `videos`.
pub fn name_after(text: &str, keyword: &str) -> Option<String> {
    let at = find_word(text, keyword)?;
    let mut rest = text[at + keyword.len()..].trim_start();
    loop {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() && NOISE.contains(&word.as_str()) {
            rest = rest[word.len()..].trim_start();
            continue;
        }
        break;
    }
    let (name, _) = qualified_name(rest)?;
    Some(name)
}

/// A possibly schema-qualified, possibly quoted name at the start of `s`: (last part lowercased,
/// what follows it).
pub fn qualified_name(s: &str) -> Option<(String, &str)> {
    let mut rest = s.trim_start();
    let mut last = None;
    loop {
        let (part, after) = if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let len = rest
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            if len == 0 {
                return last.map(|l| (l, rest));
            }
            (rest[..len].to_string(), &rest[len..])
        };
        last = Some(part.to_lowercase());
        rest = after;
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => return last.map(|l| (l, rest)),
        }
    }
}

/// Byte offset of `word` in `text` as a whole word (not inside a longer name).
pub fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(p) = text[from..].find(word) {
        let at = from + p;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_name) && !after.is_some_and(is_name) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The comma-separated items of `s` outside parentheses and quotes, trimmed.
pub fn top_level_items(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|x| !x.is_empty());
    out
}

/// `ALTER TABLE [IF EXISTS] [ONLY] name action, action…` → (table, actions).
pub fn alter_table(text: &str) -> Option<(String, Vec<&str>)> {
    let rest = text.strip_prefix("ALTER TABLE")?.trim_start();
    let mut rest = rest;
    for noise in ["IF EXISTS", "ONLY"] {
        if let Some(r) = rest.strip_prefix(noise) {
            rest = r.trim_start();
        }
    }
    let (table, after) = qualified_name(rest)?;
    let after = after.trim_start().trim_start_matches('*').trim_start();
    Some((table, top_level_items(after)))
}

/// A type as written, spaces folded around parentheses: `VARCHAR (20)` → `VARCHAR(20)`.
pub fn type_name(s: &str) -> String {
    let mut t = String::new();
    let mut depth = 0;
    for w in s.split_whitespace() {
        let stop = depth == 0
            && matches!(
                w,
                "USING"
                    | "COLLATE"
                    | "NOT"
                    | "NULL"
                    | "DEFAULT"
                    | "CONSTRAINT"
                    | "PRIMARY"
                    | "REFERENCES"
                    | "CHECK"
                    | "UNIQUE"
                    | "GENERATED"
            );
        if stop {
            break;
        }
        depth += w.matches('(').count() as i32 - w.matches(')').count() as i32;
        if !t.is_empty() && !w.starts_with('(') && !t.ends_with('(') {
            t.push(' ');
        }
        t.push_str(w);
    }
    t.replace(" (", "(")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_after_on_is_found_with_or_without_a_space_schema_or_quotes() {
        assert_eq!(
            name_after("CREATE INDEX A ON T(COL)", "ON").as_deref(),
            Some("t")
        );
        assert_eq!(
            name_after("CREATE INDEX A ON PUBLIC.T (COL)", "ON").as_deref(),
            Some("t")
        );
        assert_eq!(
            name_after("CREATE INDEX A ON ONLY \"MY TABLE\"(COL)", "ON").as_deref(),
            Some("my table")
        );
        assert_eq!(
            name_after("CREATE TABLE IF NOT EXISTS PUBLIC.X (ID INT)", "TABLE").as_deref(),
            Some("x")
        );
        assert_eq!(
            name_after("CREATE INDEX ONX ON T (A)", "ON").as_deref(),
            Some("t")
        );
    }

    #[test]
    fn alter_table_actions_split_outside_parentheses() {
        let (t, a) =
            alter_table("ALTER TABLE ONLY S.T ADD COLUMN A NUMERIC(10,2), DROP COLUMN B").unwrap();
        assert_eq!(t, "t");
        assert_eq!(a, vec!["ADD COLUMN A NUMERIC(10,2)", "DROP COLUMN B"]);
        assert_eq!(type_name("VARCHAR (20) USING X::TEXT"), "VARCHAR(20)");
        assert_eq!(
            type_name("CHARACTER VARYING(20) NOT NULL"),
            "CHARACTER VARYING(20)"
        );
    }
}
