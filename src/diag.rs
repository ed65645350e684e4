//! Diagnostics: the one module that talks to ariadne.
//!
//! Every stage reports user errors as [`Diagnostic`] values (a stable code, a
//! message, labelled spans); only [`render`] turns them into text. Messages
//! speak the language of the program (names, shapes, dtypes), never of
//! compiler internals such as node ids.

use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};

use crate::span::Span;

/// The stable error codes. The number never changes once released; the
/// catalogue lives in grammar/README.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// E0001: a character that starts no token, or an unterminated string.
    BadCharacter,
    /// E0002: brackets or prefix operators nested beyond the limit.
    NestingTooDeep,
    /// E0003: a bracket that is never closed, or closed by the wrong kind.
    UnbalancedDelimiter,
    /// E0004: the parser expected something else.
    Syntax,
    /// E0100: a name that is not defined.
    UnknownName,
    /// E0101: a name defined twice in one scope.
    DuplicateDefinition,
    /// E0102: a call with the wrong number or names of arguments.
    Arity,
    /// E0103: an argument or setting of the wrong kind (a string where a number belongs, ...).
    BadArgument,
    /// E0200: shapes that do not broadcast, multiply or reshape together.
    ShapeMismatch,
    /// E0201: an axis out of range or repeated.
    BadAxis,
    /// E0202: a dtype that an operation does not accept.
    DTypeMismatch,
    /// E0203: a value that must be a scalar is not.
    NotScalar,
    /// E0300: a model that is declared wrongly (a parameter without an initializer, ...).
    BadModel,
    /// E0301: a train block that cannot run (unknown model or data, bad setting).
    BadRun,
    /// E0302: a declared width that contradicts the data.
    DataMismatch,
    /// E0400: a data source that cannot be read or described.
    BadData,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadCharacter => "E0001",
            Code::NestingTooDeep => "E0002",
            Code::UnbalancedDelimiter => "E0003",
            Code::Syntax => "E0004",
            Code::UnknownName => "E0100",
            Code::DuplicateDefinition => "E0101",
            Code::Arity => "E0102",
            Code::BadArgument => "E0103",
            Code::ShapeMismatch => "E0200",
            Code::BadAxis => "E0201",
            Code::DTypeMismatch => "E0202",
            Code::NotScalar => "E0203",
            Code::BadModel => "E0300",
            Code::BadRun => "E0301",
            Code::DataMismatch => "E0302",
            Code::BadData => "E0400",
        }
    }
}

/// One user-facing error. The first label is the primary one.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    pub labels: Vec<(Span, String)>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push((span, message.into()));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// The primary span, or an empty span at the start when there is none.
    pub fn span(&self) -> Span {
        self.labels.first().map(|l| l.0).unwrap_or_default()
    }

    /// Grows the primary label to end at `end` (used to merge runs of bad characters).
    pub fn extend_primary(&mut self, end: usize) {
        if let Some(first) = self.labels.first_mut() {
            first.0.end = end;
        }
    }
}

/// Renders diagnostics as ariadne reports against `src`, named `file`.
pub fn render(diagnostics: &[Diagnostic], file: &str, src: &str, color: bool) -> String {
    let mut out = Vec::new();
    // A span past the text, or inside a character, is moved out to the
    // nearest character boundary before it (a wrong offset from a caller
    // is still a readable diagnostic, never a panic in the renderer).
    let floor = |mut i: usize| {
        i = i.min(src.len());
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let clamp = |s: Span| floor(s.start)..floor(s.end).max(floor(s.start));
    for d in diagnostics {
        let primary = clamp(d.span());
        let mut report = Report::build(ReportKind::Error, (file, primary))
            .with_config(
                Config::new()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_code(d.code.as_str())
            .with_message(&d.message);
        // Labels in source order: ariadne starts a new group (headed by the
        // primary span's line, whichever lines it shows) whenever a label
        // goes back up the file.
        let mut by_place: Vec<usize> = (0..d.labels.len()).collect();
        by_place.sort_by_key(|&i| (d.labels[i].0.start, i));
        for (i, (span, msg)) in d.labels.iter().enumerate() {
            let order = by_place.iter().position(|&k| k == i).unwrap_or(i);
            let mut label = Label::new((file, clamp(*span))).with_message(msg);
            if color {
                let c = if i == 0 {
                    ariadne::Color::Red
                } else {
                    ariadne::Color::Blue
                };
                label = label.with_color(c);
            }
            report = report.with_label(label.with_order(order as i32));
        }
        for note in &d.notes {
            report = report.with_note(note);
        }
        // Writing into a Vec cannot fail; if ariadne ever did, fall back to
        // the plain message so the error is never lost.
        if report
            .finish()
            .write((file, Source::from(src)), &mut out)
            .is_err()
        {
            out.extend_from_slice(
                format!("error[{}]: {}\n", d.code.as_str(), d.message).as_bytes(),
            );
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A one-line message for errors without a source (bad flags, unreadable files).
pub fn one_line(code: Code, message: &str) -> String {
    format!("error[{}]: {message}", code.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_inside_a_character_or_past_the_text_still_renders() {
        let src = "let Å = 😀 + 1\n";
        for start in 0..src.len() + 3 {
            for end in start..src.len() + 4 {
                let d = Diagnostic::new(Code::Syntax, "here").label(Span::new(start, end), "this");
                let text = render(&[d], "t.dl", src, false);
                assert!(text.contains("here"), "{start}..{end}: {text}");
            }
        }
    }
}
