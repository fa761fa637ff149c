//! Splitting a WORKFLOW.md into its YAML front matter and its prompt body, by byte ranges, so that
//! readers and the editor agree on where each part starts and the body can be kept byte-for-byte.

/// Where the parts of a workflow file are, as byte ranges into the file's text.
///
/// The file is: an opening `---` line, the YAML lines, a closing `---` line, then the body. A UTF-8
/// byte-order mark before the opening line is allowed. Delimiter lines may carry trailing spaces and
/// may end in `\n` or `\r\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter {
    /// The YAML between the delimiter lines (every line with its terminator).
    pub yaml: std::ops::Range<usize>,
    /// Everything after the closing delimiter line, as written.
    pub body_start: usize,
    /// 1-based line of the file on which the YAML's first line sits (2, after the opening `---`).
    pub yaml_first_line: usize,
    /// 1-based line of the file on which the body starts.
    pub body_first_line: usize,
}

/// Why a text has no usable front matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// The first line is not `---`.
    Missing,
    /// The opening `---` has no closing `---` line.
    Unclosed,
}

/// Finds the front matter of `text`.
pub fn split(text: &str) -> Result<FrontMatter, SplitError> {
    let start = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut lines = LineIter { text, pos: start };
    let (first, _) = lines.next().ok_or(SplitError::Missing)?;
    if !is_delimiter(first) {
        return Err(SplitError::Missing);
    }
    let yaml_start = lines.pos;
    let mut line_no = 1;
    while let Some((line, line_start)) = lines.next() {
        line_no += 1;
        if is_delimiter(line) {
            return Ok(FrontMatter {
                yaml: yaml_start..line_start,
                body_start: lines.pos,
                yaml_first_line: 2,
                body_first_line: line_no + 1,
            });
        }
    }
    Err(SplitError::Unclosed)
}

fn is_delimiter(line: &str) -> bool {
    line.trim_end_matches([' ', '\t', '\r']) == "---"
}

/// Lines without their `\n`, each with its start offset.
struct LineIter<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = (&'a str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.text[start..];
        let (line, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        self.pos += advance;
        Some((line, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_yaml_and_body_by_bytes() {
        let text = "---\na: 1\n---\nbody\n";
        let fm = split(text).unwrap();
        assert_eq!(&text[fm.yaml.clone()], "a: 1\n");
        assert_eq!(&text[fm.body_start..], "body\n");
        assert_eq!(fm.body_first_line, 4);
    }

    #[test]
    fn accepts_crlf_bom_and_trailing_spaces_on_delimiters() {
        let text = "\u{feff}---  \r\na: 1\r\n--- \r\n\r\nbody";
        let fm = split(text).unwrap();
        assert_eq!(&text[fm.yaml.clone()], "a: 1\r\n");
        assert_eq!(&text[fm.body_start..], "\r\nbody");
    }

    #[test]
    fn empty_front_matter_and_empty_body() {
        let text = "---\n---\n";
        let fm = split(text).unwrap();
        assert!(fm.yaml.is_empty());
        assert_eq!(fm.body_start, text.len());
    }

    #[test]
    fn missing_and_unclosed() {
        assert_eq!(split("hello\n---\n"), Err(SplitError::Missing));
        assert_eq!(split(""), Err(SplitError::Missing));
        assert_eq!(split("---\na: 1\n"), Err(SplitError::Unclosed));
        // A `----` line is not a delimiter.
        assert_eq!(split("---\na: 1\n----\n"), Err(SplitError::Unclosed));
    }
}
