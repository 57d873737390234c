//! Where a person goes back to after signing in: a path of this console
//! only, carried through the sign-in page's address. The extractor of a
//! signed-in person sends a request without a session there, and the
//! sign-in routes read it back.

use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::url::form_urlencoded;

/// The longest `next` kept: a page of this console needs no more.
const MAX_NEXT: usize = 2048;

/// A path of this console to return to; anything else (another site,
/// `//host`, a path with a space, tab or control character, which a
/// browser may drop to read `//host`, or an overlong one) becomes the inbox.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= MAX_NEXT
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.into()
        }
        _ => "/".into(),
    }
}

pub fn sign_in_url(next: &str, why: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", next);
    if let Some(why) = why {
        q.append_pair("why", why);
    }
    format!("/signin?{}", q.finish())
}

/// Where a request without a live session goes: the sign-in page, which
/// brings the person back to the page they asked for (and says so when
/// the session has `ended`).
pub fn sign_in_again(parts: &Parts, ended: bool) -> Response {
    let next = if parts.method == Method::GET {
        local_path(parts.uri.path_and_query().map(|p| p.as_str()))
    } else {
        "/".into()
    };
    let why = ended.then_some("ended");
    Redirect::to(&sign_in_url(&next, why)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_a_browser_would_read_as_another_site_is_not_returned_to() {
        for trick in [
            "/\t/evil.example/",
            "/\n/evil.example",
            "/ /evil.example",
            "/a\u{7f}",
        ] {
            assert_eq!(local_path(Some(trick)), "/", "{trick:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_NEXT));
        assert_eq!(local_path(Some(&long)), "/");
    }

    #[test]
    fn only_paths_of_this_console_are_returned_to() {
        assert_eq!(
            local_path(Some("/approvals/a?recorded=legal")),
            "/approvals/a?recorded=legal"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "x",
        ] {
            assert_eq!(local_path(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_sign_in_address_carries_the_page_and_the_reason() {
        assert_eq!(
            sign_in_url("/approvals/a?x=1", Some("ended")),
            "/signin?next=%2Fapprovals%2Fa%3Fx%3D1&why=ended"
        );
    }
}
