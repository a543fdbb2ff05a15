//! The `.env` format, read as the apps' own loaders read it, so that a move off `.env` keeps the
//! values the app saw: `NAME=value` lines, `export NAME=value`, `# comments`, unquoted values,
//! single quotes (taken as they are), double quotes (escapes, newlines inside), empty values,
//! and variables (`$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`) from earlier lines.
//!
//! No I/O; values come out as secrets: a `.env` file is full of them. An error names the line,
//! the variable it belongs to and a fixed reason, never text of a value (see [`Problem`]).
//!
//! # Where the common loaders agree, envoke does the same
//!
//! As python-dotenv, Node's dotenv, dotenvy, docker compose and Ruby's dotenv do (issue 20 lists
//! these cases), envoke: skips a UTF-8 byte-order mark at the start; takes `export` followed by
//! any blank (space or tab) before the name; gives an empty value for `X=   # fill me in`; starts
//! a comment at a `#` after a space or a tab in an unquoted value (`a=b<TAB>#c` is `b`); ends a
//! line at `\r\n`, `\n` or a lone `\r`; trims blanks around `=` and around an unquoted value;
//! reads `\n \r \t \\ \"` in double quotes (any other `\x` stays as written); lets single and
//! double quotes run over several lines; refuses text after a closing quote other than a comment;
//! keeps the last value of a name given twice (at the place it was first given, as a dictionary
//! does).
//!
//! # Variables
//!
//! With [`Expand::Variables`] (the default of `envoke import`), in unquoted and double-quoted
//! values, never in single-quoted ones:
//!
//! | form               | gives                                                        |
//! |--------------------|--------------------------------------------------------------|
//! | `$NAME`, `${NAME}` | the value NAME had on an earlier line                        |
//! | `${NAME:-default}` | that value, or `default` when NAME is unset or empty         |
//! | `${NAME-default}`  | that value, or `default` when NAME is unset                  |
//! | `\$`, `$$`         | a `$`                                                        |
//! | `$` before anything else (`$1`, `$ `, a `$` at the end) | a `$`                  |
//! | `$(...)`           | an error: a command is never run                             |
//! | `${NAME:?x}`, `${NAME:+x}`, ... | an error: a form envoke does not read           |
//!
//! Only EARLIER lines count, with the value the name had at that point; a later line does not.
//! A name the file does not define before it (and with no default form) is an error, where the
//! loaders would take it from the environment of the process that loads the file, or use an empty
//! string: envoke deliberately does not read its own environment, because the importer's shell is
//! not the app's (a laptop's `$HOME` or `$USER` baked into a production secret is worse than
//! stopping). The error names `${NAME}` when written with braces; a bare `$name` is named only by
//! its column, since a bare `$` is commonly part of a password and its "name" then is value text.
//!
//! A default may hold `$NAME` and `${NAME}` references, expanded the same way, but not another
//! default form (`${A:-${B:-c}}` is an error when the default is used): one level keeps the
//! reader simple and its recursion bounded. A default is read only when it is used.
//!
//! With [`Expand::Off`] (`--no-expand`, Node's behaviour), `$` has no meaning: `$NAME`, `$$`,
//! `\$` and `$(` stay as written, in every kind of value.
//!
//! # Where the common loaders disagree: the majority, and envoke
//!
//! | case                   | python-dotenv | Node    | dotenvy  | compose   | Ruby     | envoke |
//! |------------------------|---------------|---------|----------|-----------|----------|--------|
//! | bare `$NAME`           | text          | text    | value    | value     | value    | value  |
//! | `${NAME}` in `'...'`   | value         | text    | text     | text      | text     | text   |
//! | NAME not defined above | env./""       | text    | env./""  | env./""   | env./""  | error  |
//! | `a=b#c`                | `b#c`         | `b`     | `b#c`    | `b#c`     | `b`      | `b#c`  |
//! | `'a\'b'`               | `a'b`         | `a\'b`  | error    | `a\'b`    | `a\'b`   | `a\'b` |
//! | line break in quotes   | as written    | `\n`    | —        | `\n`      | `\n`     | `\n`   |
//! | `NAME` alone, no `=`   | no value      | skipped | error    | from env. | skipped  | error  |
//!
//! ("env./\"\"": from the loading process's environment, else empty.)
//!
//! python-dotenv expands only `${NAME}` and `${NAME:-default}`; envoke reads the union that
//! docker compose, dotenvy and Ruby's dotenv read (issue 20). `$$` is docker compose's escape,
//! `\$` that of dotenvy and Ruby's dotenv. python-dotenv's behaviour above was tried (1.2.4);
//! the others' is read from their parsers and tests ("—": not checked). Node's dotenv expands
//! nothing (that is the separate dotenv-expand).

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::manifest::is_variable_name;

/// Whether `$` references in values are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expand {
    /// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}` from earlier lines (the
    /// loaders' default).
    Variables,
    /// `$` is text like any other (`--no-expand`; Node's dotenv).
    Off,
}

/// The variables of a `.env` file.
#[derive(Debug)]
pub struct Parsed {
    /// In order; a name given twice keeps its last value, at the place of its first.
    pub variables: Vec<(String, SecretString)>,
    /// The names (in the order of `variables`) whose value had at least one `$` reference
    /// expanded; `$$` and `\$` do not count.
    pub expanded: Vec<String>,
}

/// Why a `.env` file cannot be read. Names the line, never shows a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct DotenvError {
    /// The line the problem is on, counted from 1 as editors count.
    pub line: usize,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a line. Every variant holds fixed text and names, never value text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line is not `NAME=value`.
    #[error("{0}")]
    Line(&'static str),
    /// The value of `variable` cannot be read.
    #[error("{variable} has {reason}")]
    Value {
        /// The variable the value belongs to.
        variable: String,
        /// What is wrong; fixed text.
        reason: &'static str,
    },
    /// `${reference}` names a variable the file does not define above.
    #[error(
        "{variable} uses ${{{reference}}}, which the file does not define before it; the app \
         would take it from its own environment at run time: define it above, or import with \
         --no-expand to keep the text"
    )]
    Undefined {
        /// The variable the value belongs to.
        variable: String,
        /// The name inside `${...}`.
        reference: String,
    },
    /// A bare `$name` names a variable the file does not define above. The name is not shown:
    /// a bare `$` is often part of a password, and the "name" after it then is a piece of it.
    #[error(
        "{variable} uses `$` and a name at column {column}, which the file does not define \
         before it; the app would take it from its own environment at run time: define it \
         above, put the value in single quotes if the `$` is part of it, or import with \
         --no-expand to keep the text"
    )]
    UndefinedBare {
        /// The variable the value belongs to.
        variable: String,
        /// Where the `$` is on the line, in characters from 1.
        column: usize,
    },
}

const NO_EQUALS: &str = "no `=`: expected NAME=value";
const NOT_A_NAME: &str = "the name is not a variable name (letters, digits and `_`)";
const NEVER_CLOSED: &str = "a quote that is never closed";
const AFTER_QUOTE: &str = "text after its closing quote";
const COMMAND: &str = "a command substitution `$(...)`, which envoke never runs: put the value \
                       in single quotes if it is text, or import with --no-expand to keep it";
const BRACE_NEVER_CLOSED: &str = "a `${` that is never closed";
const BRACE_NO_NAME: &str = "a `${...}` without a variable name in it";
const BRACE_FORM: &str = "a `${...}` form envoke does not read (it reads `${NAME}`, \
                          `${NAME:-default}` and `${NAME-default}`)";
const NESTED_DEFAULT: &str = "a default inside a default, which envoke does not read";

/// The blanks around `=`, before a comment and after `export`.
const BLANKS: [char; 2] = [' ', '\t'];

/// The variables of a `.env` file, with `$` references expanded or not.
pub fn parse(text: &str, expand: Expand) -> Result<Parsed, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut file = Variables::default();
    let mut lines = split_lines(text)
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    while let Some((number, line)) = lines.next() {
        let line_error = |reason| DotenvError {
            line: number,
            problem: Problem::Line(reason),
        };
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let (name, rest) = without_export(content)
            .split_once('=')
            .ok_or(line_error(NO_EQUALS))?;
        let name = name.trim_end();
        if !is_variable_name(name) {
            return Err(line_error(NOT_A_NAME));
        }
        let value_error = |line, reason| DotenvError {
            line,
            problem: Problem::Value {
                variable: name.to_owned(),
                reason,
            },
        };
        let after = rest.trim_start_matches(BLANKS);
        let (value, expanded) = match after.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let mut body = Zeroizing::new(String::from(&after[1..]));
                let mut last_line = number;
                // A quoted value may go on over the following lines until its closing quote.
                // Each line is scanned once: a line break ends any escape, so the scan of a new
                // line starts afresh at its line break.
                let mut scanned = 0;
                loop {
                    if let Some(end) = closing_quote(&body[scanned..], quote).map(|e| e + scanned) {
                        if !trailing_is_comment(&body[end + 1..]) {
                            return Err(value_error(last_line, AFTER_QUOTE));
                        }
                        body.truncate(end);
                        break;
                    }
                    let (next_number, next) = lines
                        .next()
                        .ok_or_else(|| value_error(number, NEVER_CLOSED))?;
                    last_line = next_number;
                    scanned = body.len();
                    body.push('\n');
                    body.push_str(next);
                }
                if quote == '\'' {
                    (body, false)
                } else {
                    Expander::new(&file, name, expand, Quoting::Double, &body)
                        .at(number, column_of(line, offset_in(line, after)) + 1)
                        .value()?
                }
            }
            _ => {
                let raw = match comment_start(rest) {
                    Some(comment) => &rest[..comment],
                    None => rest,
                }
                .trim();
                Expander::new(&file, name, expand, Quoting::Unquoted, raw)
                    .at(number, column_of(line, offset_in(line, raw)))
                    .value()?
            }
        };
        file.set(
            name,
            SecretString::from(value.as_str().to_owned()),
            expanded,
        );
    }
    Ok(file.into_parsed())
}

/// The variables read so far: what a `$` reference sees.
#[derive(Default)]
struct Variables {
    list: Vec<(String, SecretString)>,
    expanded: Vec<bool>,
    index: HashMap<String, usize>,
}

impl Variables {
    fn set(&mut self, name: &str, value: SecretString, expanded: bool) {
        if let Some(&at) = self.index.get(name) {
            self.list[at].1 = value;
            self.expanded[at] = expanded;
        } else {
            self.index.insert(name.to_owned(), self.list.len());
            self.list.push((name.to_owned(), value));
            self.expanded.push(expanded);
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        let at = *self.index.get(name)?;
        Some(self.list[at].1.expose_secret())
    }

    fn into_parsed(self) -> Parsed {
        let expanded = self
            .list
            .iter()
            .zip(&self.expanded)
            .filter(|(_, expanded)| **expanded)
            .map(|((name, _), _)| name.clone())
            .collect();
        Parsed {
            variables: self.list,
            expanded,
        }
    }
}

/// The lines of `text`, each ended by `\r\n`, `\n` or a lone `\r` (old Mac files).
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(end) = rest.find(['\r', '\n']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..end];
        let ending = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + ending..];
        Some(line)
    })
}

/// `content` without a leading `export` and the blanks after it; `export=1` and `export =1`
/// define a variable named `export`, as in the loaders.
fn without_export(content: &str) -> &str {
    match content.strip_prefix("export") {
        Some(after) if after.starts_with(BLANKS) => {
            let after = after.trim_start_matches(BLANKS);
            if after.starts_with('=') {
                content
            } else {
                after
            }
        }
        _ => content,
    }
}

/// Where a comment starts in an unquoted value (the text after `=`): at a `#` after a blank.
fn comment_start(rest: &str) -> Option<usize> {
    rest.match_indices('#')
        .map(|(at, _)| at)
        .find(|&at| rest[..at].ends_with(BLANKS))
}

/// The byte offset of `part`, a slice of `line`, in `line`.
fn offset_in(line: &str, part: &str) -> usize {
    part.as_ptr() as usize - line.as_ptr() as usize
}

/// The column (in characters, from 1) of the byte offset `at` on `line`.
fn column_of(line: &str, at: usize) -> usize {
    line[..at].chars().count() + 1
}

/// The byte offset of the quote that closes `body`: a quote after a backslash does not close
/// (in single quotes too, as docker compose, Node's and Ruby's dotenv read `'a\'b'`).
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (offset, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == quote && !escaped => return Some(offset),
            _ => escaped = false,
        }
    }
    None
}

fn trailing_is_comment(rest: &str) -> bool {
    let rest = rest.trim_start();
    rest.is_empty() || rest.starts_with('#')
}

/// The kind of value being read: it decides which escapes there are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Only `\$` (when expanding); any other backslash is text.
    Unquoted,
    /// `\n \r \t \\ \"`, and `\$` when expanding; any other backslash is text.
    Double,
}

/// Reads one unquoted or double-quoted value: its escapes and its `$` references.
struct Expander<'a> {
    file: &'a Variables,
    variable: &'a str,
    expand: bool,
    quoting: Quoting,
    /// The value as written (between the quotes, line breaks as `\n`).
    body: &'a str,
    /// The line and column the body starts at, to say where a reference is.
    line: usize,
    column: usize,
    /// Whether a `$` reference was expanded.
    expanded: bool,
}

impl<'a> Expander<'a> {
    fn new(
        file: &'a Variables,
        variable: &'a str,
        expand: Expand,
        quoting: Quoting,
        body: &'a str,
    ) -> Self {
        Expander {
            file,
            variable,
            expand: expand == Expand::Variables,
            quoting,
            body,
            line: 0,
            column: 0,
            expanded: false,
        }
    }

    fn at(self, line: usize, column: usize) -> Self {
        Expander {
            line,
            column,
            ..self
        }
    }

    /// The value, and whether a `$` reference was expanded in it.
    fn value(mut self) -> Result<(Zeroizing<String>, bool), DotenvError> {
        let mut out = Zeroizing::new(String::with_capacity(self.body.len()));
        self.read(0, self.body.len(), false, &mut out)?;
        Ok((out, self.expanded))
    }

    /// Reads `body[at..end]` into `out`; `in_default` when that is the default of a `${...}`.
    fn read(
        &mut self,
        mut at: usize,
        end: usize,
        in_default: bool,
        out: &mut String,
    ) -> Result<(), DotenvError> {
        while let Some(c) = self.body[at..end].chars().next() {
            at = match c {
                '\\' => self.escape(at, end, out),
                '$' if self.expand => self.reference(at, end, in_default, out)?,
                c => {
                    out.push(c);
                    at + c.len_utf8()
                }
            };
        }
        Ok(())
    }

    /// Reads the backslash at `at`; returns where reading goes on.
    fn escape(&self, at: usize, end: usize, out: &mut String) -> usize {
        let escaped = match (self.quoting, self.body[at + 1..end].chars().next()) {
            (Quoting::Double, Some('n')) => '\n',
            (Quoting::Double, Some('r')) => '\r',
            (Quoting::Double, Some('t')) => '\t',
            (Quoting::Double, Some(c @ ('"' | '\\'))) => c,
            (_, Some('$')) if self.expand => '$',
            _ => {
                out.push('\\');
                return at + 1;
            }
        };
        out.push(escaped);
        at + 2
    }

    /// Reads the `$` at `at`; returns where reading goes on.
    fn reference(
        &mut self,
        at: usize,
        end: usize,
        in_default: bool,
        out: &mut String,
    ) -> Result<usize, DotenvError> {
        let after = &self.body[at + 1..end];
        match after.bytes().next() {
            Some(b'$') => {
                out.push('$');
                Ok(at + 2)
            }
            Some(b'(') => Err(self.value_error(at, COMMAND)),
            Some(b'{') => self.braced(at, end, in_default, out),
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let name = &after[..name_length(after)];
                let value = self.file.get(name).ok_or_else(|| {
                    let (line, column) = self.position(at);
                    DotenvError {
                        line,
                        problem: Problem::UndefinedBare {
                            variable: self.variable.to_owned(),
                            column,
                        },
                    }
                })?;
                out.push_str(value);
                self.expanded = true;
                Ok(at + 1 + name.len())
            }
            _ => {
                out.push('$');
                Ok(at + 1)
            }
        }
    }

    /// Reads the `${...}` whose `$` is at `at`; returns where reading goes on.
    fn braced(
        &mut self,
        at: usize,
        end: usize,
        in_default: bool,
        out: &mut String,
    ) -> Result<usize, DotenvError> {
        let name_start = at + 2;
        let inside = &self.body[name_start..end];
        let name = &inside[..name_length(inside)];
        let form = &inside[name.len()..];
        if form.is_empty() {
            return Err(self.value_error(at, BRACE_NEVER_CLOSED));
        }
        if !is_variable_name(name) {
            return Err(self.value_error(at, BRACE_NO_NAME));
        }
        let value = self.file.get(name);
        let default_start = name_start + name.len();
        let (default, unset_only) = if form.starts_with('}') {
            let value = value.ok_or_else(|| self.undefined(at, name))?;
            out.push_str(value);
            self.expanded = true;
            return Ok(default_start + 1);
        } else if form.starts_with(":-") {
            (default_start + 2, false)
        } else if form.starts_with('-') {
            (default_start + 1, true)
        } else {
            return Err(self.value_error(at, BRACE_FORM));
        };
        if in_default {
            return Err(self.value_error(at, NESTED_DEFAULT));
        }
        let close = self
            .closing_brace(default, end)
            .ok_or_else(|| self.value_error(at, BRACE_NEVER_CLOSED))?;
        match value {
            Some(value) if unset_only || !value.is_empty() => out.push_str(value),
            _ => self.read(default, close, true, out)?,
        }
        self.expanded = true;
        Ok(close + 1)
    }

    /// The `}` that closes a default starting at `from`: the first one that does not close a
    /// `${` opened inside the default. A backslash hides the character after it.
    fn closing_brace(&self, from: usize, end: usize) -> Option<usize> {
        let bytes = &self.body.as_bytes()[..end];
        let mut open = 0usize;
        let mut at = from;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' => at += 1,
                b'$' if bytes.get(at + 1) == Some(&b'{') => {
                    open += 1;
                    at += 1;
                }
                b'}' if open == 0 => return Some(at),
                b'}' => open -= 1,
                _ => {}
            }
            at += 1;
        }
        None
    }

    /// The line and column of the byte offset `at` of the body.
    fn position(&self, at: usize) -> (usize, usize) {
        let before = &self.body[..at];
        match before.rfind('\n') {
            None => (self.line, self.column + before.chars().count()),
            Some(break_at) => (
                self.line + before.matches('\n').count(),
                before[break_at + 1..].chars().count() + 1,
            ),
        }
    }

    fn value_error(&self, at: usize, reason: &'static str) -> DotenvError {
        DotenvError {
            line: self.position(at).0,
            problem: Problem::Value {
                variable: self.variable.to_owned(),
                reason,
            },
        }
    }

    fn undefined(&self, at: usize, reference: &str) -> DotenvError {
        DotenvError {
            line: self.position(at).0,
            problem: Problem::Undefined {
                variable: self.variable.to_owned(),
                reference: reference.to_owned(),
            },
        }
    }
}

/// The length of the run of name characters (`A-Z a-z 0-9 _`) `text` starts with.
fn name_length(text: &str) -> usize {
    text.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn values(text: &str, expand: Expand) -> Vec<(String, String)> {
        parse(text, expand)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .variables
            .into_iter()
            .map(|(k, v)| (k, v.expose_secret().to_owned()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Each case: what it shows, the file, the values the loaders give (see the module doc).
    #[test]
    fn reads_what_the_loaders_read() {
        let every_form = r#"
# a comment
export DB_PASSWORD=s3cr3t
PLAIN = spaced value   # trailing comment
EMPTY=
SINGLE='no $escapes \n here'
DOUBLE="line one\nline \"two\""
MULTI="first
second"
HASH=abc#def
REPEATED=1
REPEATED=2
"#;
        type Case = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            (
                "every form",
                every_form,
                &[
                    ("DB_PASSWORD", "s3cr3t"),
                    ("PLAIN", "spaced value"),
                    ("EMPTY", ""),
                    ("SINGLE", "no $escapes \\n here"),
                    ("DOUBLE", "line one\nline \"two\""),
                    ("MULTI", "first\nsecond"),
                    ("HASH", "abc#def"),
                    ("REPEATED", "2"),
                ],
            ),
            // Issue 20's cases.
            (
                "a variable from an earlier line",
                "HOST=db\nURL=postgres://${HOST}/app\n",
                &[("HOST", "db"), ("URL", "postgres://db/app")],
            ),
            ("only a comment", "X=   # fill me in\n", &[("X", "")]),
            ("a comment after a tab", "a=b\t#c\n", &[("a", "b")]),
            ("a byte-order mark", "\u{feff}A=1\n", &[("A", "1")]),
            ("export and a tab", "export\tNAME=1\n", &[("NAME", "1")]),
            ("lone CR", "A=1\rB=2\r", &[("A", "1"), ("B", "2")]),
            // The rest of the format.
            (
                "CRLF, in a quoted value too",
                "A=1\r\nB=\"x\r\ny\"\r\nC='p\rq'\r\n",
                &[("A", "1"), ("B", "x\ny"), ("C", "p\nq")],
            ),
            (
                "blanks around export, the name and =",
                "  export \t A \t= \t1 \t\n",
                &[("A", "1")],
            ),
            ("export as a name", "export=1\n", &[("export", "1")]),
            (
                "export as a name, spaced",
                "export =1\n",
                &[("export", "1")],
            ),
            ("a # glued to the value", "A=b#c\n", &[("A", "b#c")]),
            ("a # right after =", "A=#c\n", &[("A", "#c")]),
            ("a comment after a space", "A=b c #d\n", &[("A", "b c")]),
            (
                "comments after quotes",
                "A=\"x\" # c\nB='y'#c\n",
                &[("A", "x"), ("B", "y")],
            ),
            (
                "empty values",
                "A=\nB=\"\"\nC=''\n",
                &[("A", ""), ("B", ""), ("C", "")],
            ),
            (
                "multi-line single quotes",
                "A='multi\nline'\nB=2\n",
                &[("A", "multi\nline"), ("B", "2")],
            ),
            (
                "escapes in double quotes",
                r#"A="a\tb\nc\rd\\e\"f\$g\qh""#,
                &[("A", "a\tb\nc\rd\\e\"f$g\\qh")],
            ),
            (
                "backslashes in unquoted values are text, but for \\$",
                r"A=a\nb\\c\$d",
                &[("A", r"a\nb\\c$d")],
            ),
            (
                "a quote after a backslash does not close single quotes",
                r"A='a\'b'",
                &[("A", r"a\'b")],
            ),
            (
                "single quotes expand nothing",
                "H=x\nA='${H} $H \\$ $$ $(c)'\n",
                &[("H", "x"), ("A", "${H} $H \\$ $$ $(c)")],
            ),
            (
                "the last value, at the first place",
                "A=1\nB=2\nA=3\n",
                &[("A", "3"), ("B", "2")],
            ),
            // Expansion.
            (
                "every form of reference",
                "H=x\nE=\nA=$H\nB=${H}y\nC=\"$H-${H}\"\nD=${U:-d}\nF=${U-d}\n\
                 G=${E:-d}\nI=${E-d}\nJ=${H:-d}\nK=$H.$H\n",
                &[
                    ("H", "x"),
                    ("E", ""),
                    ("A", "x"),
                    ("B", "xy"),
                    ("C", "x-x"),
                    ("D", "d"),
                    ("F", "d"),
                    ("G", "d"),
                    ("I", ""),
                    ("J", "x"),
                    ("K", "x.x"),
                ],
            ),
            (
                "a $ that is not a reference",
                "A=$$\nB=\\$H\nC=\"\\$H\"\nD=a $ b $1 $\nE=\"$\"\n",
                &[
                    ("A", "$"),
                    ("B", "$H"),
                    ("C", "$H"),
                    ("D", "a $ b $1 $"),
                    ("E", "$"),
                ],
            ),
            (
                "the value at that point",
                "A=1\nA=${A}2\nA=$A-3\n",
                &[("A", "12-3")],
            ),
            (
                "a later line does not count",
                "A=${B:-none}\nB=2\n",
                &[("A", "none"), ("B", "2")],
            ),
            (
                "references in a default",
                "H=x\nA=${U:-$H/${H}}\nB=\"${U-{$H}}\"\nC=${U:-}\n",
                &[("H", "x"), ("A", "x/x"), ("B", "{x}"), ("C", "")],
            ),
            (
                "a default is read only when used",
                "H=x\nA=${H:-$(never)}\n",
                &[("H", "x"), ("A", "x")],
            ),
            (
                "text that is not ASCII around references",
                "H=ü\nA=é$H✓${H}\n",
                &[("H", "ü"), ("A", "éü✓ü")],
            ),
        ];
        for (what, text, expected) in cases {
            assert_eq!(
                values(text, Expand::Variables),
                pairs(expected),
                "{what}: {text:?}"
            );
        }
    }

    #[test]
    fn no_expand_keeps_every_dollar_as_written() {
        let text = "H=x\nA=$H ${H} $$ \\$ $(cmd) ${\nB=\"\\$H $H\\n\"\n";
        assert_eq!(
            values(text, Expand::Off),
            pairs(&[
                ("H", "x"),
                ("A", "$H ${H} $$ \\$ $(cmd) ${"),
                ("B", "\\$H $H\n")
            ])
        );
        assert!(parse(text, Expand::Off).unwrap().expanded.is_empty());
    }

    #[test]
    fn expanded_names_the_variables_with_a_reference() {
        let text = "H=x\nA=$H\nB=$$\nC=\\$H\nD=${U:-d}\nE='$H'\nA=plain\nF=\"${H}\"\n";
        assert_eq!(parse(text, Expand::Variables).unwrap().expanded, ["D", "F"]);
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        // (file, line, text the message has)
        let cases: &[(&str, usize, &str)] = &[
            ("A=1\nnot a line\n", 2, "no `=`: expected NAME=value"),
            ("1A=sk-live-9\n", 1, "the name is not a variable name"),
            (
                "A=\"sk-live-9\nB=2\n",
                1,
                "A has a quote that is never closed",
            ),
            (
                "A=\"sk-live-9\" y\n",
                1,
                "A has text after its closing quote",
            ),
            (
                "\nA='sk-\nlive-9' y\n",
                3,
                "A has text after its closing quote",
            ),
            (
                "URL=postgres://sk-live-9@${HOST}/app\n",
                1,
                "URL uses ${HOST}, which the file does not define before it; the app would take \
                 it from its own environment at run time: define it above, or import with \
                 --no-expand to keep the text",
            ),
            ("A=${B}\nB=sk-live-9\n", 1, "A uses ${B}, which"),
            (
                "P=sk-live-9$Secret\n",
                1,
                "P uses `$` and a name at column 12, which",
            ),
            (
                "P=\"sk-live-9\nab$Secret\"\n",
                2,
                "P uses `$` and a name at column 3,",
            ),
            ("P=é€$Secret\n", 1, "P uses `$` and a name at column 5,"),
            (
                "P=\"é\n€ab$Secret\"\n",
                2,
                "P uses `$` and a name at column 4,",
            ),
            (
                "A=sk-live-9$(cat /etc/passwd)\n",
                1,
                "A has a command substitution `$(...)`, which envoke never runs",
            ),
            (
                "A=1\n\nB=\"sk-live-9\n$(y)\"\n",
                4,
                "B has a command substitution",
            ),
            (
                "B=${HOST:?sk-live-9}\n",
                1,
                "B has a `${...}` form envoke does not read",
            ),
            (
                "B=${}sk-live-9\n",
                1,
                "B has a `${...}` without a variable name",
            ),
            (
                "B=${1sk-live-9}\n",
                1,
                "B has a `${...}` without a variable name",
            ),
            ("B=sk-live-9${A\n", 1, "B has a `${` that is never closed"),
            ("B=${U:-sk-live-9\n", 1, "B has a `${` that is never closed"),
            (
                "B=${U:-${V:-sk-live-9}}\n",
                1,
                "B has a default inside a default",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse(text, Expand::Variables).expect_err(text);
            let shown = error.to_string();
            assert_eq!(error.line, *line, "{text:?}: {shown}");
            assert!(
                shown.starts_with(&format!("line {line}: {message}")),
                "{text:?}: {shown}"
            );
            for secret in ["sk-live-9", "Secret", "passwd"] {
                assert!(!shown.contains(secret), "{text:?}: {shown}");
            }
        }
    }

    /// Text that holds no `$`, quote, backslash, `#`, brace or blank: a value that cannot be
    /// mistaken for syntax.
    const SECRET: &str = "[A-Za-z0-9!%&*+,./:;<=>?@^_~-]{12,24}";

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, Expand::Variables);
            let _ = parse(&text, Expand::Off);
        }

        #[test]
        fn parsing_never_panics_on_syntax(
            text in "\u{feff}?((export[ \t])?[A-Za-z]{1,2} ?= ?(\
                     [A-Z]{1,2}|\\$\\{[A-Z](:-|-|:\\?)?|\\$|\\{|\\}|:-|-|\\(|\"|'|\\\\|#| |\t|\
                     \n|\r|é){0,12}(\n|\r\n|\r)){1,6}"
        ) {
            let _ = parse(&text, Expand::Variables);
            let _ = parse(&text, Expand::Off);
        }

        #[test]
        fn an_error_never_shows_the_value(secret in SECRET) {
            let templates = [
                "A=\"{s}\" tail",
                "A=\"{s}",
                "A='{s}",
                "A={s}$(x)",
                "A={s}${UNDEFINED}",
                "A={s}$undefined{s}",
                "A=x$s{s}",
                "A={s}${",
                "A={s}${X:?{s}}",
                "A=${U:-${V:-{s}}}",
            ];
            for template in templates {
                let text = template.replace("{s}", &secret);
                let error = parse(&text, Expand::Variables).expect_err(&text).to_string();
                prop_assert!(!error.contains(&secret), "{}: {}", text, error);
            }
        }

        #[test]
        fn a_double_quoted_value_reads_back(value in "(\\PC|\n|\r|\t){0,40}") {
            let mut quoted = String::from("A=\"");
            for c in value.chars() {
                match c {
                    '\\' | '"' | '$' => {
                        quoted.push('\\');
                        quoted.push(c);
                    }
                    '\r' => quoted.push_str("\\r"),
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            prop_assert_eq!(values(&quoted, Expand::Variables), pairs(&[("A", &value)]));
        }

        #[test]
        fn a_single_quoted_value_reads_back(value in "[^'\\\\\r]{0,40}") {
            let text = format!("A='{value}'");
            for expand in [Expand::Variables, Expand::Off] {
                prop_assert_eq!(values(&text, expand), pairs(&[("A", &value)]));
            }
        }
    }
}
