//! The hosted sign-in pages, rendered on the server: plain HTML forms, one
//! stylesheet, no script (their CSP allows none), a label on every input,
//! and every dynamic value escaped.

/// The stylesheet's path (served by `AuthorizeApi`).
pub const STYLESHEET_PATH: &str = "/assets/latch.css";

/// The stylesheet: readable from 320 px up, no external resources.
pub const STYLESHEET: &str = r#"*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330}
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.35rem;margin:0 0 .25rem}
.tenant{color:#5b6475;margin:0 0 1rem;font-size:.95rem}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.6rem;border:1px solid #b7bdc9;border-radius:.35rem;font:inherit}
button{margin-top:1rem;width:100%;padding:.65rem;border:0;border-radius:.35rem;background:#2750c8;color:#fff;font:inherit;font-weight:600;cursor:pointer}
button.secondary{background:#e5e8ef;color:#1d2330}
.message{padding:.6rem;border-radius:.35rem;background:#fdecec;color:#8a1c1c}
.note{padding:.6rem;border-radius:.35rem;background:#eaf2ff;color:#1b3f8f}
.links{margin-top:1rem;font-size:.95rem;display:flex;gap:1rem;flex-wrap:wrap}
ul.scopes{padding-left:1.25rem}
@media (max-width:30rem){main{margin:0;border-radius:0;min-height:100vh}}
"#;

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A whole page: `title` (escaped here) over `tenant_name`, then `body` (already HTML).
pub fn page(title: &str, tenant_name: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n<p class=\"tenant\">{tenant}</p>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
        tenant = escape(tenant_name),
    )
}

/// Hidden inputs carrying `fields` (names and values escaped).
pub fn hidden(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message box (`class` `message` for errors, `note` for information), or nothing.
pub fn message(class: &str, text: Option<&str>) -> String {
    match text {
        Some(text) => format!("<p class=\"{class}\" role=\"alert\">{}</p>", escape(text)),
        None => String::new(),
    }
}

/// A labelled input.
pub fn input(id: &str, label: &str, kind: &str, autocomplete: &str, value: Option<&str>, extra: &str) -> String {
    let value = value.map(|v| format!(" value=\"{}\"", escape(v))).unwrap_or_default();
    format!(
        "<label for=\"{id}\">{label}</label>\n<input id=\"{id}\" name=\"{id}\" type=\"{kind}\" \
         autocomplete=\"{autocomplete}\"{value} {extra}>",
        label = escape(label),
    )
}

/// A form posting to `action` with `hidden` fields, `content` and a submit button.
pub fn form(action: &str, hidden_fields: &str, content: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\">\n{hidden_fields}\n{content}\n\
         <button type=\"submit\">{button}</button>\n</form>",
        action = escape(action),
        button = escape(button),
    )
}

/// Links under a form (`(href, text)`, both escaped).
pub fn links(links: &[(String, &str)]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let items: Vec<String> =
        links.iter().map(|(href, text)| format!("<a href=\"{}\">{}</a>", escape(href), escape(text))).collect();
    format!("<p class=\"links\">{}</p>", items.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dynamic_value_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let html = page("<script>", "Acme & Co", &hidden(&[("state", "\"><script>alert(1)</script>".into())]));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("Acme &amp; Co"));
    }

    #[test]
    fn inputs_have_labels() {
        let html = input("email", "Email", "email", "username", Some("a@b"), "required");
        assert!(html.contains("<label for=\"email\">Email</label>"));
        assert!(html.contains("id=\"email\""));
    }
}
