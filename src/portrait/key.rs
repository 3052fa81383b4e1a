//! Object keys: `{env}/portraits/{yyyy}/{mm}/{hash}_{slug}.{ext}`.
//!
//! The hash is of the stored bytes, so retries and re-runs land on the same key; the slug only
//! makes keys readable in a bucket listing.

use chrono::{DateTime, Datelike, Utc};

use super::inspect::ImageFormat;

/// Longest slug kept in a key, in bytes (all ASCII).
pub const MAX_SLUG_LEN: usize = 50;
/// How many hex digits of the SHA-256 the key carries (64 bits: collisions are not a concern
/// at portrait scale, and the full digest is in the database).
pub const HASH_HEX_LEN: usize = 16;

/// The object key for a portrait.
pub fn portrait_key(
    env_prefix: &str,
    uploaded_at: DateTime<Utc>,
    sha256_hex: &str,
    character_name: &str,
    format: ImageFormat,
) -> String {
    let hash = &sha256_hex[..HASH_HEX_LEN.min(sha256_hex.len())];
    format!(
        "{env_prefix}/portraits/{:04}/{:02}/{hash}_{}.{}",
        uploaded_at.year(),
        uploaded_at.month(),
        slugify(character_name),
        format.extension()
    )
}

/// An ASCII slug: lowercase letters and digits separated by single dashes, common accented
/// Latin letters folded to their base letter, at most [`MAX_SLUG_LEN`] bytes, and `portrait`
/// when nothing is left.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len().min(MAX_SLUG_LEN));
    let mut pending_dash = false;
    for ch in name.chars().flat_map(fold_to_ascii) {
        if ch.is_ascii_alphanumeric() {
            if pending_dash && !slug.is_empty() {
                if slug.len() + 1 >= MAX_SLUG_LEN {
                    break;
                }
                slug.push('-');
            }
            pending_dash = false;
            if slug.len() >= MAX_SLUG_LEN {
                break;
            }
            slug.push(ch.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
    }
    if slug.is_empty() {
        "portrait".to_owned()
    } else {
        slug
    }
}

/// Folds a character to ASCII when it is a Latin letter with a diacritic; anything else
/// comes back unchanged (and, if not alphanumeric ASCII, becomes a separator).
fn fold_to_ascii(ch: char) -> impl Iterator<Item = char> {
    let folded: &'static str = match ch {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ă' | 'Ą' => "a",
        'æ' | 'Æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' | 'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "c",
        'ď' | 'đ' | 'Ď' | 'Đ' | 'ð' | 'Ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' | 'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "g",
        'ĥ' | 'ħ' | 'Ĥ' | 'Ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "i",
        'ĵ' | 'Ĵ' => "j",
        'ķ' | 'Ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' | 'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'Ñ' | 'Ń' | 'Ņ' | 'Ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "o",
        'œ' | 'Œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' | 'Ŕ' | 'Ŗ' | 'Ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'Ś' | 'Ŝ' | 'Ş' | 'Š' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'Ţ' | 'Ť' | 'Ŧ' => "t",
        'þ' | 'Þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "u",
        'ŵ' | 'Ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' | 'Ý' | 'Ÿ' | 'Ŷ' => "y",
        'ź' | 'ż' | 'ž' | 'Ź' | 'Ż' | 'Ž' => "z",
        _ => "",
    };
    let single = folded.is_empty().then_some(ch);
    folded.chars().chain(single)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_key_has_env_year_month_hash_slug_and_the_sniffed_extension() {
        let at = Utc.with_ymd_and_hms(2026, 3, 9, 23, 59, 0).unwrap();
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            portrait_key("prod", at, sha, "Zoë the Bold", ImageFormat::Jpeg),
            "prod/portraits/2026/03/0123456789abcdef_zoe-the-bold.jpg"
        );
    }

    #[test]
    fn slugs_are_ascii_dashed_and_never_empty() {
        assert_eq!(
            slugify("  Sir   Gawain, of Orkney!! "),
            "sir-gawain-of-orkney"
        );
        assert_eq!(slugify("Ærøskøbing Straße"), "aeroskobing-strasse");
        assert_eq!(slugify("龍の騎士"), "portrait");
        assert_eq!(slugify(""), "portrait");
        assert_eq!(slugify("../../etc/passwd"), "etc-passwd");
        assert_eq!(slugify("a—b"), "a-b");
    }

    #[test]
    fn slugs_stop_at_fifty_bytes_without_a_trailing_dash() {
        let long = "word ".repeat(40);
        let slug = slugify(&long);
        assert!(slug.len() <= MAX_SLUG_LEN, "{slug}");
        assert!(!slug.ends_with('-'), "{slug}");
        assert!(slug.is_ascii());
        let one_word = "x".repeat(200);
        assert_eq!(slugify(&one_word).len(), MAX_SLUG_LEN);
    }
}
