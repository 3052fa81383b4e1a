//! Type detection: what the bytes are, whatever the file is called.

use super::{ImageFormat, Rejection};
use crate::portrait::formats::find;
use crate::portrait::formats::png::SIGNATURE as PNG_SIGNATURE;

pub(super) fn sniff(bytes: &[u8]) -> Result<ImageFormat, Rejection> {
    // infer knows no SVG (it calls an XML prolog "text/xml" and bare `<svg` nothing at all), and
    // SVG is the type players most often try, so markup is recognised first.
    match sniff_markup(bytes) {
        Some(Markup::Svg) => {
            return Err(Rejection::UnsupportedFormat {
                format: "SVG",
                description: "an SVG drawing",
            })
        }
        Some(Markup::Html) => {
            return Err(Rejection::NotAnImage {
                looks_like: Some("an HTML page"),
            })
        }
        Some(Markup::Xml) => {
            return Err(Rejection::NotAnImage {
                looks_like: Some("an XML document"),
            })
        }
        None => {}
    }

    // A PNG whose signature was mangled (by a text-mode transfer, typically) still has its
    // IHDR chunk in place; calling it "not an image" would send the player looking for the
    // wrong problem.
    if bytes.get(12..16) == Some(b"IHDR") && !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(Rejection::corrupt(
            ImageFormat::Png,
            "damaged PNG signature",
        ));
    }

    let Some(kind) = infer::get(bytes) else {
        return Err(Rejection::NotAnImage {
            looks_like: looks_like_text(bytes).then_some("text"),
        });
    };
    match kind.mime_type() {
        "image/png" => Ok(ImageFormat::Png),
        "image/jpeg" => Ok(ImageFormat::Jpeg),
        "image/gif" => Ok(ImageFormat::Gif),
        "image/webp" => Ok(ImageFormat::Webp),
        mime => {
            if kind.matcher_type() == infer::MatcherType::Image {
                let (format, description) = describe_image_type(mime, kind.extension());
                Err(Rejection::UnsupportedFormat {
                    format,
                    description,
                })
            } else {
                Err(Rejection::NotAnImage {
                    looks_like: describe_other_type(kind.matcher_type(), mime),
                })
            }
        }
    }
}

fn describe_image_type(mime: &str, extension: &'static str) -> (&'static str, &'static str) {
    match mime {
        "image/bmp" => ("BMP", "a BMP image"),
        "image/tiff" => ("TIFF", "a TIFF image"),
        "image/heif" => ("HEIC", "a HEIC/HEIF photo"),
        "image/avif" => ("AVIF", "an AVIF image"),
        "image/jxl" => ("JPEG XL", "a JPEG XL image"),
        "image/jp2" => ("JPEG 2000", "a JPEG 2000 image"),
        "image/vnd.microsoft.icon" => ("ICO", "an icon file (ICO)"),
        "image/vnd.adobe.photoshop" => ("PSD", "a Photoshop document (PSD)"),
        "image/x-canon-cr2" => ("CR2", "a camera RAW file"),
        "image/vnd.ms-photo" => ("JPEG XR", "a JPEG XR image"),
        _ => (extension, "an image type the bot cannot store"),
    }
}

fn describe_other_type(matcher: infer::MatcherType, mime: &str) -> Option<&'static str> {
    use infer::MatcherType;
    match (matcher, mime) {
        (_, "application/pdf") => Some("a PDF document"),
        (_, "text/html") => Some("an HTML page"),
        (_, "text/xml") => Some("an XML document"),
        (MatcherType::Text, _) => Some("text"),
        (MatcherType::Video, _) => Some("a video"),
        (MatcherType::Audio, _) => Some("an audio file"),
        (MatcherType::Archive, _) => Some("an archive"),
        (MatcherType::Doc | MatcherType::Book, _) => Some("a document"),
        (MatcherType::App, _) => Some("a program"),
        (MatcherType::Font, _) => Some("a font"),
        _ => None,
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    // A cut in the middle of a multi-byte character is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    Svg,
    Html,
    Xml,
}

/// Classifies markup by its root element, skipping what may precede it (BOM, whitespace, XML
/// declaration, comments, processing instructions, DOCTYPE), so an HTML page that merely
/// contains an inline `<svg>` is still called HTML.
fn sniff_markup(bytes: &[u8]) -> Option<Markup> {
    let head = &bytes[..bytes.len().min(8192)];
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let mut saw_prolog = false;
    loop {
        rest = trim_ascii_start(rest);
        if !rest.starts_with(b"<") {
            // Leading text is not markup; a prolog cut short by the 8 KiB window still is.
            return (saw_prolog && rest.is_empty()).then_some(Markup::Xml);
        }
        let skip_to = if rest.starts_with(b"<?") {
            find(rest, b"?>").map(|end| end + 2)
        } else if rest.starts_with(b"<!--") {
            find(rest, b"-->").map(|end| end + 3)
        } else if starts_with_ignore_case(rest, b"<!DOCTYPE") {
            if starts_with_ignore_case(trim_ascii_start(&rest[9..]), b"html") {
                return Some(Markup::Html);
            }
            doctype_end(rest)
        } else {
            let name: Vec<u8> = rest[1..]
                .iter()
                .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'))
                .map(u8::to_ascii_lowercase)
                .collect();
            let local = name.rsplit(|&b| b == b':').next().unwrap_or_default();
            return match local {
                b"svg" => Some(Markup::Svg),
                b"html" | b"head" | b"body" => Some(Markup::Html),
                _ if name.is_empty() => None,
                _ if saw_prolog => Some(Markup::Xml),
                _ => None,
            };
        };
        saw_prolog = true;
        match skip_to {
            Some(end) => rest = &rest[end..],
            None => return Some(Markup::Xml),
        }
    }
}

/// End of a `<!DOCTYPE …>` declaration, which may carry an internal subset in brackets.
fn doctype_end(decl: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in decl.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn trim_ascii_start(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !first.is_ascii_whitespace() {
            break;
        }
        bytes = rest;
    }
    bytes
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}
