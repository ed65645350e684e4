//! The Python literals an `.npy` header is written in, read as
//! `ast.literal_eval` reads them (what `np.load` does): dicts, tuples,
//! lists, strings in either quote (adjacent ones joined), integers (signs,
//! `_` separators, `0x`/`0o`/`0b`, a Python 2 `L` when asked), `True`,
//! `False` and `None`; any spacing, comments, trailing commas. Invariant:
//! no input panics or recurses without bound; anything else is an error.

/// A parsed literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Str(String),
    /// An integer; `None` when it is beyond i128.
    Int(Option<i128>),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    /// Entries in order, a repeated key replaced where it first was (as a
    /// Python dict keeps the last value).
    Dict(Vec<(Lit, Lit)>),
}

/// Nesting deeper than this is refused (a header is a flat dict).
const MAX_DEPTH: usize = 32;

/// Parses `text` as one literal; `python2_longs` accepts `3L` (NumPy
/// does for version 1.0 and 2.0 headers).
pub fn parse(text: &str, python2_longs: bool) -> Result<Lit, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        longs: python2_longs,
    };
    let v = p.value(0)?;
    p.space();
    if p.i != p.s.len() {
        return Err(p.fail("text after the literal"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    longs: bool,
}

impl Parser<'_> {
    fn fail(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips spaces, tabs, newlines, comments and line continuations.
    fn space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.i += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                b'\\' if matches!(self.s.get(self.i + 1), Some(b'\n' | b'\r')) => self.i += 2,
                _ => break,
            }
        }
    }

    /// `c` after any space, consumed when there.
    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nesting too deep"));
        }
        self.space();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.dict(depth)
            }
            Some(b'(') => {
                self.i += 1;
                let (items, comma) = self.items(b')', depth)?;
                // `(x)` is x; `()`, `(x,)` and `(x, y)` are tuples.
                match (items.len(), comma) {
                    (1, false) => Ok(items.into_iter().next().unwrap_or(Lit::None)),
                    _ => Ok(Lit::Tuple(items)),
                }
            }
            Some(b'[') => {
                self.i += 1;
                Ok(Lit::List(self.items(b']', depth)?.0))
            }
            Some(b'\'' | b'"') => self.strings(),
            Some(b'+' | b'-' | b'0'..=b'9') => self.int(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    _ => {
                        self.i = start;
                        Err(self.fail("a name or string prefix that is not a literal"))
                    }
                }
            }
            Some(_) => Err(self.fail("an unexpected character")),
            None => Err(self.fail("the end of the header where a value belongs")),
        }
    }

    /// Comma-separated values up to `close`, and whether a comma followed
    /// the last one.
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Lit>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.eat(close) {
                return Ok((items, comma));
            }
            if !items.is_empty() && !comma {
                return Err(self.fail(&format!("expected `,` or `{}`", close as char)));
            }
            items.push(self.value(depth + 1)?);
            comma = self.eat(b',');
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Lit, String> {
        let mut entries: Vec<(Lit, Lit)> = Vec::new();
        let mut comma = true;
        loop {
            if self.eat(b'}') {
                return Ok(Lit::Dict(entries));
            }
            if !comma {
                return Err(self.fail("expected `,` or `}`"));
            }
            let key = self.value(depth + 1)?;
            if !self.eat(b':') {
                return Err(self.fail("expected `:` after a key (a set is not a header)"));
            }
            let value = self.value(depth + 1)?;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key, value)),
            }
            comma = self.eat(b',');
        }
    }

    /// One string, or several written side by side (joined, as Python
    /// joins them).
    fn strings(&mut self) -> Result<Lit, String> {
        let mut out = String::new();
        loop {
            out.push_str(&self.string()?);
            self.space();
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                return Ok(Lit::Str(out));
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let Some(q) = self.peek() else {
            return Err(self.fail("the end of the header"));
        };
        if self.s.get(self.i..self.i + 3) == Some(&[q, q, q]) {
            return Err(self.fail("a triple-quoted string, which no header holds"));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.fail("an unterminated string"));
            };
            self.i += 1;
            match c {
                _ if c == q => break,
                b'\n' => return Err(self.fail("a line break inside a string")),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.fail("an unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'\\' | b'\'' | b'"' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'\n' => {}
                        // Python keeps an unknown escape as written.
                        _ => out.extend([b'\\', e]),
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.fail("a string that is not UTF-8"))
    }

    fn int(&mut self) -> Result<Lit, String> {
        let negative = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                true
            }
            Some(b'+') => {
                self.i += 1;
                false
            }
            _ => false,
        };
        // One sign, then a number (`- 3` is allowed; `--3` is not).
        self.space();
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        let mut word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if self.longs {
            word = word
                .strip_suffix('L')
                .or_else(|| word.strip_suffix('l'))
                .unwrap_or(word);
        }
        let (radix, digits) = match word.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("0x") => (16, &word[2..]),
            Some("0o") => (8, &word[2..]),
            Some("0b") => (2, &word[2..]),
            _ => (10, word),
        };
        // Python: `_` only between digits; no leading zeros in a decimal
        // other than 0 itself.
        let well_formed = !digits.is_empty()
            && !digits.starts_with('_')
            && !digits.ends_with('_')
            && !digits.contains("__")
            && digits.chars().all(|c| c == '_' || c.is_digit(radix))
            && (radix != 10
                || !digits.starts_with('0')
                || digits.chars().all(|c| c == '0' || c == '_'));
        if !well_formed {
            self.i = start;
            return Err(self.fail("a malformed integer"));
        }
        let clean: String = digits.chars().filter(|c| *c != '_').collect();
        let v = i128::from_str_radix(&clean, radix)
            .ok()
            .map(|v| if negative { -v } else { v });
        Ok(Lit::Int(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Lit {
        Lit::Str(v.into())
    }

    #[test]
    fn headers_parse_as_python_reads_them() {
        let d = parse(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n",
            false,
        )
        .expect("parses");
        assert_eq!(
            d,
            Lit::Dict(vec![
                (s("descr"), s("<f4")),
                (s("fortran_order"), Lit::Bool(false)),
                (
                    s("shape"),
                    Lit::Tuple(vec![Lit::Int(Some(3)), Lit::Int(Some(4))])
                ),
            ])
        );
        let spaced = parse(
            "{ \"shape\" :(2 , 3,) ,# a comment\n 'fortran_order' : True, 'descr' : '<' 'f8',}",
            false,
        )
        .expect("parses");
        let Lit::Dict(e) = spaced else { panic!("dict") };
        assert_eq!(
            e[0].1,
            Lit::Tuple(vec![Lit::Int(Some(2)), Lit::Int(Some(3))])
        );
        assert_eq!(e[1].1, Lit::Bool(true));
        assert_eq!(e[2].1, s("<f8"));
        assert_eq!(parse("()", false), Ok(Lit::Tuple(vec![])));
        assert_eq!(parse("(3)", false), Ok(Lit::Int(Some(3))));
        assert_eq!(
            parse("(3,)", false),
            Ok(Lit::Tuple(vec![Lit::Int(Some(3))]))
        );
        assert_eq!(parse("1_000", false), Ok(Lit::Int(Some(1000))));
        assert_eq!(parse("0x10", false), Ok(Lit::Int(Some(16))));
        assert_eq!(parse("- 3", false), Ok(Lit::Int(Some(-3))));
        assert_eq!(parse("3L", true), Ok(Lit::Int(Some(3))));
        assert_eq!(
            parse("99999999999999999999999999999999999999999", false),
            Ok(Lit::Int(None))
        );
        // Python keeps the last of a repeated key.
        assert_eq!(
            parse("{'a': 1, 'a': 2}", false),
            Ok(Lit::Dict(vec![(s("a"), Lit::Int(Some(2)))]))
        );
    }

    #[test]
    fn what_python_refuses_is_an_error() {
        for bad in [
            "",
            "{",
            "{'a' 1}",
            "{'a': 1 'b': 2}",
            "(1,,)",
            "--3",
            "01",
            "3L",
            "1__0",
            "1_",
            "'abc",
            "{'a'}",
            "{1, 2}",
            "truE",
            "'''x'''",
            "{'a': 1}}",
            "[1, 2",
            "(1 2)",
        ] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
        let deep = "(".repeat(10_000);
        assert!(parse(&deep, false).is_err());
    }
}
