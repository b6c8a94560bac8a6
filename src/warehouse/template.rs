//! The engine's SQL as SQL: the files of the top-level `sql/` folder, compiled in with
//! `include_str!`, whose `{{name}}` placeholders [`render`] fills. A file's leading `--` lines
//! describe it and are not part of the query.

/// `template` (a file of `sql/`) without its header comment and final newline, each `{{name}}`
/// replaced by its value. One pass over the template: a value (which may hold the user's SQL) is
/// never searched for placeholders itself. A name without a value stays as written, which no engine
/// parses (the tests render every template).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut body = template;
    while body.starts_with("--") {
        body = body.find('\n').map_or("", |end| &body[end + 1..]);
    }
    let body = body.strip_suffix('\n').unwrap_or(body);
    let mut out =
        String::with_capacity(body.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[start..start + end + 4]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn placeholders_are_filled_once_and_the_header_is_dropped() {
        let template = "-- what it is\n-- second line\nSELECT {{a}} FROM {{b}} -- {{c}}\n";
        assert_eq!(
            render(template, &[("a", "{{b}}"), ("b", "t")]),
            "SELECT {{b}} FROM t -- {{c}}"
        );
        assert_eq!(render("{{a}}{{a}}", &[("a", "x")]), "xx");
        assert_eq!(render("SELECT 1 {{open", &[]), "SELECT 1 {{open");
    }
}
