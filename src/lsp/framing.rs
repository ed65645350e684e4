//! The base protocol's framing on a byte stream: `Content-Length: N`
//! headers, a blank line, then N bytes of JSON.
//!
//! Nothing here trusts the client with memory: a header line is read up to
//! [`MAX_HEADER_LINE`] bytes, a message has at most [`MAX_HEADERS`] headers,
//! and a body is read only when it is at most [`MAX_MESSAGE`] bytes; a
//! longer one is streamed away through a small buffer, never allocated.
//! Every failure is a [`Frame`] the caller answers, never a panic.

use std::io::{BufRead, Read};

/// The largest message body read (64 MiB; a program of that size is
/// already far beyond anything an editor sends).
pub const MAX_MESSAGE: u64 = 64 << 20;

/// The longest header line (`Content-Length: 67108864` is 24 bytes).
pub const MAX_HEADER_LINE: u64 = 8 << 10;

/// The most headers one message may have (the protocol defines two).
pub const MAX_HEADERS: usize = 32;

/// One step of reading the stream.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A message's body, not yet parsed.
    Body(Vec<u8>),
    /// A message whose body (of this many bytes) is over [`MAX_MESSAGE`]:
    /// answer it, then [`skip`] the body and go on.
    TooLarge(u64),
    /// The stream cannot be followed past this point (a header that does
    /// not end, is not a header, or gives no usable length; the input
    /// ended inside a message): answer the reason and stop.
    Broken(String),
    /// The input ended between messages.
    End,
}

/// Reads the next message from `r`.
pub fn read(r: &mut impl BufRead) -> Frame {
    let mut length: Option<u64> = None;
    let mut line = Vec::new();
    for count in 0.. {
        if count > MAX_HEADERS {
            return Frame::Broken(format!(
                "a message has more than {MAX_HEADERS} header lines"
            ));
        }
        line.clear();
        // One byte past the limit tells a line at the limit from a longer one.
        let read = r
            .by_ref()
            .take(MAX_HEADER_LINE + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) if count == 0 => return Frame::End,
            Ok(0) => return Frame::Broken("the input ended inside a message's header".into()),
            Ok(_) => {}
            Err(e) => return Frame::Broken(format!("cannot read the input: {e}")),
        }
        if !line.ends_with(b"\n") {
            return if line.len() as u64 > MAX_HEADER_LINE {
                Frame::Broken(format!(
                    "a header line is longer than {} KiB",
                    MAX_HEADER_LINE >> 10
                ))
            } else {
                Frame::Broken("the input ended inside a message's header".into())
            };
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim_end_matches('\n').trim_end_matches('\r'),
            Err(_) => return Frame::Broken("a header line is not UTF-8 text".into()),
        };
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Frame::Broken(format!("`{}` is not a header", shortened(text)));
        };
        if name.trim().eq_ignore_ascii_case("Content-Length") {
            let value = value.trim();
            match value.parse::<u64>() {
                Ok(n) => length = Some(n),
                Err(_) => {
                    return Frame::Broken(format!(
                        "Content-Length `{}` is not a number of bytes",
                        shortened(value)
                    ))
                }
            }
        }
    }
    let Some(length) = length else {
        return Frame::Broken("a message has no Content-Length header".into());
    };
    if length > MAX_MESSAGE {
        return Frame::TooLarge(length);
    }
    // At most MAX_MESSAGE bytes; the vector grows with what actually came.
    let mut body = Vec::new();
    match r.by_ref().take(length).read_to_end(&mut body) {
        Ok(n) if n as u64 == length => Frame::Body(body),
        Ok(n) => Frame::Broken(format!(
            "the input ended inside a message ({n} of its {length} bytes)"
        )),
        Err(e) => Frame::Broken(format!("cannot read the input: {e}")),
    }
}

/// Reads past `length` bytes through io::copy's small buffer; whether
/// they were all there.
pub fn skip(r: &mut impl BufRead, length: u64) -> bool {
    let skipped = std::io::copy(&mut r.by_ref().take(length), &mut std::io::sink());
    matches!(skipped, Ok(n) if n == length)
}

/// At most 40 characters of a client's text, for a message.
fn shortened(text: &str) -> String {
    let mut s: String = text.chars().take(40).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}
