//! The one grammar of an OCI model URI, `oci://REGISTRY/REPOSITORY[:TAG]`,
//! read alike by the API server and the operator.
//!
//! The API server checks the CRD's rule `self.matches(PATTERN)` on any URI
//! that starts with `oci://`; the operator splits a URI with [`parse`], which
//! gives a reference for exactly the strings the pattern matches
//! (property-tested below). The registry must be named (a host with a dot
//! or a port, or `localhost`): a bare `oci://models/fraud` would mean Docker
//! Hub to one tool and a local name to another. The digest is not in the
//! URI: it is `spec.model.digest`, and serving always uses it; a tag is
//! informational.

/// The scheme that makes a model an OCI artifact.
pub const SCHEME: &str = "oci://";

/// The pattern's body, as a macro so that it can be spliced into the CEL
/// rule at compile time (`concat!` takes only literals).
macro_rules! body {
    () => {
        concat!(
            // The registry: a dotted host with an optional port, a host
            // with a port, or localhost.
            "([A-Za-z0-9-]+([.][A-Za-z0-9-]+)+(:[0-9]{1,5})?|[A-Za-z0-9-]+:[0-9]{1,5}|localhost)",
            // The repository: lower-case path components joined by '/',
            // each with single separators inside.
            "/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*",
            // An optional tag.
            "(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?",
        )
    };
}

/// The accepted URIs, anchored: RE2 syntax (the API server's CEL `matches`)
/// that the `regex` crate reads the same way.
pub const PATTERN: &str = concat!("^oci://", body!(), "$");

/// The CRD rule on `spec.model`: an `oci://` URI is in the grammar and its
/// digest is a sha256 (what image volumes and registries take).
pub const RULE: &str = concat!(
    "!self.uri.startsWith('oci://') || (self.uri.matches('^oci://",
    body!(),
    "$') && self.digest.startsWith('sha256:'))"
);

/// The refusal, showing the accepted form.
pub const MESSAGE: &str = "an oci:// uri must be oci://REGISTRY/REPOSITORY[:TAG] with the registry named (a host with a dot or a port, or localhost), lower-case repository path components and no digest (the digest is spec.model.digest, which must be sha256:…), e.g. oci://registry.example.com/models/fraud-detector:2.4.0";

/// An OCI model URI, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciUri<'a> {
    /// `registry.example.com` or `127.0.0.1:5000`.
    pub registry: &'a str,
    /// `models/fraud-detector`.
    pub repository: &'a str,
    /// `2.4.0`, informational.
    pub tag: Option<&'a str>,
}

impl OciUri<'_> {
    /// `REGISTRY/REPOSITORY@DIGEST`: what the pod mounts and the operator
    /// resolves.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

/// Whether `uri` names an OCI artifact (whether or not it is well formed).
pub fn is_oci(uri: &str) -> bool {
    uri.starts_with(SCHEME)
}

/// The parts of an `oci://` URI, or None when it is not in the grammar.
pub fn parse(uri: &str) -> Option<OciUri<'_>> {
    let rest = uri.strip_prefix(SCHEME)?;
    let (registry, path) = rest.split_once('/')?;
    if !registry_ok(registry) {
        return None;
    }
    // A tag follows the last ':' of the path, which no component holds.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) => (repository, Some(tag)),
        None => (path, None),
    };
    let ok = repository.split('/').all(component_ok) && tag.is_none_or(tag_ok);
    ok.then_some(OciUri {
        registry,
        repository,
        tag,
    })
}

fn registry_ok(registry: &str) -> bool {
    let (host, port) = match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let labels: Vec<&str> = host.split('.').collect();
    let host_ok = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    // A registry is named by a dot, a port, or the word localhost.
    host_ok && port_ok && (labels.len() > 1 || port.is_some() || host == "localhost")
}

/// One path component: lower-case alphanumeric runs joined by '.', '_',
/// '__' or one or more '-'.
fn component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between runs: '.', '_', '__' or '-'+; nothing else, and no other mix.
    component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

fn tag_ok(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    bytes.first().is_some_and(word)
        && bytes.len() <= 128
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_what_an_approval_names() {
        let uri = parse("oci://127.0.0.1:5000/models/fraud-detector:2.4.0").expect("parses");
        assert_eq!(uri.registry, "127.0.0.1:5000");
        assert_eq!(uri.repository, "models/fraud-detector");
        assert_eq!(uri.tag, Some("2.4.0"));
        assert_eq!(
            uri.pinned("sha256:ab"),
            "127.0.0.1:5000/models/fraud-detector@sha256:ab"
        );
        let bare = parse("oci://registry.example.com/fraud").expect("parses");
        assert_eq!((bare.repository, bare.tag), ("fraud", None));
    }

    #[test]
    fn refuses_what_a_registry_would_read_differently() {
        let pattern = regex::Regex::new(PATTERN).expect("pattern");
        for uri in [
            "oci://models/fraud",
            "oci://registry.example.com/Models/fraud",
            "oci://registry.example.com/models/fraud@sha256:00",
            "oci://registry.example.com/models//fraud",
            "oci://registry.example.com/models/fraud-",
            "oci://registry.example.com/models/fraud:",
            "oci://registry.example.com/models/fraud:-x",
            "oci://registry.example.com:123456/fraud",
            "oci://registry.example.com/a.-b",
            "s3://bucket/model",
        ] {
            assert_eq!(parse(uri), None, "{uri}");
            assert!(!pattern.is_match(uri), "{uri}");
        }
    }

    fn uri_like() -> impl Strategy<Value = String> {
        let registry = prop_oneof![
            "[a-z0-9-]{1,6}(\\.[a-z0-9-]{1,6}){0,2}(:[0-9]{1,6})?",
            Just("localhost".to_string()),
        ];
        let component = "[a-z0-9._-]{1,8}";
        let tag = proptest::option::of("[A-Za-z0-9_.:-]{0,10}");
        (registry, proptest::collection::vec(component, 1..4), tag).prop_map(|(r, path, tag)| {
            let tag = tag.map(|t| format!(":{t}")).unwrap_or_default();
            format!("oci://{r}/{}{tag}", path.join("/"))
        })
    }

    proptest! {
        /// The operator reads exactly the URIs the API server admits.
        #[test]
        fn parse_agrees_with_the_crd_pattern(uri in uri_like()) {
            let pattern = regex::Regex::new(PATTERN).expect("pattern");
            prop_assert_eq!(parse(&uri).is_some(), pattern.is_match(&uri), "{}", uri);
        }

        #[test]
        fn parse_agrees_on_any_text(uri in "oci://[a-z0-9.:/_-]{0,24}") {
            let pattern = regex::Regex::new(PATTERN).expect("pattern");
            prop_assert_eq!(parse(&uri).is_some(), pattern.is_match(&uri), "{}", uri);
        }
    }
}
