//! Just enough HTML for a results page: tags with their attributes, and
//! the text of a fragment. Not a parser: no tree, no recovery beyond
//! treating what it does not understand as text.

/// One tag. Comments and doctypes come as tags named `!--` and `!`;
/// `script` and `style` come whole (their content is not markup) and are
/// marked self-closing.
pub(super) struct Tag<'a> {
    /// Lower case.
    pub name: String,
    pub closing: bool,
    pub self_closing: bool,
    /// Names lower case, values as written (entities not decoded).
    attrs: Vec<(String, &'a str)>,
    /// Byte offsets of the '<' and just past the '>'.
    pub start: usize,
    pub end: usize,
}

impl Tag<'_> {
    pub fn attr(&self, name: &str) -> Option<String> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| decode_entities(v))
    }

    /// Whether the class attribute holds `class` as one of its tokens.
    pub fn has_class(&self, class: &str) -> bool {
        self.attrs
            .iter()
            .find(|(n, _)| n == "class")
            .is_some_and(|(_, v)| v.split_ascii_whitespace().any(|c| c == class))
    }
}

/// The next tag at or after byte `from`, or None at the end (or at a tag
/// left unterminated by the end of the document).
pub(super) fn next_tag(doc: &str, from: usize) -> Option<Tag<'_>> {
    let b = doc.as_bytes();
    let mut i = from;
    loop {
        let lt = i + doc.get(i..)?.find('<')?;
        let rest = &doc[lt + 1..];
        let special = |name: &str, end: usize| Tag {
            name: name.to_owned(),
            closing: false,
            self_closing: true,
            attrs: Vec::new(),
            start: lt,
            end,
        };
        if let Some(body) = rest.strip_prefix("!--") {
            let end = lt + 4 + body.find("-->")? + 3;
            return Some(special("!--", end));
        }
        if rest.starts_with(['!', '?']) {
            return Some(special("!", lt + 1 + rest.find('>')? + 1));
        }
        let closing = rest.starts_with('/');
        let name_start = if closing { lt + 2 } else { lt + 1 };
        if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // A '<' that opens no tag ("a < b") is text.
            i = lt + 1;
            continue;
        }
        let name_len = doc[name_start..].find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(doc.len() - name_start);
        let name = doc[name_start..name_start + name_len].to_ascii_lowercase();
        let (attrs, self_closing, end) = attributes(doc, name_start + name_len)?;
        if !closing && !self_closing && (name == "script" || name == "style") {
            let close = format!("</{name}");
            let end = match find_ignoring_case(&b[end..], close.as_bytes()) {
                Some(at) => end + at + doc[end + at..].find('>').map_or(doc.len() - end - at, |g| g + 1),
                None => doc.len(),
            };
            return Some(Tag { name, closing, self_closing: true, attrs, start: lt, end });
        }
        return Some(Tag { name, closing, self_closing, attrs, start: lt, end });
    }
}

type Attributes<'a> = (Vec<(String, &'a str)>, bool, usize);

/// The attributes from byte `i` to the tag's end, whether it ends with
/// "/>", and the offset past it.
fn attributes(doc: &str, mut i: usize) -> Option<Attributes<'_>> {
    let b = doc.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut attrs = Vec::new();
    loop {
        i = skip_ws(i);
        match *b.get(i)? {
            b'>' => return Some((attrs, false, i + 1)),
            b'/' if b.get(i + 1) == Some(&b'>') => return Some((attrs, true, i + 2)),
            b'/' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'>' {
            if b[i] == b'/' && b.get(i + 1) == Some(&b'>') {
                break;
            }
            i += 1;
        }
        let name = doc[start..i].to_ascii_lowercase();
        i = skip_ws(i);
        if b.get(i) != Some(&b'=') {
            attrs.push((name, ""));
            continue;
        }
        i = skip_ws(i + 1);
        let value = match *b.get(i)? {
            q @ (b'"' | b'\'') => {
                let from = i + 1;
                let to = from + b[from..].iter().position(|&c| c == q)?;
                i = to + 1;
                &doc[from..to]
            }
            _ => {
                let from = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &doc[from..i]
            }
        };
        attrs.push((name, value));
    }
}

fn find_ignoring_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// Tags that break words apart; the others (`<b>`, `<span>`) do not.
const BREAKING: [&str; 14] = ["br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "table"];

/// The text of an HTML fragment: tags dropped, entities decoded,
/// whitespace collapsed.
pub(super) fn text(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len());
    let mut pos = 0;
    while let Some(t) = next_tag(fragment, pos) {
        out.push_str(&fragment[pos..t.start]);
        if BREAKING.contains(&t.name.as_str()) {
            out.push(' ');
        }
        pos = t.end;
    }
    out.push_str(&fragment[pos..]);
    collapse(&decode_entities(&out))
}

pub(super) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` with character references replaced; an '&' that starts none is kept.
pub(super) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character named by the reference `s` starts with, and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    let semi = s.bytes().take(12).position(|b| b == b';')?;
    let c = match &s[1..semi] {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "hellip" => '\u{2026}',
        "mdash" => '\u{2014}',
        "ndash" => '\u{2013}',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "middot" => '\u{b7}',
        "copy" => '\u{a9}',
        name => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code).filter(|&c| c != '\0')?
        }
    };
    Some((c, semi + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_in_any_order_and_quoting() {
        let doc = r#"<A class='x result__a  y' data-n=3 HREF="/l/?a=1&amp;b=2" hidden>"#;
        let t = next_tag(doc, 0).unwrap();
        assert_eq!(t.name, "a");
        assert!(t.has_class("result__a") && !t.has_class("result"));
        assert_eq!(t.attr("href").as_deref(), Some("/l/?a=1&b=2"));
        assert_eq!(t.attr("data-n").as_deref(), Some("3"));
        assert_eq!(t.attr("hidden").as_deref(), Some(""));
        assert_eq!(t.end, doc.len());
    }

    #[test]
    fn scripts_and_comments_are_skipped_whole() {
        let doc = "<!-- <a class=x> --><script>if (a<b) { x = '</div>'; }</script><b>";
        let names: Vec<String> =
            std::iter::successors(next_tag(doc, 0), |t| next_tag(doc, t.end)).map(|t| t.name).collect();
        assert_eq!(names, ["!--", "script", "b"]);
    }

    #[test]
    fn text_drops_tags_decodes_entities_and_collapses_whitespace() {
        let s = "Rust <b>is</b>\n  fast &amp; safe&nbsp;&#39;&#x27;&lt;T&gt; &#8212; a < b &bogus; x<br>y";
        assert_eq!(text(s), "Rust is fast & safe ''<T> \u{2014} a < b &bogus; x y");
    }

    #[test]
    fn an_unterminated_tag_is_kept_as_text() {
        assert_eq!(text("a <b"), "a <b");
        assert!(next_tag("<a href=\"x", 0).is_none());
    }
}
