//! A small pretty-printer (Wadler's, flat-or-broken groups): the documents
//! `dlc fmt` builds, laid out within [`WIDTH`] columns. A group is flat
//! when it fits on what is left of its line, else broken; a comment kept
//! on its line never fits flat, so every group around it breaks.

/// The width a line is kept within, where it can be.
pub const WIDTH: usize = 100;

#[derive(Clone, Debug)]
pub(super) enum Doc {
    Text(String),
    /// A space, or a newline at the nesting's indentation.
    Line,
    /// Nothing, or a newline.
    SoftLine,
    /// Text printed only when the enclosing group breaks.
    IfBroken(String),
    /// In a broken group, a space when the next `n` columns still fit on
    /// the line, else a newline; a space when flat.
    FillLine(usize),
    Nest(usize, Box<Doc>),
    Group(Box<Doc>),
    Concat(Vec<Doc>),
    /// A source comment (its index and text) kept on its line: two spaces
    /// and its text. Nothing may follow it on the line, so it never fits
    /// flat and every group around it breaks; it stands just before a
    /// `Line` or `SoftLine` of its group.
    Comment(usize, String),
}

impl Doc {
    pub(super) fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }
    pub(super) fn concat(v: Vec<Doc>) -> Doc {
        Doc::Concat(v)
    }
    pub(super) fn nest(n: usize, d: Doc) -> Doc {
        Doc::Nest(n, Box::new(d))
    }
    pub(super) fn group(d: Doc) -> Doc {
        Doc::Group(Box::new(d))
    }

    /// Its width laid flat (`usize::MAX` with a comment inside: it cannot
    /// be).
    pub(super) fn flat_width(&self) -> usize {
        match self {
            Doc::Text(s) => s.chars().count(),
            Doc::Line | Doc::FillLine(_) => 1,
            Doc::SoftLine | Doc::IfBroken(_) => 0,
            Doc::Nest(_, d) | Doc::Group(d) => d.flat_width(),
            Doc::Concat(v) => v
                .iter()
                .fold(0, |w: usize, d| w.saturating_add(d.flat_width())),
            Doc::Comment(..) => usize::MAX,
        }
    }

    /// The indices of the source comments it prints.
    pub(super) fn comments(&self, out: &mut Vec<usize>) {
        match self {
            Doc::Comment(i, _) => out.push(*i),
            Doc::Nest(_, d) | Doc::Group(d) => d.comments(out),
            Doc::Concat(v) => v.iter().for_each(|d| d.comments(out)),
            Doc::Text(_) | Doc::Line | Doc::SoftLine | Doc::IfBroken(_) | Doc::FillLine(_) => {}
        }
    }
}

/// Lays `doc` out from column `col` (the line's indentation), each group
/// flat when it fits in what is left of [`WIDTH`], else broken.
pub(super) fn render(doc: &Doc, col: usize) -> String {
    let mut out = String::new();
    let mut column = col;
    // (indentation, flat, doc)
    let mut stack: Vec<(usize, bool, &Doc)> = vec![(col, false, doc)];
    while let Some((ind, flat, d)) = stack.pop() {
        match d {
            Doc::Text(s) => {
                out.push_str(s);
                column += s.chars().count();
            }
            Doc::Line | Doc::SoftLine if flat => {
                if matches!(d, Doc::Line) {
                    out.push(' ');
                    column += 1;
                }
            }
            Doc::Line | Doc::SoftLine => {
                out.push('\n');
                out.push_str(&" ".repeat(ind));
                column = ind;
            }
            Doc::IfBroken(s) => {
                if !flat {
                    out.push_str(s);
                    column += s.chars().count();
                }
            }
            Doc::FillLine(next) => {
                if flat || column + 1 + next <= WIDTH {
                    out.push(' ');
                    column += 1;
                } else {
                    out.push('\n');
                    out.push_str(&" ".repeat(ind));
                    column = ind;
                }
            }
            Doc::Nest(n, inner) => stack.push((ind + n, flat, inner)),
            Doc::Comment(_, text) => {
                out.push_str("  ");
                out.push_str(text);
                column += 2 + text.chars().count();
            }
            Doc::Group(inner) => {
                let fits = flat || column.saturating_add(inner.flat_width()) <= WIDTH;
                stack.push((ind, fits, inner));
            }
            Doc::Concat(v) => {
                for x in v.iter().rev() {
                    stack.push((ind, flat, x));
                }
            }
        }
    }
    // A broken group's last line may end in spaces: none is wanted.
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}
